"""PostgreSQL: the word index (migration 0007) also holds each job's owner, so a
researcher's search is one GIN lookup for their matches. With the owner in a
B-tree of its own, PostgreSQL ANDed the two bitmaps: a search over 1,003 of a
researcher's jobs read all 100,000 of their rows' entries first (47 ms of
116), and its bitmap grew lossy. btree_gin, which ships with PostgreSQL (a
trusted extension: a database owner may add it), lets a GIN index hold the
owner; the same index serves staff's searches over everyone. Nothing on
SQLite, whose FTS5 walk (jobs/web/search.py) reads matches newest first.
"""

from django.db import migrations

FORWARD = [
    "CREATE EXTENSION IF NOT EXISTS btree_gin",
    "CREATE INDEX job_owner_search ON jobs_job USING gin (owner_id, search_vector)",
    "DROP INDEX job_search",
]
BACKWARD = [
    "CREATE INDEX job_search ON jobs_job USING gin (search_vector)",
    "DROP INDEX job_owner_search",
]


def forwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in FORWARD:
            schema_editor.execute(statement)


def backwards(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("jobs", "0013_job_counts")]

    operations = [migrations.RunPython(forwards, backwards)]
