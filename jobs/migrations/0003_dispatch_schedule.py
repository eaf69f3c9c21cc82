from django.db import migrations


def schedule(apps, schema_editor):
    # Every minute, so retries that come due and jobs whose worker died are
    # picked up even when nothing new is submitted.
    Schedule = apps.get_model("django_q", "Schedule")
    Schedule.objects.update_or_create(
        name="flexdash-dispatch",
        defaults={"func": "jobs.tasks.dispatch", "schedule_type": "I", "minutes": 1, "repeats": -1},
    )


def unschedule(apps, schema_editor):
    apps.get_model("django_q", "Schedule").objects.filter(name="flexdash-dispatch").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0002_seed_prices"),
        ("django_q", "0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more"),
    ]
    operations = [migrations.RunPython(schedule, unschedule)]
