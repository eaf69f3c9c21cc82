from decimal import Decimal

from django.db import migrations


def seed(apps, schema_editor):
    from jobs.catalog import PUBLISHED_PRICES

    ModelPrice = apps.get_model("jobs", "ModelPrice")
    for model, (inp, out, long_in, long_out) in PUBLISHED_PRICES.items():
        ModelPrice.objects.get_or_create(
            model=model,
            defaults={
                "input_per_million": Decimal(inp),
                "output_per_million": Decimal(out),
                "long_input_per_million": Decimal(long_in) if long_in else None,
                "long_output_per_million": Decimal(long_out) if long_out else None,
            },
        )


class Migration(migrations.Migration):
    dependencies = [("jobs", "0001_initial")]
    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
