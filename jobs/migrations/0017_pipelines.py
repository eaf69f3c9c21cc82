"""Pipelines: a run's definition, its table's rows, each job's step (and item of a
fan-out), the interaction a step continues, and two states: waiting on earlier
steps, and skipped after a failed one.

The two text columns are added with ALTER TABLE ADD COLUMN and a constant
default, on both databases: on SQLite Django's own AddField would rebuild
jobs_job for a NOT NULL column, and a rebuild drops the table's triggers (the
tallies, the search index).
"""

from django.db import migrations, models

import django.db.models.deletion
import jobs.fields

_TEXT_COLUMNS = (
    ("step", models.CharField(blank=True, max_length=64)),
    ("continues_interaction", models.CharField(blank=True, max_length=128)),
)


def _add_text_columns(apps, schema_editor):
    quote = schema_editor.quote_name
    for name, field in _TEXT_COLUMNS:
        schema_editor.execute(
            f"ALTER TABLE jobs_job ADD COLUMN {quote(name)} "
            f"varchar({field.max_length}) NOT NULL DEFAULT ''"
        )


def _drop_text_columns(apps, schema_editor):
    for name, _ in _TEXT_COLUMNS:
        schema_editor.execute(f"ALTER TABLE jobs_job DROP COLUMN {schema_editor.quote_name(name)}")


STATES = [
    ("waiting", "Waiting on earlier steps"),
    ("queued", "Queued"),
    ("running", "Running"),
    ("retrying", "Waiting to retry"),
    ("succeeded", "Succeeded"),
    ("failed", "Failed"),
    ("cancelled", "Cancelled"),
    ("skipped", "Skipped (an earlier step failed)"),
]


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0016_tallies"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(model_name="job", name=name, field=field)
                for name, field in _TEXT_COLUMNS
            ],
            database_operations=[migrations.RunPython(_add_text_columns, _drop_text_columns)],
        ),
        migrations.AddField(
            model_name="job",
            name="item",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="run",
            name="pipeline",
            field=jobs.fields.JSONTextField(blank=True, null=True),
        ),
        migrations.AlterField(
            model_name="job",
            name="state",
            field=models.CharField(choices=STATES, default="queued", max_length=16),
        ),
        migrations.AlterField(
            model_name="jobcount",
            name="state",
            field=models.CharField(choices=STATES, max_length=16),
        ),
        migrations.AlterField(
            model_name="runtally",
            name="state",
            field=models.CharField(choices=STATES, max_length=16),
        ),
        migrations.RemoveIndex(model_name="job", name="job_deadline"),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(
                condition=models.Q(
                    ("deadline_at__isnull", False),
                    ("state__in", ["waiting", "queued", "running", "retrying"]),
                ),
                fields=["deadline_at"],
                name="job_deadline",
            ),
        ),
        migrations.CreateModel(
            name="RunRow",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                    ),
                ),
                ("line_number", models.PositiveIntegerField()),
                ("custom_id", models.TextField(blank=True)),
                ("values", jobs.fields.JSONTextField(default=dict)),
                ("source_line", models.TextField(blank=True)),
                (
                    "run",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="rows",
                        to="jobs.run",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(fields=("run", "line_number"), name="run_row_line")
                ],
            },
        ),
    ]
