from django.db import migrations

from pgbulk.migration_ops import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [("pgbulk", "0001_initial")]

    operations = [
        RunSQLFile("pgbulk_functions_v1.sql", checksum="23ee2122ab720f27"),
        RunSQLFile("pgbulk_progress_unlogged_v1.sql", checksum="edbfe7355830bfce"),
    ]
