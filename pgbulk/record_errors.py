"""A job's per-record errors, for pages and CSV: every one, named, linked to the admin.

Errors come from the uncapped ``JobError`` table; a job from before it (or whose engine
wrote only the capped summary) falls back to ``job.errors``. Pages show failures and the
records an undo skipped (``JobError.skipped``: changed since the undone job) apart; the
CSV holds both (a skip's message says it was skipped). A row without the record's
``str()`` is named by the record as it is now, never shown as a bare key.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.contrib.admin.utils import quote
from django.core.paginator import Page, Paginator
from django.db.models import Model
from django.urls import NoReverseMatch, reverse
from django.utils.translation import gettext as _

from pgbulk.describe import field_label, job_model
from pgbulk.models import Job

PER_PAGE = 50


@dataclass
class ErrorRow:
    object_pk: str
    record: str
    field: str
    message: str
    admin_url: str = ""
    skipped: bool = False  # an undo left the record alone (not a failure)


def source(job: Job, *, skipped: bool | None = False) -> Any:
    """The job's failures (``skipped=True``: its skipped records; None: both): a JobError
    queryset, or failures made from the capped summary."""
    stored = job.record_errors.order_by("id")
    if skipped is not None:
        stored = stored.filter(skipped=skipped)
    if skipped or stored.exists() or not job.errors:
        return stored
    return [ErrorRow(str(e.get("pk", "")), str(e.get("record") or ""),
                     str(e.get("field") or ""), str(e.get("message", ""))) for e in job.errors]


def count(job: Job, *, skipped: bool = False) -> int:
    rows = source(job, skipped=skipped)
    return len(rows) if isinstance(rows, list) else rows.count()


def as_row(item: Any) -> ErrorRow:
    if isinstance(item, ErrorRow):
        return item
    return ErrorRow(item.object_pk, item.record, item.field or "", item.message,
                    skipped=item.skipped)


def named(job: Job, items: list[Any], *, links: bool) -> list[ErrorRow]:
    """Rows with a name for every record (its ``str()`` now if none was captured)."""
    rows = [as_row(item) for item in items]
    model = job_model(job)
    if model is None:
        return rows
    nameless = [row.object_pk for row in rows if not row.record]
    current = current_names(model, nameless) if nameless else {}
    for row in rows:
        row.record = row.record or current.get(row.object_pk) or _("(no longer exists)")
        if links:
            row.admin_url = admin_change_url(model, row.object_pk)
    return rows


def current_names(model: type[Model], keys: list[str]) -> dict[str, str]:
    typed = {}
    for key in keys:
        try:
            typed[model._meta.pk.to_python(key)] = key
        except Exception:
            continue
    return {typed[pk]: str(obj) for pk, obj in model._base_manager.in_bulk(list(typed)).items()
            if pk in typed}


def admin_change_url(model: type[Model], object_pk: str) -> str:
    """The record's change page in the default admin site, if the model is registered."""
    if not admin.site.is_registered(model):
        return ""
    opts = model._meta
    try:
        return reverse(f"admin:{opts.app_label}_{opts.model_name}_change",
                       args=[quote(object_pk)])
    except NoReverseMatch:
        return ""


def page(job: Job, number: Any, *, links: bool, skipped: bool = False,
         per_page: int = PER_PAGE) -> Page:
    """One page of named failures, or skips (``page.object_list`` holds ErrorRow), their
    fields by verbose name."""
    errors = Paginator(source(job, skipped=skipped), per_page).get_page(number)
    errors.object_list = labelled(job, named(job, list(errors.object_list), links=links))
    return errors


def first(job: Job, how_many: int, *, links: bool) -> list[ErrorRow]:
    return labelled(job, named(job, list(source(job)[:how_many]), links=links))


def labelled(job: Job, rows: list[ErrorRow]) -> list[ErrorRow]:
    """``rows`` with each field by its verbose name ("in print", not "in_print"), as the
    pages show them (the CSV keeps the names)."""
    model = job_model(job)
    for row in rows:
        row.field = field_label(model, row.field)
    return rows


class Echo:
    """A file-like object whose write() returns the line (for streaming CSV)."""

    def write(self, value: str) -> str:
        return value


def safe_cell(value: str) -> str:
    """Keep spreadsheets from running a cell as a formula (CSV injection)."""
    if value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def csv_lines(job: Job) -> Iterator[str]:
    """The CSV of every error of a job, header first, streamed in batches; an undo's
    skipped records too, told apart by the last column ("failed", "skipped", or for a
    delete "already gone")."""
    writer = csv.writer(Echo())
    yield writer.writerow(["key", "record", "field", "message", "outcome"])
    rows = source(job, skipped=None)
    batch: list[Any] = []
    items = iter(rows) if isinstance(rows, list) else rows.iterator(chunk_size=2000)
    for item in items:
        batch.append(item)
        if len(batch) == 2000:
            yield from _csv_batch(job, writer, batch)
            batch = []
    yield from _csv_batch(job, writer, batch)


def _csv_batch(job: Job, writer: Any, batch: list[Any]) -> Iterator[str]:
    left_alone = "already gone" if job.kind == "delete" else "skipped"
    for row in named(job, batch, links=False):
        yield writer.writerow([safe_cell(row.object_pk), safe_cell(row.record),
                               safe_cell(row.field), safe_cell(row.message),
                               left_alone if row.skipped else "failed"])
