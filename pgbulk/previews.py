"""Preview of a bulk update: what it would change and what would fail, read without a write.

``preview(queryset, values)`` counts, with GROUP BY over the selection, how many records go
from which current value to the new one; for M2M fields how many gain or lose each related
record; shows a few records before and after; and runs the job's per-record validation in
memory on a random sample. No job, no reservation, no save(): outside a transaction it runs
in one REPEATABLE READ READ ONLY transaction (one snapshot, and PostgreSQL refuses writes).
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Iterable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any, TypedDict

from django.db import connections, transaction
from django.db.models import Count, Model, Q, QuerySet
from django.utils.translation import gettext as _

from pgbulk.conf import pgbulk_settings
from pgbulk.describe import entries_in_words
from pgbulk.exceptions import BulkValidationError, ConflictEntry, ErrorEntry
from pgbulk.launch import STRATEGIES, VALIDATIONS
from pgbulk.locks import as_selection, conflict_report
from pgbulk.models import Job
from pgbulk.permissions import can_view_records
from pgbulk.strategies import UpdateOperation, name_of
from pgbulk.values import ExactJSONEncoder, clean_values, model_field, split, to_key

#: Current values counted one by one per field (the rest is "other").
TOP_VALUES = 10
#: Records shown before -> after.
SAMPLE_RECORDS = 5
#: No job: the preview asks which jobs hold selected records, as a launch would.
NO_JOB = "00000000-0000-0000-0000-000000000000"


class ValueCount(TypedDict):
    value: Any  # a current value, JSON-ready (a foreign key: the related key)
    display: str  # as a person reads it: choice label, str() of the related record
    count: int  # selected records holding it


class FieldPreview(TypedDict):
    field: str
    label: str
    new: Any
    new_display: str
    changes: list[ValueCount]  # the top current values that change, most records first
    other: int  # records changing from any other current value
    unchanged: int  # records that already hold the new value


class RelatedCount(TypedDict):
    value: Any  # the related record's key
    display: str
    gain: int  # selected records that would gain it
    lose: int  # selected records that would lose it


class M2MPreview(TypedDict):
    field: str
    label: str
    operation: str  # "add", "remove" or "set"
    related: list[RelatedCount]  # the given records, then (set) the top ones removed
    other_lose: int  # "set": links to further related records that would go


class SampleChange(TypedDict):
    field: str
    label: str
    before: str
    after: str


class SampleRecord(TypedDict):
    pk: str
    record: str
    changes: list[SampleChange]
    fails: str  # why the job's validation would refuse it ("" if it passes or is not run)


class Failures(TypedDict):
    validation: str
    sampled: int  # records validated (0 when only M2M fields change: nothing to validate)
    failed: int  # records of the sample that would fail
    errors: list[ErrorEntry]


class Preview(TypedDict):
    model: str
    total: int
    fields: list[FieldPreview]
    m2m: list[M2MPreview]
    sample: list[SampleRecord]
    failures: Failures
    held: list[ConflictEntry]  # other jobs holding selected records now (Apply is refused)


def preview(
    queryset: QuerySet,
    values: dict[str, Any],
    *,
    fields: Iterable[str] | None = None,
    validation: str = "changed",
    strategy: str = "save",
    sample_size: int | None = None,
) -> Preview:
    """What ``bulk_update(queryset, values, validation=..., strategy=...)`` would do; see
    docs/changes.md.

    Values are checked as by ``bulk_update`` (BulkValidationError); ``sample_size``
    records (PREVIEW_SAMPLE_SIZE; none for the set-based strategy, which validates no
    record one by one) are validated in memory.
    """
    if validation not in VALIDATIONS:
        raise ValueError(f"validation must be one of {VALIDATIONS}, not {validation!r}")
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
    size = pgbulk_settings.PREVIEW_SAMPLE_SIZE if sample_size is None else sample_size
    if isinstance(size, bool) or not isinstance(size, int) or size < 0:
        raise ValueError(f"sample_size must be a whole number >= 0, not {sample_size!r}")
    if strategy == "queryset":
        size = 0  # the set-based strategy validates no record one by one
    queryset = as_selection(queryset)
    with read_only(queryset.db):
        cleaned = clean_values(queryset.model, values, fields)
        result = Previewer(queryset, cleaned).run(validation, size)
    return json.loads(json.dumps(result, cls=ExactJSONEncoder))


@contextmanager
def read_only(using: str) -> Iterator[None]:
    """One read-only snapshot, unless the caller's transaction is already open."""
    connection = connections[using]
    if connection.in_atomic_block:
        yield
        return
    with transaction.atomic(using=using), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
        yield


class Previewer:
    """The queries of one preview, over the selection's keys."""

    def __init__(self, queryset: QuerySet, cleaned: dict[str, Any]) -> None:
        self.queryset = queryset
        self.model: type[Model] = queryset.model
        self.cleaned = cleaned
        self.simple, m2m = split(self.model, cleaned)
        # Related keys typed as the related model's (a UUID key arrives as text).
        self.m2m = {name: {op: [to_key(model_field(self.model, name).related_model, key)
                                for key in keys] for op, keys in change.items()}
                    for name, change in m2m.items()}
        # The selected records, however the queryset joins, annotates or orders.
        manager = self.model._base_manager.using(queryset.db)
        self.records = manager.filter(pk__in=queryset.order_by().values("pk"))
        self.scalar = [model_field(self.model, name) for name in cleaned
                       if name not in self.m2m]

    def run(self, validation: str, size: int) -> Preview:
        counts = self.records.aggregate(total=Count("pk"), **{
            f"same_{n}": Count("pk", filter=self.holds_new(f))
            for n, f in enumerate(self.scalar)})
        if not counts["total"]:
            raise BulkValidationError({"__all__": [_("No records are selected.")]})
        sample, failures = self.sample_and_failures(validation, size)
        return {
            "model": self.model._meta.label,
            "total": counts["total"],
            "fields": [self.field_preview(f, counts["total"], counts[f"same_{n}"])
                       for n, f in enumerate(self.scalar)],
            "m2m": [self.m2m_preview(name, change, counts["total"])
                    for name, change in self.m2m.items()],
            "sample": sample,
            "failures": failures,
            "held": conflict_report(NO_JOB, self.queryset, using=self.queryset.db),
        }

    def holds_new(self, field: Any) -> Q:
        new = self.simple[field.attname]
        return Q(**{f"{field.attname}__isnull": True} if new is None else {field.attname: new})

    def field_preview(self, field: Any, total: int, unchanged: int) -> FieldPreview:
        top = list(self.records.exclude(self.holds_new(field)).values_list(field.attname)
                   .annotate(n=Count("pk")).order_by("-n", field.attname)[:TOP_VALUES])
        new = self.simple[field.attname]
        shown = displays(field, [value for value, _n in top] + [new])
        return {
            "field": field.name, "label": str(field.verbose_name), "new": new,
            "new_display": shown[key_of(new)],
            "changes": [{"value": value, "display": shown[key_of(value)], "count": n}
                        for value, n in top],
            "other": total - unchanged - sum(n for _value, n in top),
            "unchanged": unchanged,
        }

    def m2m_preview(self, name: str, change: dict[str, list], total: int) -> M2MPreview:
        field = model_field(self.model, name)
        (operation, keys), = change.items()
        links = self.links(field)
        target = field.m2m_reverse_field_name()
        linked = dict(links.filter(**{f"{target}__in": keys}).values_list(target)
                      .annotate(n=Count("pk")))
        removed: list[tuple[Any, int]] = []
        other = 0
        if operation == "set":
            stale = links.exclude(**{f"{target}__in": keys})
            removed = list(stale.values_list(target).annotate(n=Count("pk"))
                           .order_by("-n", target)[:TOP_VALUES])
            other = stale.count() - sum(n for _key, n in removed) if removed else 0
        shown = related_names(field.related_model, [*keys, *(key for key, _n in removed)])
        related: list[RelatedCount] = [
            {"value": key, "display": shown.get(key, str(key)),
             "gain": 0 if operation == "remove" else total - linked.get(key, 0),
             "lose": linked.get(key, 0) if operation == "remove" else 0}
            for key in keys]
        related += [{"value": key, "display": shown.get(key, str(key)), "gain": 0, "lose": n}
                    for key, n in removed]
        return {"field": name, "label": str(field.verbose_name), "operation": operation,
                "related": related, "other_lose": other}

    def links(self, field: Any) -> QuerySet:
        """The M2M field's link rows of the selected records."""
        through = field.remote_field.through
        return through._base_manager.using(self.queryset.db).filter(
            **{f"{field.m2m_field_name()}__in": self.records.values("pk")})

    def sample(self) -> list[SampleRecord]:
        """The first records of the selection, in its order, before and after."""
        ordered = self.queryset if self.queryset.ordered else self.queryset.order_by("pk")
        records = list(ordered.prefetch_related(*self.m2m)[:SAMPLE_RECORDS])
        after = {f.attname: displays(f, [self.simple[f.attname]]) for f in self.scalar}
        related = {name: related_names(model_field(self.model, name).related_model, keys)
                   for name, change in self.m2m.items() for keys in change.values()}
        rows: list[SampleRecord] = []
        for record in records:
            changes: list[SampleChange] = []
            for f in self.scalar:
                new = self.simple[f.attname]
                changes.append({"field": f.name, "label": str(f.verbose_name),
                                "before": display_of(f, record),
                                "after": after[f.attname][key_of(new)]})
            for name, change in self.m2m.items():
                changes.append(m2m_change(record, model_field(self.model, name), change,
                                          related[name]))
            rows.append({"pk": str(record.pk), "record": name_of(record), "changes": changes,
                         "fails": ""})
        return rows

    def operation(self, validation: str) -> UpdateOperation:
        job = Job(kind="update", model=self.model._meta.label,
                  params={"values": self.cleaned, "validation": validation})
        return UpdateOperation(job, self.queryset.db)

    def sample_and_failures(self, validation: str, size: int
                            ) -> tuple[list[SampleRecord], Failures]:
        """The shown records, each marked with why the job would refuse it, and the
        failures predicted on ``size`` records: those shown, then a random sample."""
        rows = self.sample()
        failures = self.failures(validation, size, [row["pk"] for row in rows])
        why: dict[str, list[str]] = {}
        for entry in entries_in_words(self.model, failures["errors"]):
            field = f"{entry['field']}: " if entry.get("field") else ""
            why.setdefault(str(entry["pk"]), []).append(f"{field}{entry['message']}")
        return [{**row, "fails": " ".join(why.get(row["pk"], []))} for row in rows], failures

    def failures(self, validation: str, size: int, shown: list[str]) -> Failures:
        """The job's per-record validation, run in memory on ``size`` records: the
        ``shown`` ones first, then a random sample of the others."""
        operation = self.operation(validation)
        if not operation.simple or not size:
            return {"validation": validation, "sampled": 0, "failed": 0, "errors": []}
        first = shown[:size]
        others = self.records.exclude(pk__in=first).order_by("?")
        keys = [*first, *others.values_list("pk", flat=True)[:size - len(first)]]
        records = list(self.queryset.filter(pk__in=keys).order_by("pk"))
        failed, errors = operation.would_fail((record, operation.simple) for record in records)
        return {"validation": validation, "sampled": len(records), "failed": failed,
                "errors": errors}


def m2m_change(record: Model, field: Any, change: dict[str, list],
               names: dict[Any, str]) -> SampleChange:
    """One record's related records before and after an M2M change, by name."""
    (operation, keys), = change.items()
    current = {obj.pk: str(obj) for obj in getattr(record, field.name).all()}
    if operation == "set":
        after = {key: names.get(key, str(key)) for key in keys}
    elif operation == "add":
        after = {**current, **{key: names.get(key, str(key)) for key in keys}}
    else:
        after = {key: name for key, name in current.items() if key not in keys}
    return {"field": field.name, "label": str(field.verbose_name),
            "before": joined(current.values()), "after": joined(after.values())}


def joined(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or _("(none)")


def related_names(model: type[Model], keys: Iterable[Any]) -> dict[Any, str]:
    """``{key: str(record)}`` of related records, in one query."""
    wanted = [key for key in dict.fromkeys(keys) if key is not None]
    return {key: name_of(obj) for key, obj in model._base_manager.in_bulk(wanted).items()}


def displays(field: Any, values: list[Any]) -> dict[Any, str]:
    """``{key_of(value): text}``: choice labels, Yes/No, str() of related records, "(empty)"."""
    names = related_names(field.related_model, values) if field.is_relation else {}
    choices = {key: str(label) for key, label in field.flatchoices}
    return {key_of(value): display(field, value, choices, names) for value in values}


def key_of(value: Any) -> Any:
    """``value`` as a dict key: itself, or its JSON text (a JSONField's dict or list)."""
    return value if isinstance(value, Hashable) else json.dumps(value, sort_keys=True,
                                                                  default=str)


def display(field: Any, value: Any, choices: dict[Any, str], names: dict[Any, str]) -> str:
    if value is None or value == "":
        return _("(empty)")
    if field.is_relation:
        return names.get(value, str(value))
    if isinstance(value, Hashable) and value in choices:
        return choices[value]
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, default=str)
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, Decimal) and getattr(field, "decimal_places", None) is not None:
        return f"{value:.{field.decimal_places}f}"  # 12 -> 12.00, exact at any precision
    return str(value)


def display_of(field: Any, record: Model) -> str:
    """A record's current value of ``field``, as ``displays`` shows it."""
    value = getattr(record, field.attname)
    if field.is_relation and value is not None and field.is_cached(record):
        return name_of(getattr(record, field.name))
    return displays(field, [value])[key_of(value)]


def preview_form(form: Any, queryset: QuerySet, *, fields: list[str], validation: str,
                 strategy: str, user: Any) -> Preview | None:
    """The preview of a bulk form's values as ``user`` may read it (the list view's and
    the admin action's Preview); None when invalid (the errors are put on the form)."""
    if not form.is_valid():
        return None
    try:
        data = preview(queryset, form.values(), fields=fields, validation=validation,
                       strategy=strategy)
    except BulkValidationError as invalid:
        form.add_validation_errors(invalid.errors)
        return None
    errors = entries_in_words(queryset.model, list(data["failures"]["errors"]))
    data = {**data, "failures": {**data["failures"], "errors": errors}}
    return public_preview(data, can_view_records(user, queryset.model._meta.label))


def public_preview(data: Preview, readable: bool) -> Preview:
    """What a user who may not view the model's records may read: counts only."""
    if readable:
        return data
    failures = {**data["failures"], "errors": []}
    return {**data, "sample": [], "failures": failures}  # type: ignore[typeddict-item]
