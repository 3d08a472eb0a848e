"""The change log: every record an update job changes, with its changed fields before and
after, written in the transaction that changes the record (see docs/changes.md).

Values are read and written by PostgreSQL (``jsonb_build_object`` of the columns), so
the log says what the database holds, and "has the record changed since?" is one
``jsonb`` comparison. The set-based strategy logs in the UPDATE's own statement.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.contrib.postgres.aggregates import JSONBAgg
from django.db import connections
from django.db.models import F, JSONField, Model, OuterRef, QuerySet, Subquery, TextField, Value
from django.db.models.expressions import RawSQL
from django.db.models.functions import Cast, Coalesce, JSONObject
from django.db.models.sql import UpdateQuery
from django.utils.translation import gettext as _

from pgbulk.conf import pgbulk_settings
from pgbulk.sqlfiles import query
from pgbulk.values import model_field

KEY, VALUES, PK = "_pgbulk_key", "_pgbulk_values", "_pgbulk_pk"

#: A record in an undo's plan: key, key as text, before, after, unchanged since, now.
Planned = tuple[Any, str, dict[str, Any], dict[str, Any], bool, dict[str, Any]]


def expired_message() -> str:
    """Why a job whose change log the sweep deleted cannot be undone."""
    return _("Its change log was deleted (kept %(days)s days after a job ends).") % {
        "days": f"{pgbulk_settings.CHANGE_RETENTION:g}"}


def log_spec(model: type[Model], values: dict[str, Any]) -> dict[str, list[str]] | None:
    """What an update job with ``values`` logs, fixed at launch: the attnames of its
    changed fields, its many-to-many names, and the fields CHANGE_LOG_EXCLUDE leaves out.
    None when RECORD_CHANGES is off."""
    if not pgbulk_settings.RECORD_CHANGES:
        return None
    excluded = excluded_fields(model)
    spec: dict[str, list[str]] = {"fields": [], "m2m": [], "excluded": []}
    for name in values:
        field = model_field(model, name)
        if excluded & {field.name, field.attname} or not restorable(field):
            spec["excluded"].append(field.name)
        elif field.many_to_many:
            spec["m2m"].append(field.name)
        else:
            spec["fields"].append(field.attname)
    return spec


def excluded_fields(model: type[Model]) -> set[str]:
    """The fields CHANGE_LOG_EXCLUDE keeps out of ``model``'s log: named for the model or
    any model it proxies or inherits from (the same columns, edited through a proxy or a
    multi-table child)."""
    family = [model, *model._meta.get_parent_list()]
    return {name for member in family
            for name in pgbulk_settings.CHANGE_LOG_EXCLUDE.get(member._meta.label, [])}


def restorable(field: Any) -> bool:
    """Can undo put this field's logged value back as it was? Not bytes (``to_jsonb``
    writes them as hex text) nor ranges (their text form); such a job logs the other
    fields and cannot be undone."""
    kind = field.get_internal_type()
    return kind != "BinaryField" and not kind.endswith("RangeField")


def loads(value: Any) -> Any:
    """A jsonb value as Python (Django's cursor hands jsonb over as text); decimals exact."""
    return json.loads(value, parse_float=Decimal) if isinstance(value, str) else value


class ChangeLog:
    """Writes one job's log rows; every method runs in the caller's (chunk's) transaction."""

    def __init__(self, job_id: Any, model: type[Model], spec: dict[str, list[str]],
                 using: str) -> None:
        self.job_id = str(job_id)
        self.model = model
        self.fields: list[str] = list(spec["fields"])
        self.m2m: list[str] = list(spec["m2m"])
        self.using = using

    # --- what a record holds now -----------------------------------------------------------

    def snapshot(self, records: QuerySet) -> QuerySet:
        """``(key, key as text, jsonb of the logged fields)`` of ``records``."""
        parts: dict[str, Any] = {attname: F(attname) for attname in self.fields}
        for name in self.m2m:
            parts[name] = Coalesce(Subquery(self.linked_keys(name)), Value([], JSONField()))
        return records.order_by("pk").annotate(**{
            PK: F("pk"), KEY: Cast("pk", TextField()), VALUES: JSONObject(**parts),
        }).values_list(PK, KEY, VALUES)

    def linked_keys(self, name: str) -> QuerySet:
        """The sorted keys a record's many-to-many field links to (a subquery)."""
        field = model_field(self.model, name)
        through = field.remote_field.through
        source = through._meta.get_field(field.m2m_field_name()).attname
        target = through._meta.get_field(field.m2m_reverse_field_name()).attname
        return (through._base_manager.filter(**{source: OuterRef("pk")}).order_by()
                .values(source).annotate(keys=JSONBAgg(target, order_by=target)).values("keys"))

    def sql(self, records: QuerySet) -> tuple[str, tuple]:
        sql, params = self.snapshot(records).query.get_compiler(self.using).as_sql()
        return sql, tuple(params)

    # --- writing ---------------------------------------------------------------------------

    def record_before(self, records: QuerySet) -> None:
        """Log the current values of ``records``, about to be changed."""
        sql, params = self.sql(records)
        self.execute(query("change_log_before").replace("{snapshot}", sql),
                     (self.job_id, *params))

    def record_after(self, records: QuerySet) -> None:
        """Complete the log rows of ``records`` with their values now; a record whose
        logged values did not change (it already held them) is not logged."""
        sql, params = self.sql(records)
        with connections[self.using].cursor() as cursor:
            cursor.execute(query("change_log_after").replace("{snapshot}", sql),
                           (self.job_id, *params))
            self.drop([key for key, in cursor.fetchall()])

    def drop(self, keys: list[str]) -> None:
        """Forget logged records that were not changed after all (their change failed or
        they already held the values)."""
        if keys:
            self.execute(query("change_log_drop"), (self.job_id, keys))

    def update_logged(self, records: QuerySet, assignments: dict[str, Any]) -> int:
        """One statement: read ``records``' values, UPDATE them with ``assignments`` (found
        again by their row address, not the index) and log each one's values before and
        after (only those whose logged values changed). Returns how many were updated.

        A record another transaction changed while the statement ran is not changed
        (PostgreSQL re-checks the condition on the newer row, whose address differs), so
        its "before" is never stale: the caller sees fewer records changed and takes the
        locked path. Only for plain fields of a model with one table (no parents)."""
        quote = connections[self.using].ops.quote_name
        table = quote(self.model._meta.db_table)
        fields: list[Any] = [self.model._meta.get_field(attname) for attname in self.fields]
        olds = {f"_pgbulk_old_{i}": F(f.attname) for i, f in enumerate(fields)}
        old = self.snapshot(records).annotate(_pgbulk_ctid=RawSQL(f"{table}.ctid", []), **olds)
        old_sql, old_params = old.values_list(
            PK, KEY, VALUES, "_pgbulk_ctid", *olds).query.get_compiler(self.using).as_sql()
        update: Any = self.model._base_manager.using(self.using).all().query.chain(UpdateQuery)
        update.add_update_values(assignments)
        set_sql, set_params = update.get_compiler(self.using).as_sql()  # no WHERE: added here
        now = ", ".join(f"{table}.{quote(f.column)}" for f in fields)
        then = ", ".join(f'o."{name}"' for name in olds)
        after = ", ".join(f"'{f.attname}', {table}.{quote(f.column)}" for f in fields)
        sql = (query("change_log_update").replace("{update}", set_sql)
               .replace("{old}", old_sql).replace("{table}", table)
               .replace("{now}", now).replace("{then}", then).replace("{after}", after))
        with connections[self.using].cursor() as cursor:
            cursor.execute(sql, (*old_params, *set_params, self.job_id))
            return cursor.fetchone()[0]

    def execute(self, sql: str, params: tuple) -> None:
        with connections[self.using].cursor() as cursor:
            cursor.execute(sql, params)

    # --- reading (undo) --------------------------------------------------------------------

    def plan(self, undone_job_id: Any, records: QuerySet) -> list[Planned]:
        """For undo: ``(key, key as text, before, after, unchanged since, values now)`` of
        each of ``records`` that ``undone_job_id`` logged."""
        sql, params = self.sql(records)
        with connections[self.using].cursor() as cursor:
            cursor.execute(query("change_log_plan").replace("{snapshot}", sql),
                           (*params, str(undone_job_id)))
            return [(pk, key, loads(before), loads(after), unchanged, loads(now))
                    for pk, key, before, after, unchanged, now in cursor.fetchall()]
