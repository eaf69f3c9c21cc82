"""A run's progress from stored tallies, whatever the size of the run: the
run page read every job of the run (tokens, cost, 503s, 429s, the flex jobs
still to answer) and joined every attempt of it to the minute (its table,
its last hour, its rate), 300 ms a poll for a 50,000-job run.

- RunTally (migration 0016) also sums, per (run, state), the jobs priced,
  those asked for flex, their input, output and thinking tokens, and their
  503s and 429s.
- RunMinute: per (run, minute its attempts finished) how many, the answers,
  the failures that ended a job, the errors of any kind and the 503s and
  429s among them, from jobs_attempt (its run is its job's, which never
  changes).
- An index on the jobs' (run, first start): a run's rate counts from its
  first start, read from the index instead of every job of the run.

Written as migration 0016 writes its tallies (its descriptions and SQL are
reused here): row triggers and upserts on SQLite, statement triggers that
append deltas on PostgreSQL. RunTally's triggers are dropped and written
again with its new columns, and both tables are filled from the jobs and
attempts already there.
"""

import importlib

from django.db import migrations, models

tallies = importlib.import_module("jobs.migrations.0016_tallies")
Tally, SQLITE, POSTGRESQL = tallies.Tally, tallies.SQLITE, tallies.POSTGRESQL

OLD_RUN_TALLY = next(t for t in tallies.TALLIES if t.table == "jobs_runtally")


def _total(column: str) -> tuple:
    return (f"coalesce({{r}}.{column}, 0)",) * 2


RUN_TALLY = Tally(
    table="jobs_runtally",
    source="jobs_job",
    keys=OLD_RUN_TALLY.keys,
    values={
        **OLD_RUN_TALLY.values,
        "priced": tallies._case("{r}.cost_usd IS NOT NULL"),
        "flex": tallies._case("{r}.tier_requested = 'flex'"),
        "input_tokens": _total("input_tokens"),
        "output_tokens": _total("output_tokens"),
        "thought_tokens": _total("thought_tokens"),
        "http_503": _total("http_503"),
        "http_429": _total("http_429"),
    },
    where=OLD_RUN_TALLY.where,
    watched=(
        *OLD_RUN_TALLY.watched,
        "tier_requested",
        "input_tokens",
        "output_tokens",
        "thought_tokens",
        "http_503",
        "http_429",
    ),
)

# An attempt's run is its job's, looked up by primary key (see ATTEMPT_OWNER).
ATTEMPT_RUN = "(SELECT run_id FROM jobs_job WHERE id = {r}.job_id)"
ERRORS = "('will_retry', 'failed', 'paused', 'lost')"
RUN_MINUTE = Tally(
    table="jobs_runminute",
    source="jobs_attempt",
    keys={"run_id": (ATTEMPT_RUN,) * 2, "minute": tallies.OUTCOMES.keys["minute"]},
    values={
        "finished": ("1",) * 2,
        "succeeded": tallies._case("{r}.outcome = 'succeeded'"),
        "failed": tallies._case("{r}.outcome = 'failed'"),
        "errors": tallies._case(f"{{r}}.outcome IN {ERRORS}"),
        "http_503": tallies._case("{r}.http_status = 503"),
        "http_429": tallies._case("{r}.http_status = 429"),
    },
    where=f"{{r}}.finished_at IS NOT NULL AND {ATTEMPT_RUN} IS NOT NULL",
    watched=("finished_at", "outcome", "http_status"),
)


def _write(vendor: str):
    if vendor not in ("sqlite", "postgresql"):
        raise NotImplementedError(f"The tallies have no SQL for {vendor}.")
    if vendor == "sqlite":
        return SQLITE, tallies._sqlite
    return POSTGRESQL, tallies._postgresql


def drop_old(apps, schema_editor):
    _, write = _write(schema_editor.connection.vendor)
    for statement in write(OLD_RUN_TALLY)[1]:
        schema_editor.execute(statement)


def create_new(apps, schema_editor):
    number, write = _write(schema_editor.connection.vendor)
    schema_editor.execute("DELETE FROM jobs_runtally")
    for tally in (RUN_TALLY, RUN_MINUTE):
        for statement in write(tally)[0]:
            schema_editor.execute(statement)
        schema_editor.execute(tallies._fill(tally, number))


def drop_new(apps, schema_editor):
    _, write = _write(schema_editor.connection.vendor)
    for tally in (RUN_MINUTE, RUN_TALLY):
        for statement in write(tally)[1]:
            schema_editor.execute(statement)


def create_old(apps, schema_editor):
    number, write = _write(schema_editor.connection.vendor)
    schema_editor.execute("DELETE FROM jobs_runtally")
    for statement in write(OLD_RUN_TALLY)[0]:
        schema_editor.execute(statement)
    schema_editor.execute(tallies._fill(OLD_RUN_TALLY, number))


def _counter() -> models.BigIntegerField:
    return models.BigIntegerField(default=0)


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0018_run_evaluation"),
    ]

    operations = [
        migrations.RunPython(drop_old, create_old),
        *(
            migrations.AddField(model_name="runtally", name=name, field=_counter())
            for name in (
                "priced",
                "flex",
                "input_tokens",
                "output_tokens",
                "thought_tokens",
                "http_503",
                "http_429",
            )
        ),
        migrations.CreateModel(
            name="RunMinute",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("run_id", models.IntegerField()),
                ("minute", models.DateTimeField()),
                ("finished", _counter()),
                ("succeeded", _counter()),
                ("failed", _counter()),
                ("errors", _counter()),
                ("http_503", _counter()),
                ("http_429", _counter()),
            ],
            options={
                "indexes": [
                    models.Index(fields=["run_id", "minute"], name="runminute_run_minute")
                ],
            },
        ),
        migrations.RunPython(create_new, drop_new),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(fields=["run", "first_started_at"], name="job_run_started"),
        ),
    ]
