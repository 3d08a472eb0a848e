from django.db import migrations

from pgbulk.migration_ops import RestoreSQLFileOnReverse, RunSQLFile


class Migration(migrations.Migration):
    """Stale jobs by the project's ages: pgbulk_stale_jobs_v1(max_task_duration,
    sync_start_timeout); the view pgbulk_stale_jobs calls it with the defaults."""

    dependencies = [("pgbulk", "0009_reservation_spans")]

    operations = [
        RestoreSQLFileOnReverse("pgbulk_monitoring_v2.sql", checksum="6f9bdd9a03449142"),
        RunSQLFile("pgbulk_monitoring_v3.sql", checksum="7a27188eeb86bfaa"),
    ]
