"""Reservations of integer keys as spans of consecutive keys (one row per run)."""

from django.db import migrations, models
from django.db.models.functions import Cast

from pgbulk.migration_ops import RunSQLFile


def spans_for_integer_keys(apps, schema_editor):
    """Rows of jobs in flight: keyed on the model owning the primary key (proxies and
    multi-table children used their own label), and an integer key is a span of one."""
    from django.apps import apps as project_apps

    from pgbulk.locks import integer_keyed, lock_label

    Reservation = apps.get_model("pgbulk", "Reservation")
    held = Reservation.objects.using(schema_editor.connection.alias).filter(key_lo__isnull=True)
    for label in held.values_list("model", flat=True).distinct():
        try:
            model = project_apps.get_model(label)
        except LookupError:
            continue
        rows = held.filter(model=label)
        if lock_label(model) != label:
            rows.update(model=lock_label(model))
            rows = held.filter(model=lock_label(model))
        if integer_keyed(model):
            rows.update(key_lo=Cast("object_pk", models.BigIntegerField()))


class Migration(migrations.Migration):
    dependencies = [("pgbulk", "0008_fencing_sql")]

    operations = [
        migrations.RemoveConstraint(model_name="reservation", name="pgbulk_reservation_record_uniq"),
        migrations.AddField(
            model_name="reservation", name="key_lo",
            field=models.BigIntegerField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name="reservation", name="span", field=models.IntegerField(db_default=1, default=1),
        ),
        migrations.RunPython(spans_for_integer_keys, migrations.RunPython.noop),
        migrations.AddIndex(
            model_name="reservation",
            index=models.Index(condition=models.Q(("key_lo__isnull", False)),
                               fields=["model", "key_lo"], name="pgbulk_reservation_span_idx"),
        ),
        migrations.AddConstraint(
            model_name="reservation",
            constraint=models.UniqueConstraint(
                condition=models.Q(("exclusive", True), ("key_lo__isnull", True)),
                fields=("model", "object_pk"), name="pgbulk_reservation_record_uniq"),
        ),
        RunSQLFile("pgbulk_spans_v1.sql", checksum="31f53386c6551cf1"),
        RunSQLFile("pgbulk_lock_summary_v2.sql", checksum="6db927f22fc7eaff"),
    ]
