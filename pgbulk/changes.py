"""A job's change log for people: pages of changed records (before → after, in words), the
log as CSV, and the bulk jobs that changed one record (the admin's History).

Read from ``pgbulk_change`` by its primary key (job, key): pages walk it in the key's
order (numeric for integer keys, then a sort of the job's keys: about 120 ms a page for
1M rows of one job; text order otherwise, an index probe), from the key a page starts
after; the count is exact (an index scan: about 50 ms for 1M rows of one job).
"""

from __future__ import annotations

import contextlib
import csv
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from django.apps import apps
from django.core.exceptions import ValidationError
from django.db.models import BigIntegerField, F, Model, QuerySet
from django.db.models.functions import Cast
from django.utils.translation import gettext as _

from pgbulk import describe, locks, record_errors
from pgbulk.models import Change, Job
from pgbulk.values import to_key

PER_PAGE = 50
#: Key types shown in numeric order (the log holds keys as text).
INTEGER_KEYS = ("smallint", "integer", "bigint")
#: Jobs a record's History lists (the most recent).
HISTORY_LIMIT = 100


@dataclass
class FieldChange:
    """One field of one record: ``before → after``; many-to-many: ``added``/``removed``."""

    label: str
    before: str = ""
    after: str = ""
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    many: bool = False


@dataclass
class ChangeRow:
    object_pk: str
    record: str
    admin_url: str
    fields: list[FieldChange]


@dataclass
class ChangePage:
    """One page of a log: ``after``/``before`` keys of the next/previous pages (None: none)."""

    rows: list[ChangeRow]
    total: int
    key: str
    next_after: str | None
    previous_before: str | None
    first: bool


def state(job: Job) -> str:
    """ "kept", "expired", "off" (an update that ran without a log), "before" (launched
    before pgbulk kept logs) or "" (not an update)."""
    if job.kind != "update":
        return ""
    if job.change_log in ("kept", "expired"):
        return job.change_log
    return "off" if "change_log" in job.params else "before"


def spec(job: Job) -> dict[str, list[str]]:
    logged = job.params.get("change_log") or job.params.get("undo_spec") or {}
    return {name: list(logged.get(name) or []) for name in ("fields", "m2m", "excluded")}


def log_of(job: Job) -> QuerySet[Change]:
    return Change.objects.using(job._state.db).filter(job_id=job.id)


# --- pages ----------------------------------------------------------------------------------


def page(job: Job, *, links: bool, key: str = "", after: str = "", before: str = "",
         per_page: int = PER_PAGE) -> ChangePage:
    """A page of the log in key order (see ``in_key_order``): from the start, after
    ``after`` or before ``before``; ``key`` keeps the one record with that key."""
    found = with_key(job, log_of(job), key)
    log = in_key_order(job, found)
    numeric = is_numeric(job)
    start, end = bound(after, numeric), bound(before, numeric)
    if end is not None:
        items = list(log.filter(sort_key__lt=end).order_by("-sort_key")[:per_page + 1])
        more_before = len(items) > per_page
        items = items[:per_page][::-1]
        previous = items[0].object_pk if more_before and items else None
        following = items[-1].object_pk if items else None
        first = not more_before
    else:
        items = list((log.filter(sort_key__gt=start) if start is not None else log)
                     .order_by("sort_key")[:per_page + 1])
        following = items[per_page - 1].object_pk if len(items) > per_page else None
        items = items[:per_page]
        previous = items[0].object_pk if start is not None and items else None
        first = start is None
    return ChangePage(rows(job, items, links=links), found.count(), key, following, previous,
                      first)


def is_numeric(job: Job) -> bool:
    """Are the job's keys integers (its model's key type)?"""
    model = describe.job_model(job)
    return model is not None and locks.key_type(model, job._state.db or "default") in INTEGER_KEYS


def in_key_order(job: Job, log: QuerySet[Change]) -> Any:  # annotated: the stubs miss sort_key
    """``log`` with ``sort_key``: the key as a number for integer keys (2, 10, 102, also
    below zero), else the key as text."""
    return log.annotate(sort_key=Cast("object_pk", BigIntegerField()) if is_numeric(job)
                        else F("object_pk"))


def with_key(job: Job, log: QuerySet[Change], key: str) -> QuerySet[Change]:
    """``log`` kept to the record with ``key`` ("" or blanks: all), written as the model
    writes its keys (a UUID in capitals or without hyphens finds its record); a key as
    typed first, then without the blanks around it (a key may begin with a space); none
    for a key no text can hold (a NUL character, which PostgreSQL would refuse)."""
    if not key.strip():
        return log
    if "\x00" in key:
        return log.none()
    model = describe.job_model(job)

    def written(text: str) -> str:
        with contextlib.suppress(ValidationError, TypeError, ValueError):  # else as typed
            return (locks.key_texts(model, [model._meta.pk.to_python(text)], job._state.db
                                    or "default")[0] if model else text)
        return text

    exact = log.filter(object_pk=written(key))
    if key == key.strip() or exact.exists():
        return exact
    return log.filter(object_pk=written(key.strip()))


def bound(text: str, numeric: bool) -> Any:
    """A page bound from the URL: None when absent (or not a number for integer keys, or
    not text PostgreSQL can hold)."""
    if not text or "\x00" in text:
        return None
    if not numeric:
        return text or None
    try:
        return int(text)
    except ValueError:
        return None


def rows(job: Job, items: list[Change], *, links: bool) -> list[ChangeRow]:
    """Each logged record, named as it is now, with its changes in words."""
    model = describe.job_model(job)
    if model is None:
        return [ChangeRow(c.object_pk, c.object_pk, "", raw_fields(c)) for c in items]
    keys = [c.object_pk for c in items]
    names = record_errors.current_names(model, keys) if keys else {}
    reader = Reader(model)
    for change in items:
        reader.want(change.before, change.after or {})
    reader.fetch()
    return [ChangeRow(
        c.object_pk, names.get(c.object_pk) or _("(no longer exists)"),
        record_errors.admin_change_url(model, c.object_pk) if links else "",
        reader.fields(ordered(job, c), c.before, c.after or {})) for c in items]


def ordered(job: Job, change: Change) -> list[str]:
    """The logged names of a change, in the order the job named them."""
    logged = spec(job)
    names = [*logged["fields"], *logged["m2m"]]
    extra = sorted((set(change.before) | set(change.after or {})) - set(names))
    return [name for name in names if name in change.before] + extra


def raw_fields(change: Change) -> list[FieldChange]:
    after = change.after or {}
    return [FieldChange(name, raw_text(change.before.get(name)), raw_text(after.get(name)))
            for name in sorted(set(change.before) | set(after))]


class Reader:
    """Puts logged values in words: choices by label, related records by name (one query
    per related model for a whole page), many-to-many as added and removed."""

    def __init__(self, model: type[Model]) -> None:
        self.model = model
        self.wanted: dict[type[Model], set[Any]] = defaultdict(set)
        self.names: dict[tuple[type[Model], str], str] = {}

    def model_field(self, name: str) -> Any:
        try:
            return self.model._meta.get_field(name)
        except Exception:
            return None

    def want(self, before: dict[str, Any], after: dict[str, Any]) -> None:
        for name in set(before) | set(after):
            found = self.model_field(name)
            if found is not None and found.is_relation:
                values = [before.get(name), after.get(name)]
                keys = [k for v in values for k in (v if isinstance(v, list) else [v])]
                self.wanted[found.related_model].update(k for k in keys if k is not None)

    def fetch(self) -> None:
        for model, keys in self.wanted.items():
            typed = {}
            for key in keys:
                try:
                    typed[to_key(model, key)] = str(key)
                except Exception:
                    continue
            for pk, obj in model._base_manager.in_bulk(list(typed)).items():
                if pk in typed:
                    self.names[(model, typed[pk])] = str(obj)

    def name(self, model: type[Model], key: Any) -> str:
        return self.names.get((model, str(key))) or _("#%(key)s (deleted)") % {"key": key}

    def label(self, name: str) -> str:
        """A logged name's verbose name (the name itself if the model no longer has it)."""
        found = self.model_field(name)
        return str(found.verbose_name) if found is not None else name

    def phrase(self, name: str, raw: Any) -> str:
        """One logged value in words; many-to-many: the related records, by name."""
        found = self.model_field(name)
        if found is None:
            return raw_text(raw) or _("empty")
        if found.many_to_many:
            keys = raw or []
            return ", ".join(self.name(found.related_model, k) for k in keys) or _("empty")
        return self.value(found, raw)

    def fields(self, names: list[str], before: dict[str, Any],
               after: dict[str, Any]) -> list[FieldChange]:
        return [self.one(name, before.get(name), after.get(name)) for name in names]

    def one(self, name: str, before: Any, after: Any) -> FieldChange:
        found = self.model_field(name)
        if found is None:
            return FieldChange(name, raw_text(before), raw_text(after))
        label = str(found.verbose_name)
        if found.many_to_many:
            old, new = list(before or []), list(after or [])
            return FieldChange(
                label, many=True,
                added=[self.name(found.related_model, k) for k in new if k not in old],
                removed=[self.name(found.related_model, k) for k in old if k not in new])
        return FieldChange(label, self.value(found, before), self.value(found, after))

    def value(self, found: Any, raw: Any) -> str:
        if raw is not None and found.get_internal_type() == "JSONField":
            return describe.json_text(raw)  # a JSON "" or [] is a value, not empty
        if raw is None or raw == "":
            return _("empty")
        if found.is_relation:
            return f"{self.name(found.related_model, raw)} (#{raw})"
        try:
            return describe.value_phrase(found, raw)
        except Exception:
            return raw_text(raw)


def raw_text(value: Any) -> str:
    """A logged value as plain text: lists as space-separated keys, objects as JSON, null
    as "", numbers with every digit logged."""
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(item) for item in value)
    if isinstance(value, dict):
        return describe.json_text(value)
    return str(value)


# --- CSV ------------------------------------------------------------------------------------


def csv_lines(job: Job, key: str = "") -> Iterator[str]:
    """The log as CSV (values as stored: keys, not names), streamed in key order; ``key``
    keeps the one record with that key, as the page's filter does."""
    writer = csv.writer(record_errors.Echo())
    logged = spec(job)
    names = [*logged["fields"], *logged["m2m"]]
    yield writer.writerow(["key", *[f"{n} {side}" for n in names for side in ("before", "after")]])
    items = (in_key_order(job, with_key(job, log_of(job), key)).order_by("sort_key")
             .values_list("object_pk", "before", "after"))
    model = describe.job_model(job)
    fields = {n: Reader(model).model_field(n) if model else None for n in names}
    as_json = {n for n, f in fields.items() if f is not None
               and f.get_internal_type() == "JSONField"}  # written as JSON, lists too
    for key, before, after in items.iterator(chunk_size=2000):
        after = after or {}
        cells = [describe.json_text(side[n]) if n in as_json and side.get(n) is not None
                 else raw_text(side.get(n)) for n in names for side in (before, after)]
        yield writer.writerow([record_errors.safe_cell(cell) for cell in [key, *cells]])


# --- one record's history -------------------------------------------------------------------


@dataclass
class HistoryRow:
    job: Job
    summary: str
    fields: list[FieldChange]


def same_records(model: type[Model]) -> list[str]:
    """Labels of the models whose jobs change this model's rows: its concrete model, its
    proxies, and the models of its multi-table inheritance line (same key)."""
    base = model._meta.concrete_model
    return sorted(m._meta.label for m in apps.get_models()
                  if issubclass(m, base) or issubclass(base, m))  # type: ignore[arg-type]


def record_history(model: type[Model], pk: Any, *,
                   limit: int = HISTORY_LIMIT) -> list[HistoryRow]:
    """The bulk jobs whose change log names the record, newest first (uses the log's
    primary key: one index probe per job of the model)."""
    jobs = Job.objects.filter(model__in=same_records(model), kind="update", change_log="kept")
    key = locks.key_texts(model, [pk])[0]
    changes = list(Change.objects.filter(job_id__in=jobs.values("id"), object_pk=key)
                   .select_related("job", "job__user").order_by("-job__created_at")[:limit])
    reader = Reader(model)
    for change in changes:
        reader.want(change.before, change.after or {})
    reader.fetch()
    return [HistoryRow(c.job, describe.summary(c.job),
                       reader.fields(ordered(c.job, c), c.before, c.after or {}))
            for c in changes]
