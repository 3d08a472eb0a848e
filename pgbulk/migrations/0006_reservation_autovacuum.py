from django.db import migrations

from pgbulk.migration_ops import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [("pgbulk", "0005_safety_net")]

    operations = [
        RunSQLFile("pgbulk_reservation_autovacuum_v1.sql", checksum="a33a34180bfd2291"),
    ]
