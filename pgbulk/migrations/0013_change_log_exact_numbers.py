from django.db import migrations, models

import pgbulk.models


class Migration(migrations.Migration):
    """The change log's values are read with their numbers exact (Decimal); no SQL."""

    dependencies = [("pgbulk", "0012_active_jobs_in_flight")]

    operations = [
        migrations.AlterField(
            model_name="change", name="after",
            field=models.JSONField(decoder=pgbulk.models.ExactNumbers, null=True),
        ),
        migrations.AlterField(
            model_name="change", name="before",
            field=models.JSONField(decoder=pgbulk.models.ExactNumbers),
        ),
    ]
