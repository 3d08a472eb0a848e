from django.db import migrations

from pgbulk.migration_ops import RunSQLFile


class Migration(migrations.Migration):
    dependencies = [
        ("pgbulk", "0004_job_status_fsm"),
        ("procrastinate", "0041_post_retry_failed_job"),
    ]

    operations = [
        RunSQLFile("pgbulk_liveness_v1.sql", checksum="03e6bea1017425ca"),
        RunSQLFile("pgbulk_sweep_v1.sql", checksum="e5eff4ec1bb5b05c"),
        RunSQLFile("pgbulk_task_sync_v1.sql", checksum="5664936f8be8841a"),
        RunSQLFile("pgbulk_monitoring_v1.sql", checksum="6cd203b7a94fbab5"),
    ]
