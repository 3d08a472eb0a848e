from django.db import migrations

from pgbulk.migration_ops import RunSQLFile


class Migration(migrations.Migration):
    """pgbulk_active_jobs (pgbulk_status) counts what live runners have processed in
    their open transactions, as the job pages do."""

    dependencies = [("pgbulk", "0011_change_log_and_undo")]

    operations = [
        RunSQLFile("pgbulk_monitoring_v4.sql", checksum="69db527275194b0d"),
    ]
