import django.db.models.deletion
from django.db import migrations, models

from pgbulk.migration_ops import RunSQLFile


class Migration(migrations.Migration):
    """The change log (pgbulk_change, keyed by job and record) and undo: a job's link to
    the job it undoes, the records an undo skipped, and the state of a job's log; the
    database lets the link go and drops the log when a job is deleted, whoever does it."""

    dependencies = [("pgbulk", "0010_monitoring_v3")]

    operations = [
        migrations.AddField(
            model_name="job",
            name="change_log",
            field=models.CharField(blank=True, db_default="", default="", max_length=10),
        ),
        migrations.AddField(
            model_name="job",
            name="skipped_count",
            field=models.BigIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name="job",
            name="undo_of",
            field=models.ForeignKey(
                blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL,
                related_name="undos", to="pgbulk.job"),
        ),
        migrations.AddField(
            model_name="joberror",
            name="skipped",
            field=models.BooleanField(db_default=False, default=False),
        ),
        migrations.AddIndex(
            model_name="job",
            index=models.Index(condition=models.Q(("change_log", "kept")), fields=["finished_at"],
                               name="pgbulk_job_change_log_idx"),
        ),
        migrations.CreateModel(
            name="Change",
            fields=[
                ("pk", models.CompositePrimaryKey(
                    "job", "object_pk", blank=True, editable=False, primary_key=True,
                    serialize=False)),
                ("job", models.ForeignKey(
                    db_constraint=False, db_index=False,
                    on_delete=django.db.models.deletion.CASCADE, related_name="changes",
                    to="pgbulk.job")),
                ("object_pk", models.TextField()),
                ("before", models.JSONField()),
                ("after", models.JSONField(null=True)),
            ],
            options={"db_table": "pgbulk_change"},
        ),
        RunSQLFile("pgbulk_change_log_v1.sql", checksum="7bb704570917fefe"),
    ]
