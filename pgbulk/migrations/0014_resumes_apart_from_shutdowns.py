from django.db import migrations, models

from pgbulk.migration_ops import RestoreSQLFileOnReverse, RunSQLFile


class Migration(migrations.Migration):
    """The sweep counts resumes after lost workers (``resumes``) apart from run tokens,
    and does not count a job stopped by a worker shutdown (``shutdown_attempt``); it
    keeps a job past retention while an undo of it runs: v3. The v2 and v1 sweep
    functions keep their names and delegate to v3."""

    dependencies = [("pgbulk", "0013_change_log_exact_numbers")]

    operations = [
        migrations.AddField(
            model_name="job", name="resumes",
            field=models.IntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="job", name="shutdown_attempt",
            field=models.IntegerField(blank=True, null=True),
        ),
        # Unfinished jobs keep the resumes they had: the run token counted them (and more).
        migrations.RunSQL(
            "UPDATE pgbulk_job SET resumes = attempt WHERE status IN ('queued', 'running')",
            migrations.RunSQL.noop),
        RestoreSQLFileOnReverse("pgbulk_sweep_v2.sql", checksum="d5ca8fb3b49cbb0b"),
        RunSQLFile("pgbulk_sweep_v3.sql", checksum="296052a5f92969fa"),
    ]
