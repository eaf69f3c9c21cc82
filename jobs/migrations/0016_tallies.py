"""Tallies the overview reads instead of scanning the tables, kept by the
database as the job counts are (migration 0013): whichever way a job or an
attempt is written, its tally follows in the same transaction.

- JobTally: per (owner, attempts) the jobs and their 503s and 429s, from jobs_job.
- OutcomeMinute: per (owner, minute attempts finished) how many, and the
  successes, 503s and 429s among them, from jobs_attempt (its owner is its job's; a job given to another
  owner takes its attempts' minutes along).
- CostHour: per (owner, hour an answer arrived) the answers and their cost
  and standard cost in units of 1e-8 USD, from jobs_job.
- RunTally: per (run, state) the jobs and their cost and standard cost, from
  jobs_job (the run list and a run's counts).

SQLite: row triggers keep one row per key (a unique index, upserts); a
decrement touches only a row that exists, so a table emptied in any order
(a test's flush) stays empty. PostgreSQL: statement triggers append one row
of deltas per key a statement changed, from its transition tables, never
updating a row (no hot counter rows between dispatchers); jobs/engine/counts.py
folds them. Minutes and hours are UTC.

Each tally is described once (TALLIES) and its SQL written from that for
both databases. As with 0007 and 0013: a later migration that makes Django
rebuild jobs_job or jobs_attempt on SQLite drops these triggers and must run
them again (tests/engine/test_counts.py checks they exist).
"""

from dataclasses import dataclass

from django.db import migrations, models


@dataclass(frozen=True)
class Tally:
    table: str
    source: str
    keys: dict  # column -> (sqlite expression, postgresql expression), over row "{r}"
    values: dict  # column -> (sqlite, postgresql), summed
    where: str  # over row "{r}", the same on both
    watched: tuple  # the source's columns whose change moves the tally

    def expr(self, pairs: dict, vendor: int, row: str) -> list:
        return [pair[vendor].format(r=row) for pair in pairs.values()]

    @property
    def columns(self) -> str:
        return ", ".join([*self.keys, *self.values])


def _case(condition: str) -> tuple:
    sql = f"CASE WHEN {condition} THEN 1 ELSE 0 END"
    return (sql, sql)


SQLITE, POSTGRESQL = 0, 1
# An attempt's owner is its job's, looked up by primary key (on PostgreSQL a
# join could be planned as a scan of every job: a transition table has no
# statistics).
ATTEMPT_OWNER = ("(SELECT owner_id FROM jobs_job WHERE id = {r}.job_id)",) * 2

TALLIES = [
    Tally(
        table="jobs_jobtally",
        source="jobs_job",
        keys={"owner_id": ("{r}.owner_id",) * 2, "attempts": ("{r}.attempts",) * 2},
        values={
            "n": ("1",) * 2,
            "http_503": ("{r}.http_503",) * 2,
            "http_429": ("{r}.http_429",) * 2,
        },
        where="true",
        watched=("owner_id", "attempts", "http_503", "http_429"),
    ),
    Tally(
        table="jobs_costhour",
        source="jobs_job",
        keys={
            "owner_id": ("{r}.owner_id",) * 2,
            "hour": (
                "strftime('%Y-%m-%d %H:00:00', {r}.finished_at)",
                "date_trunc('hour', {r}.finished_at, 'UTC')",
            ),
        },
        values={
            "answers": ("1",) * 2,
            "cost_units": (
                "CAST(round({r}.cost_usd * 100000000) AS INTEGER)",
                "round({r}.cost_usd * 100000000)::bigint",
            ),
            "standard_cost_units": (
                "CAST(round(coalesce({r}.standard_cost_usd, 0) * 100000000) AS INTEGER)",
                "round(coalesce({r}.standard_cost_usd, 0) * 100000000)::bigint",
            ),
        },
        where="{r}.cost_usd IS NOT NULL AND {r}.finished_at IS NOT NULL",
        watched=("owner_id", "finished_at", "cost_usd", "standard_cost_usd"),
    ),
    Tally(
        table="jobs_runtally",
        source="jobs_job",
        keys={"run_id": ("{r}.run_id",) * 2, "state": ("{r}.state",) * 2},
        values={
            "n": ("1",) * 2,
            "cost_units": (
                "CAST(round(coalesce({r}.cost_usd, 0) * 100000000) AS INTEGER)",
                "round(coalesce({r}.cost_usd, 0) * 100000000)::bigint",
            ),
            "standard_cost_units": (
                "CAST(round(coalesce({r}.standard_cost_usd, 0) * 100000000) AS INTEGER)",
                "round(coalesce({r}.standard_cost_usd, 0) * 100000000)::bigint",
            ),
        },
        where="{r}.run_id IS NOT NULL",
        watched=("run_id", "state", "cost_usd", "standard_cost_usd"),
    ),
    Tally(
        table="jobs_outcomeminute",
        source="jobs_attempt",
        keys={
            "owner_id": ATTEMPT_OWNER,
            "minute": (
                "strftime('%Y-%m-%d %H:%M:00', {r}.finished_at)",
                "date_trunc('minute', {r}.finished_at, 'UTC')",
            ),
        },
        values={
            "finished": ("1",) * 2,
            "succeeded": _case("{r}.outcome = 'succeeded'"),
            "http_503": _case("{r}.http_status = 503"),
            "http_429": _case("{r}.http_status = 429"),
        },
        where="{r}.finished_at IS NOT NULL",
        watched=("finished_at", "outcome", "http_status"),
    ),
]
OUTCOMES = TALLIES[-1]


def _name(tally: Tally) -> str:
    return f"{tally.source}_{tally.table.removeprefix('jobs_')}"


# --- SQLite ---------------------------------------------------------------------------------
def _sqlite_add(tally: Tally, row: str) -> str:
    keys = ", ".join(tally.keys)
    sums = ", ".join(f"{v} = {v} + excluded.{v}" for v in tally.values)
    picked = ", ".join(tally.expr(tally.keys, SQLITE, row) + tally.expr(tally.values, SQLITE, row))
    return (
        f"INSERT INTO {tally.table} ({tally.columns}) SELECT {picked} "
        f"WHERE {tally.where.format(r=row)} ON CONFLICT ({keys}) DO UPDATE SET {sums}"
    )


def _sqlite_take(tally: Tally, row: str) -> str:
    sums = ", ".join(
        f"{v} = {v} - ({e})"
        for v, e in zip(tally.values, tally.expr(tally.values, SQLITE, row), strict=True)
    )
    match = " AND ".join(
        f"{k} = {e}" for k, e in zip(tally.keys, tally.expr(tally.keys, SQLITE, row), strict=True)
    )
    return f"UPDATE {tally.table} SET {sums} WHERE {match} AND {tally.where.format(r=row)}"


def _sqlite(tally: Tally) -> tuple[list, list]:
    name, source = _name(tally), tally.source
    changed = " OR ".join(f"old.{c} IS NOT new.{c}" for c in tally.watched)
    forward = [
        f"CREATE UNIQUE INDEX {tally.table}_one_row ON {tally.table} ({', '.join(tally.keys)})",
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON {source} BEGIN "
        f"{_sqlite_add(tally, 'new')}; END",
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON {source} BEGIN "
        f"{_sqlite_take(tally, 'old')}; END",
        f"CREATE TRIGGER {name}_update AFTER UPDATE OF {', '.join(tally.watched)} ON {source} "
        f"WHEN {changed} BEGIN {_sqlite_take(tally, 'old')}; {_sqlite_add(tally, 'new')}; END",
    ]
    backward = [f"DROP TRIGGER {name}_{event}" for event in ("update", "delete", "insert")]
    return forward, [*backward, f"DROP INDEX {tally.table}_one_row"]


def _outcome_sums(vendor: int, sign: str) -> str:
    return ", ".join(
        f"{sign}sum({e}) AS {v}"
        for v, e in zip(OUTCOMES.values, OUTCOMES.expr(OUTCOMES.values, vendor, "a"), strict=True)
    )


def _outcome_minutes(vendor: int, owner: str, job: str, sign: str) -> str:
    """A job's finished attempts by minute, as rows of (owner, minute, sums)."""
    minute = OUTCOMES.keys["minute"][vendor].format(r="a")
    return (
        f"SELECT {owner} AS owner_id, {minute} AS minute, {_outcome_sums(vendor, sign)} "
        f"FROM jobs_attempt a WHERE a.job_id = {job} AND a.finished_at IS NOT NULL GROUP BY 2"
    )


# A job given to another owner takes its attempts' minutes along.
SQLITE_OWNER_MOVE = [
    "CREATE TRIGGER jobs_job_outcomeminute_owner AFTER UPDATE OF owner_id ON jobs_job "
    "WHEN old.owner_id IS NOT new.owner_id BEGIN "
    "UPDATE jobs_outcomeminute SET "
    + ", ".join(f"{v} = jobs_outcomeminute.{v} - m.{v}" for v in OUTCOMES.values)
    + f" FROM ({_outcome_minutes(SQLITE, 'old.owner_id', 'old.id', '')}) AS m "
    "WHERE jobs_outcomeminute.owner_id = old.owner_id AND jobs_outcomeminute.minute = m.minute; "
    f"INSERT INTO jobs_outcomeminute ({OUTCOMES.columns}) "
    f"{_outcome_minutes(SQLITE, 'new.owner_id', 'new.id', '')} "
    "ON CONFLICT (owner_id, minute) DO UPDATE SET "
    + ", ".join(f"{v} = {v} + excluded.{v}" for v in OUTCOMES.values)
    + "; END"
]


# --- PostgreSQL -----------------------------------------------------------------------------
def _grouped(tally: Tally, rows: str, sign: str, vendor: int = POSTGRESQL) -> str:
    """`rows` (a transition table, or the source itself) summed per key."""
    keys = tally.expr(tally.keys, vendor, "r")
    sums = [f"{sign}sum({e})" for e in tally.expr(tally.values, vendor, "r")]
    columns = [
        f"{e} AS {c}" for c, e in zip([*tally.keys, *tally.values], keys + sums, strict=True)
    ]
    positions = ", ".join(str(n) for n in range(1, len(keys) + 1))
    return (
        f"SELECT {', '.join(columns)} FROM {rows} r "
        f"WHERE {tally.where.format(r='r')} GROUP BY {positions}"
    )


def _pg_insert(tally: Tally, select: str) -> str:
    keys = ", ".join(tally.keys)
    sums = ", ".join(f"sum({v})" for v in tally.values)
    nonzero = " OR ".join(f"sum({v}) <> 0" for v in tally.values)
    return (
        f"INSERT INTO {tally.table} ({tally.columns}) SELECT {keys}, {sums} "
        f"FROM ({select}) AS moved GROUP BY {keys} HAVING {nonzero}"
    )


def _pg_function(name: str, body: str) -> str:
    return (
        f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $$ "
        f"BEGIN {body}; RETURN NULL; END $$"
    )


def _postgresql(tally: Tally) -> tuple[list, list]:
    name, source = _name(tally), tally.source
    bodies = {
        "insert": (_pg_insert(tally, _grouped(tally, "new_rows", "")), "NEW TABLE AS new_rows"),
        "delete": (_pg_insert(tally, _grouped(tally, "old_rows", "-")), "OLD TABLE AS old_rows"),
        # Each row's old key counts minus and its new one plus; unchanged rows
        # cancel out. No join of the two transition tables (no index on them).
        "update": (
            _pg_insert(
                tally,
                f"{_grouped(tally, 'old_rows', '-')} UNION ALL "
                f"{_grouped(tally, 'new_rows', '')}",
            ),
            "OLD TABLE AS old_rows NEW TABLE AS new_rows",
        ),
    }
    forward, backward = [], []
    for event, (body, referencing) in bodies.items():
        forward += [
            _pg_function(f"{name}_{event}", body),
            f"CREATE TRIGGER {name}_{event} AFTER {event.upper()} ON {source} "
            f"REFERENCING {referencing} FOR EACH STATEMENT EXECUTE FUNCTION {name}_{event}()",
        ]
        backward += [f"DROP TRIGGER {name}_{event} ON {source}", f"DROP FUNCTION {name}_{event}()"]
    return forward, backward


# A row trigger, and only for statements that set owner_id: a statement
# trigger with a column list may not have transition tables.
POSTGRESQL_OWNER_MOVE = [
    _pg_function(
        "jobs_job_outcomeminute_owner",
        _pg_insert(
            OUTCOMES,
            f"{_outcome_minutes(POSTGRESQL, 'OLD.owner_id', 'OLD.id', '-')} UNION ALL "
            f"{_outcome_minutes(POSTGRESQL, 'NEW.owner_id', 'NEW.id', '')}",
        ),
    ),
    "CREATE TRIGGER jobs_job_outcomeminute_owner AFTER UPDATE OF owner_id ON jobs_job "
    "FOR EACH ROW WHEN (OLD.owner_id IS DISTINCT FROM NEW.owner_id) "
    "EXECUTE FUNCTION jobs_job_outcomeminute_owner()",
]


def _fill(tally: Tally, vendor: int) -> str:
    """The rows already there, tallied once (inside the migration's transaction)."""
    if vendor == SQLITE:
        return f"INSERT INTO {tally.table} ({tally.columns}) {_grouped(tally, tally.source, '', SQLITE)}"
    return _pg_insert(tally, _grouped(tally, tally.source, ""))


def statements(vendor: str) -> tuple[list, list]:
    """(forward, backward) for this database."""
    if vendor not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"The tallies have no SQL for {vendor}.")
    if vendor == "sqlite":
        number, write, move = SQLITE, _sqlite, SQLITE_OWNER_MOVE
        unmove = ["DROP TRIGGER jobs_job_outcomeminute_owner"]
    else:
        number, write, move = POSTGRESQL, _postgresql, POSTGRESQL_OWNER_MOVE
        unmove = [
            "DROP TRIGGER jobs_job_outcomeminute_owner ON jobs_job",
            "DROP FUNCTION jobs_job_outcomeminute_owner()",
        ]
    forward, backward = [], []
    for tally in TALLIES:
        made, dropped = write(tally)
        forward += [*made, _fill(tally, number)]
        backward = dropped + backward
    return forward + move, unmove + backward


def forwards(apps, schema_editor):
    for statement in statements(schema_editor.connection.vendor)[0]:
        schema_editor.execute(statement)


def backwards(apps, schema_editor):
    for statement in statements(schema_editor.connection.vendor)[1]:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0015_attempt_interrupted"),
    ]

    operations = [
        migrations.CreateModel(
            name="CostHour",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("owner_id", models.IntegerField()),
                ("hour", models.DateTimeField()),
                ("answers", models.BigIntegerField(default=0)),
                ("cost_units", models.BigIntegerField(default=0)),
                ("standard_cost_units", models.BigIntegerField(default=0)),
            ],
            options={
                "indexes": [
                    models.Index(fields=["owner_id", "hour"], name="costhour_owner_hour"),
                    models.Index(fields=["hour"], name="costhour_hour"),
                ],
            },
        ),
        migrations.CreateModel(
            name="JobTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("owner_id", models.IntegerField()),
                ("attempts", models.IntegerField()),
                ("n", models.BigIntegerField(default=0)),
                ("http_503", models.BigIntegerField(default=0)),
                ("http_429", models.BigIntegerField(default=0)),
            ],
            options={
                "indexes": [
                    models.Index(fields=["owner_id", "attempts"], name="jobtally_owner_attempts")
                ],
            },
        ),
        migrations.CreateModel(
            name="OutcomeMinute",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("owner_id", models.IntegerField()),
                ("minute", models.DateTimeField()),
                ("finished", models.BigIntegerField(default=0)),
                ("succeeded", models.BigIntegerField(default=0)),
                ("http_503", models.BigIntegerField(default=0)),
                ("http_429", models.BigIntegerField(default=0)),
            ],
            options={
                "indexes": [
                    models.Index(fields=["owner_id", "minute"], name="outcomeminute_owner_minute"),
                    models.Index(fields=["minute"], name="outcomeminute_minute"),
                ],
            },
        ),
        migrations.CreateModel(
            name="RunTally",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("run_id", models.IntegerField()),
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
                ("n", models.BigIntegerField(default=0)),
                ("cost_units", models.BigIntegerField(default=0)),
                ("standard_cost_units", models.BigIntegerField(default=0)),
            ],
            options={
                "indexes": [models.Index(fields=["run_id", "state"], name="runtally_run_state")],
            },
        ),
        migrations.RunPython(forwards, backwards),
    ]
