"""The stored counts of jobs by owner and state (JobCount, migration 0013):
read them, fold PostgreSQL's delta rows together, and check them against a
fresh count of the jobs.

The database's triggers write the counts; nothing here adds to them, so no
code path can forget to."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection, transaction
from django.db.models import Count, Sum

from jobs.models import Job, JobCount


def by_state(owner_id: int | None = None) -> dict[str, int]:
    """Jobs per state, for one owner or for everyone: a few rows, whatever the table holds."""
    rows = JobCount.objects.all()
    if owner_id is not None:
        rows = rows.filter(owner_id=owner_id)
    totals = rows.order_by().values_list("state").annotate(n=Sum("n"))
    return {state: n for state, n in totals if n}


# Every delta row written so far, summed into one row per (owner, state), in one
# statement: the DELETE sees only committed rows and hands exactly those to the
# INSERT, so a delta committed meanwhile is left for the next fold, never lost.
_FOLD_POSTGRESQL = """
WITH folded AS (DELETE FROM jobs_jobcount RETURNING owner_id, state, n)
INSERT INTO jobs_jobcount (owner_id, state, n)
SELECT owner_id, state, sum(n) FROM folded GROUP BY owner_id, state HAVING sum(n) <> 0
"""
# SQLite's rows are updated in place: only the emptied ones go.
_FOLD_SQLITE = "DELETE FROM jobs_jobcount WHERE n = 0"


def fold() -> None:
    """Keep the counts a few rows long (the minute Schedule calls this)."""
    with connection.cursor() as cursor:
        cursor.execute(_FOLD_POSTGRESQL if connection.vendor == "postgresql" else _FOLD_SQLITE)


@dataclass(frozen=True)
class Difference:
    owner_id: int
    state: str
    stored: int
    counted: int


def recount(*, fix: bool = False) -> list[Difference]:
    """Where the stored counts differ from counting the jobs; with `fix`, the
    counts are rewritten from the jobs. The jobs table is held still meanwhile
    (SQLite's write lock; a SHARE lock on PostgreSQL, which lets pages read)."""
    with transaction.atomic():
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("LOCK TABLE jobs_job IN SHARE MODE")
        counted = {
            (owner_id, state): n
            for owner_id, state, n in Job.objects.order_by()
            .values_list("owner_id", "state")
            .annotate(n=Count("*"))
        }
        stored = {
            (owner_id, state): n
            for owner_id, state, n in JobCount.objects.order_by()
            .values_list("owner_id", "state")
            .annotate(n=Sum("n"))
        }
        differences = [
            Difference(owner_id, state, stored.get(key, 0), counted.get(key, 0))
            for key in sorted(counted.keys() | stored.keys())
            for owner_id, state in [key]
            if stored.get(key, 0) != counted.get(key, 0)
        ]
        if fix and differences:
            JobCount.objects.all().delete()
            JobCount.objects.bulk_create(
                JobCount(owner_id=owner_id, state=state, n=n)
                for (owner_id, state), n in counted.items()
            )
    return differences
