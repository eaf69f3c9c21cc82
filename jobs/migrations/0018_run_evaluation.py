"""Evals: an eval run's compiled definition (its candidates, graders and the
pipeline steps behind each)."""

from django.db import migrations

import jobs.fields


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0017_pipelines"),
    ]

    operations = [
        migrations.AddField(
            model_name="run",
            name="evaluation",
            field=jobs.fields.JSONTextField(blank=True, null=True),
        ),
    ]
