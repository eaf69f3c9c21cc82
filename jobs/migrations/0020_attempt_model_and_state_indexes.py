"""The polled pages at a million jobs (issue 12).

Each attempt keeps the model and prompt length it was sent with, so the
capacity weather counts the last minute's requests and tokens from an index
on the attempts alone (it joined every one to its job and measured the
prompt again). Both columns are null on older attempts: only the last minute
is read, and a nullable column without a default is an ALTER TABLE on
SQLite, not a rebuild of the attempts table. Jobs get indexes for a list
filtered by state newest first (staff's, and a researcher's with the owner)
and for the requests in flight per model.
"""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0019_run_tallies'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='attempt',
            name='attempt_started',
        ),
        migrations.RemoveIndex(
            model_name='job',
            name='job_owner_state',
        ),
        migrations.AddField(
            model_name='attempt',
            name='model',
            field=models.CharField(blank=True, max_length=64, null=True),
        ),
        migrations.AddField(
            model_name='attempt',
            name='prompt_chars',
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.AddIndex(
            model_name='attempt',
            index=models.Index(fields=['started_at', 'model', 'http_status', 'prompt_chars'], name='attempt_started'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(fields=['owner', 'state', 'id'], name='job_owner_state'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(fields=['state', 'id'], name='job_state_recent'),
        ),
        migrations.AddIndex(
            model_name='job',
            index=models.Index(fields=['state', 'model'], name='job_state_model'),
        ),
    ]
