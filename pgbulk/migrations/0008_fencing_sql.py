from django.db import migrations

from pgbulk.migration_ops import RestoreSQLFileOnReverse, RunSQLFile


class Migration(migrations.Migration):
    """Liveness is the lock alone (of any runner of a job), a fenced sweep (v2), fenced
    task-end triggers, and the in-flight counts of each runner.

    The v1 functions keep their names and now delegate to v2, so workers of the
    previous release that are still draining call the safe versions.
    """

    dependencies = [("pgbulk", "0007_fencing_and_errors")]

    operations = [
        RestoreSQLFileOnReverse("pgbulk_liveness_v1.sql", checksum="03e6bea1017425ca"),
        RestoreSQLFileOnReverse("pgbulk_sweep_v1.sql", checksum="e5eff4ec1bb5b05c"),
        RunSQLFile("pgbulk_liveness_v2.sql", checksum="3093f1a5eccfd650"),
        RestoreSQLFileOnReverse("pgbulk_monitoring_v1.sql", checksum="6cd203b7a94fbab5"),
        RunSQLFile("pgbulk_runner_progress_v1.sql", checksum="5c9ba0a9a759672a"),
        RunSQLFile("pgbulk_sweep_v2.sql", checksum="d5ca8fb3b49cbb0b"),
        RunSQLFile("pgbulk_task_sync_v2.sql", checksum="af66f9a1baa26ffd"),
        RunSQLFile("pgbulk_monitoring_v2.sql", checksum="6f9bdd9a03449142"),
    ]
