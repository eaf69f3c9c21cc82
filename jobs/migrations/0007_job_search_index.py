"""A word index over each job's prompt and answer, for the jobs search
(jobs/web/search.py), kept in step by the database itself: whichever way a
row is written (the ORM, bulk_create, .update(), the run's raw INSERT or
COPY, a DELETE), the index follows, because the database maintains it.

SQLite: a contentless FTS5 table, jobs_job_search (rowid = the job's id),
filled by AFTER INSERT / UPDATE / DELETE triggers on jobs_job.
PostgreSQL: a generated column, jobs_job.search_vector, with a GIN index.

Both index the same words: the first INDEXED_CHARS characters of the prompt
and of the answer, lower-cased, split at every character that is not a letter
or a digit. On PostgreSQL each word is cut to its first 250 characters (a
search is at most 200, so nothing it could match is lost), under tsvector's
2,047-byte word limit; and 200,000 characters are at most 800 KB of words,
under its 1 MB limit for the whole vector. A 1,000,000-character prompt costs
what its first 100,000 do.

Neither object is declared on the model: a GeneratedField has one expression
for every database, and the run's raw INSERT (jobs/runs/services.py) writes
every concrete field. The cost of that: on SQLite, a later migration that
makes Django rebuild jobs_job (most AlterField operations do) drops these
triggers with the old table; on PostgreSQL, altering the type of input_text
or result_text fails while search_vector depends on them. Such a migration
must run this one's SQL again (tests/test_search_index.py fails until it
does).
"""

from django.db import migrations

INDEXED_CHARS = 100_000
# Letters (any script), decimal digits, letter numbers and the marks that
# belong to letters: the characters PostgreSQL's [[:alnum:]] counts in a
# UTF-8 database, as nearly as FTS5's categories can say it.
FTS5_TOKENIZER = "unicode61 remove_diacritics 0 categories 'L* Nd Nl Mn Mc'"

SQLITE_FORWARD = [
    f"""CREATE VIRTUAL TABLE jobs_job_search USING fts5(
        prompt, answer, content='', tokenize="{FTS5_TOKENIZER}")""",
    f"""CREATE TRIGGER jobs_job_search_insert AFTER INSERT ON jobs_job BEGIN
        INSERT INTO jobs_job_search (rowid, prompt, answer)
        VALUES (new.id, substr(new.input_text, 1, {INDEXED_CHARS}),
                substr(new.result_text, 1, {INDEXED_CHARS}));
    END""",
    # A contentless table forgets a row by being told exactly what it indexed.
    f"""CREATE TRIGGER jobs_job_search_delete AFTER DELETE ON jobs_job BEGIN
        INSERT INTO jobs_job_search (jobs_job_search, rowid, prompt, answer)
        VALUES ('delete', old.id, substr(old.input_text, 1, {INDEXED_CHARS}),
                substr(old.result_text, 1, {INDEXED_CHARS}));
    END""",
    # Only when the text changed: the dispatcher updates state all day long.
    f"""CREATE TRIGGER jobs_job_search_update AFTER UPDATE OF input_text, result_text ON jobs_job
    WHEN old.input_text IS NOT new.input_text OR old.result_text IS NOT new.result_text BEGIN
        INSERT INTO jobs_job_search (jobs_job_search, rowid, prompt, answer)
        VALUES ('delete', old.id, substr(old.input_text, 1, {INDEXED_CHARS}),
                substr(old.result_text, 1, {INDEXED_CHARS}));
        INSERT INTO jobs_job_search (rowid, prompt, answer)
        VALUES (new.id, substr(new.input_text, 1, {INDEXED_CHARS}),
                substr(new.result_text, 1, {INDEXED_CHARS}));
    END""",
    f"""INSERT INTO jobs_job_search (rowid, prompt, answer)
    SELECT id, substr(input_text, 1, {INDEXED_CHARS}), substr(result_text, 1, {INDEXED_CHARS})
    FROM jobs_job""",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER jobs_job_search_update",
    "DROP TRIGGER jobs_job_search_delete",
    "DROP TRIGGER jobs_job_search_insert",
    "DROP TABLE jobs_job_search",
]

# Words are split without PostgreSQL's text-search parser, which would keep
# "example.com" whole and cut "2e5f0c" in two: every run of characters that
# are not letters or digits becomes one space, then each word longer than 250
# characters keeps its first 250 (array_to_tsvector refuses words over 2,047
# bytes). array_to_tsvector keeps no positions (there is no phrase search) and
# no duplicates. Adding the column computes it for every existing row.
POSTGRESQL_FORWARD = [
    rf"""ALTER TABLE jobs_job ADD COLUMN search_vector tsvector
    GENERATED ALWAYS AS (array_to_tsvector(array_remove(string_to_array(
        regexp_replace(regexp_replace(
            lower(left(input_text, {INDEXED_CHARS}) || ' ' || left(result_text, {INDEXED_CHARS})),
            '[^[:alnum:]]+', ' ', 'g'),
            '([^ ]{{250}})[^ ]+', '\1', 'g'),
        ' '), ''))) STORED""",
    "CREATE INDEX job_search ON jobs_job USING gin (search_vector)",
]
POSTGRESQL_BACKWARD = [
    "DROP INDEX job_search",
    "ALTER TABLE jobs_job DROP COLUMN search_vector",
]

STATEMENTS = {
    "sqlite": (SQLITE_FORWARD, SQLITE_BACKWARD),
    "postgresql": (POSTGRESQL_FORWARD, POSTGRESQL_BACKWARD),
}


def _run(schema_editor, backward: bool) -> None:
    vendor = schema_editor.connection.vendor
    if vendor not in STATEMENTS:
        raise NotImplementedError(f"The jobs search index has no SQL for {vendor}.")
    for statement in STATEMENTS[vendor][backward]:
        schema_editor.execute(statement)


def forwards(apps, schema_editor):
    _run(schema_editor, backward=False)


def backwards(apps, schema_editor):
    _run(schema_editor, backward=True)


class Migration(migrations.Migration):
    dependencies = [("jobs", "0006_capacity_and_deadlines")]

    operations = [migrations.RunPython(forwards, backwards)]
