"""Counts of jobs by owner and state (JobCount), kept by the database itself:
whichever way a job is written (the ORM, bulk_create, .update(), the run's raw
INSERT, a cascade, the admin), its count follows in the same transaction.

SQLite has one writer at a time: row triggers keep one row per (owner, state).
A delete only decrements a row that exists, so a table emptied in any order
(a test's flush) is left empty, not negative.

PostgreSQL has many writers: a statement trigger appends one row of deltas
per (owner, state) the statement changed, read from its transition tables,
and never updates a row, so two dispatchers never queue on a hot counter.
jobs/engine/counts.py folds the deltas (the minute Schedule); a count is the
sum of its rows either way.

As with the search index (migration 0007), a later migration that makes
Django rebuild jobs_job on SQLite drops these triggers: it must run this SQL
again (tests/engine/test_counts.py fails until it does).
"""

from django.db import migrations, models

SQLITE_FORWARD = [
    "CREATE UNIQUE INDEX jobcount_one_row ON jobs_jobcount (owner_id, state)",
    """CREATE TRIGGER jobs_job_count_insert AFTER INSERT ON jobs_job BEGIN
        INSERT INTO jobs_jobcount (owner_id, state, n) VALUES (new.owner_id, new.state, 1)
        ON CONFLICT (owner_id, state) DO UPDATE SET n = n + 1;
    END""",
    """CREATE TRIGGER jobs_job_count_delete AFTER DELETE ON jobs_job BEGIN
        UPDATE jobs_jobcount SET n = n - 1 WHERE owner_id = old.owner_id AND state = old.state;
    END""",
    """CREATE TRIGGER jobs_job_count_update AFTER UPDATE OF state, owner_id ON jobs_job
    WHEN old.state IS NOT new.state OR old.owner_id IS NOT new.owner_id BEGIN
        UPDATE jobs_jobcount SET n = n - 1 WHERE owner_id = old.owner_id AND state = old.state;
        INSERT INTO jobs_jobcount (owner_id, state, n) VALUES (new.owner_id, new.state, 1)
        ON CONFLICT (owner_id, state) DO UPDATE SET n = n + 1;
    END""",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER jobs_job_count_update",
    "DROP TRIGGER jobs_job_count_delete",
    "DROP TRIGGER jobs_job_count_insert",
    "DROP INDEX jobcount_one_row",
]

# One function per event: the transition tables differ (UPDATE has both).
POSTGRESQL_FORWARD = [
    """CREATE FUNCTION jobs_job_count_insert() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO jobs_jobcount (owner_id, state, n)
        SELECT owner_id, state, count(*) FROM new_rows GROUP BY owner_id, state;
        RETURN NULL;
    END $$""",
    """CREATE FUNCTION jobs_job_count_delete() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO jobs_jobcount (owner_id, state, n)
        SELECT owner_id, state, -count(*) FROM old_rows GROUP BY owner_id, state;
        RETURN NULL;
    END $$""",
    # Each row's old (owner, state) counts -1 and its new one +1: a row whose
    # state did not change cancels out. No join of the two transition tables
    # (they have no index: a nested loop over 5,000 updated rows took seconds).
    """CREATE FUNCTION jobs_job_count_update() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        INSERT INTO jobs_jobcount (owner_id, state, n)
        SELECT owner_id, state, sum(n) FROM (
            SELECT owner_id, state, -count(*) AS n FROM old_rows GROUP BY owner_id, state
            UNION ALL
            SELECT owner_id, state, count(*) FROM new_rows GROUP BY owner_id, state
        ) AS moved
        GROUP BY owner_id, state
        HAVING sum(n) <> 0;
        RETURN NULL;
    END $$""",
    """CREATE TRIGGER jobs_job_count_insert AFTER INSERT ON jobs_job
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_job_count_insert()""",
    """CREATE TRIGGER jobs_job_count_delete AFTER DELETE ON jobs_job
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_job_count_delete()""",
    """CREATE TRIGGER jobs_job_count_update AFTER UPDATE ON jobs_job
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_job_count_update()""",
]
POSTGRESQL_BACKWARD = [
    "DROP TRIGGER jobs_job_count_update ON jobs_job",
    "DROP TRIGGER jobs_job_count_delete ON jobs_job",
    "DROP TRIGGER jobs_job_count_insert ON jobs_job",
    "DROP FUNCTION jobs_job_count_update()",
    "DROP FUNCTION jobs_job_count_delete()",
    "DROP FUNCTION jobs_job_count_insert()",
]

# The jobs already there, counted once (inside the migration's transaction).
FILL = """INSERT INTO jobs_jobcount (owner_id, state, n)
    SELECT owner_id, state, count(*) FROM jobs_job GROUP BY owner_id, state"""

STATEMENTS = {
    "sqlite": (SQLITE_FORWARD, SQLITE_BACKWARD),
    "postgresql": (POSTGRESQL_FORWARD, POSTGRESQL_BACKWARD),
}


def forwards(apps, schema_editor):
    vendor = schema_editor.connection.vendor
    if vendor not in STATEMENTS:
        raise NotImplementedError(f"The job counts have no SQL for {vendor}.")
    for statement in [*STATEMENTS[vendor][0], FILL]:
        schema_editor.execute(statement)


def backwards(apps, schema_editor):
    for statement in STATEMENTS[schema_editor.connection.vendor][1]:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("jobs", "0012_notifications")]

    operations = [
        migrations.CreateModel(
            name="JobCount",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("owner_id", models.IntegerField()),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("queued", "Queued"),
                            ("running", "Running"),
                            ("retrying", "Waiting to retry"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                            ("cancelled", "Cancelled"),
                        ],
                        max_length=16,
                    ),
                ),
                ("n", models.BigIntegerField()),
            ],
            options={
                "indexes": [
                    models.Index(fields=["owner_id", "state"], name="jobcount_owner_state")
                ],
            },
        ),
        migrations.RunPython(forwards, backwards),
    ]
