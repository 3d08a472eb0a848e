"""What a job does, in words: its operation, the selection it came from, a one-line summary.

Read from the job row (``params["values"]``, ``params["context"]``); related records are
named by their current ``str()``.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from django.apps import apps
from django.core.exceptions import FieldDoesNotExist
from django.db import transaction
from django.db.models import Model
from django.http import QueryDict
from django.utils.formats import number_format
from django.utils.text import capfirst
from django.utils.translation import gettext as _
from django.utils.translation import ngettext

from pgbulk.changelog import excluded_fields
from pgbulk.conf import pgbulk_settings
from pgbulk.models import Job
from pgbulk.values import to_key

#: Related records named in an operation before "and N more".
NAMED = 5


def number(value: int | None) -> str:
    """19998 -> "19,998" (grouped for the active locale)."""
    return number_format(value or 0, force_grouping=True)


def field_label(model: type[Model] | None, name: str | None) -> str:
    """A field by its verbose name ("in print" for ``in_print``); other names as they are."""
    if not name or model is None:
        return name or ""
    try:
        field: Any = model._meta.get_field(name)
    except FieldDoesNotExist:
        return name
    return str(getattr(field, "verbose_name", name))


def entries_in_words(model: type[Model] | None, entries: list[Any]) -> list[Any]:
    """Error entries (``{"pk", "record", "field", "message"}``) with each field by its
    verbose name, as pages show them (the Python API keeps the names)."""
    return [{**entry, "field": field_label(model, entry.get("field"))} for entry in entries]


def job_model(job: Job) -> type[Model] | None:
    if not job.model:
        return None
    try:
        return apps.get_model(job.model)
    except (LookupError, ValueError):
        return None


def records_phrase(job: Job, count: int) -> str:
    """ "19,998 Books" (the model's verbose name, singular or plural)."""
    model = job_model(job)
    if model is None:
        return ngettext("%(count)s record", "%(count)s records", count) % {
            "count": number(count)}
    opts = model._meta
    name = opts.verbose_name if count == 1 else opts.verbose_name_plural
    return f"{number(count)} {capfirst(str(name))}"


def operation(job: Job) -> str:
    """ "status → Published; genres: add Fiction", "Undo: put back status", "Delete", or
    the task's label."""
    context = job.params.get("context") or {}
    if job.kind == "delete":
        return _("Delete")
    if job.kind != "update":
        return str(context.get("label") or job.task_name.rsplit(".", 1)[-1].replace("_", " "))
    if job.params.get("undo_of"):
        return undo_operation(job)
    model = job_model(job)
    values = job.params.get("values") or {}
    if model is None:
        return "; ".join(f"{name} → {value}" for name, value in values.items())
    order = {f.name: i for i, f in enumerate(model._meta.get_fields())}  # jsonb sorts keys
    names = sorted(values, key=lambda name: order.get(name, len(order)))
    hidden = not_shown(job)
    return "; ".join(change_phrase(model, name, values[name], hide=name in hidden)
                     for name in names)


def not_shown(job: Job) -> set[str]:
    """The fields whose new values a job's pages do not show: those left out of its
    change log (CHANGE_LOG_EXCLUDE, binary and range fields)."""
    spec = job.params.get("change_log") or {}
    try:
        excluded = excluded_fields(apps.get_model(job.model))
    except (LookupError, ValueError):  # a model gone since (or a task's, with none)
        excluded = set(pgbulk_settings.CHANGE_LOG_EXCLUDE.get(job.model, []))
    return {*spec.get("excluded", []), *excluded}


def redacted_params(job: Job) -> dict[str, Any]:
    """The job's params with the values of not_shown() fields replaced."""
    hidden = not_shown(job)
    values = {name: (_("(not shown)") if name in hidden else value)
              for name, value in (job.params.get("values") or {}).items()}
    return {**job.params, "values": values} if "values" in job.params else job.params


def undo_operation(job: Job) -> str:
    """ "Undo: put back status, genres" (the fields an undo restores), or "Redo: set
    status, genres again" for an undo of an undo."""
    spec = job.params.get("undo_spec") or {}
    names = [*spec.get("fields", []), *spec.get("m2m", [])]
    model = job_model(job)
    labels = [field_label(model, name) for name in names]
    if job.params.get("redo"):
        return _("Redo: set %(fields)s again") % {"fields": ", ".join(labels)}
    return _("Undo: put back %(fields)s") % {"fields": ", ".join(labels)}


def summary(job: Job) -> str:
    """The dashboard's one line: "status → Published on 19,998 Books"."""
    if job.kind == "delete":
        return _("Delete %(records)s") % {"records": records_phrase(job, job.total)}
    if not job.model:
        return operation(job)
    return _("%(operation)s on %(records)s") % {
        "operation": operation(job), "records": records_phrase(job, job.total)}


def kind_phrase(job: Job) -> str:
    """ "an update of Books" / "a delete of Books" / "a task on Books": what, not how."""
    model = job_model(job)
    what = capfirst(str(model._meta.verbose_name_plural)) if model else job.model
    if job.kind == "update":
        return _("an update of %(model)s") % {"model": what}
    if job.kind == "delete":
        return _("a delete of %(model)s") % {"model": what}
    return _("a task on %(model)s") % {"model": what} if what else _("a task")


def change_phrase(model: type[Model], name: str, raw: Any, *, hide: bool = False) -> str:
    try:
        field: Any = model._meta.get_field(name)
    except FieldDoesNotExist:
        return f"{name} → {raw}"
    label = str(field.verbose_name)
    if hide:
        return f"{label} → {_('(not shown)')}"
    if field.many_to_many:
        ((op, keys),) = (raw or {"add": []}).items()
        names = related_names(field.related_model, keys)
        verb = {"add": _("add"), "remove": _("remove"), "set": _("replace with")}.get(op, op)
        if op == "set" and not keys:
            return _("%(field)s: remove all") % {"field": label}
        return f"{label}: {verb} {names}"
    return f"{label} → {value_phrase(field, raw)}"


#: A list filter's lookups as they read ("price ≥ 10"); others are shown as they are.
COMPARISONS = {"exact": "=", "iexact": "=", "gte": "≥", "gt": ">", "lte": "≤", "lt": "<"}


def filter_phrase(model: type[Model] | None, key: str, raw: str) -> str:
    """A list's filter in words: ``status__exact=published`` -> "status = Published",
    ``author__id__exact=3`` -> "author = Ann (#3)", ``in_print__exact=1`` -> "in print
    = yes"; a parameter that is not a lookup on a field reads ``key = value``."""
    name, _sep, lookup = key.partition("__")
    try:
        field: Any = model._meta.get_field(name) if model else None
    except FieldDoesNotExist:
        field = None
    if field is not None and field.is_relation and lookup.startswith(("id__", "pk__")):
        lookup = lookup[4:]
    lookup = lookup or "exact"
    # Not a field of this model's own (a reverse relation, a many-to-many): as typed.
    if (field is None or not getattr(field, "concrete", False) or field.many_to_many
            or lookup not in (*COMPARISONS, "isnull")):
        return f"{key} = {raw}"
    label = str(field.verbose_name)
    if lookup == "isnull":
        empty = raw.lower() in ("1", "true", "yes")
        return f"{label} " + (_("is empty") if empty else _("is not empty"))
    try:
        with transaction.atomic():  # a related key the database refuses spoils nothing
            shown = value_phrase(field, raw)
    except Exception:  # a value the field cannot read: as it was typed
        shown = raw
    return f"{label} {COMPARISONS[lookup]} {shown}"


def json_text(value: Any) -> str:
    """A JSON value as JSON text (numbers logged as Decimal written as numbers)."""
    return json.dumps(plain_numbers(value), ensure_ascii=False)


def plain_numbers(value: Any) -> Any:
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {key: plain_numbers(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain_numbers(item) for item in value]
    return value


def value_phrase(field: Any, raw: Any) -> str:
    """One new value as a person reads it: a choice's label, a related record's name..."""
    if raw is not None and field.get_internal_type() == "JSONField":
        return json_text(raw)  # a JSON "" or [] is a value, not empty
    if raw is None or raw == "":
        return _("empty")
    if field.is_relation:
        return related_names(field.related_model, [raw])
    value = field.to_python(raw)
    if field.flatchoices:
        return str(dict(field.flatchoices).get(value, value))
    if isinstance(value, bool):
        return _("yes") if value else _("no")
    if isinstance(value, Decimal) and field.decimal_places is not None:
        return f"{value:.{field.decimal_places}f}"  # as the field shows it: 2.00
    return str(value)


def related_names(model: type[Model], keys: list[Any]) -> str:
    """ "Fiction, Poetry and 3 more" (a key that no longer exists reads "#12 (deleted)")."""
    try:
        typed = [to_key(model, key) for key in keys]
    except Exception:
        return ", ".join(str(key) for key in keys)
    found = model._base_manager.in_bulk(typed[:NAMED])
    names = [str(found[key]) if key in found else _("#%(key)s (deleted)") % {"key": key}
             for key in typed[:NAMED]]
    text = ", ".join(names)
    if len(typed) > NAMED:
        text += " " + _("and %(count)s more") % {"count": number(len(typed) - NAMED)}
    return text


def selection(job: Job) -> dict[str, Any]:
    """Where the job's records came from, for the detail page.

    ``{"text", "filters": ["status = Published", ...], "list_url", "list_label",
    "records"}`` from
    the launch context the views store (``select_all``, ``selected``, ``excluded``,
    ``filters``, ``list_url``).
    """
    context = job.params.get("context") or {}
    model = job_model(job)
    filters = [filter_phrase(model, key, value)
               for key, values in QueryDict(context.get("filters", "")).lists()
               for value in values if key not in ("page", "o", "p") and value != ""]
    excluded = int(context.get("excluded") or 0)
    if context.get("select_all"):
        text = _("All records matching the list's filters")
        if excluded:
            text += ", " + ngettext("%(count)s excluded", "%(count)s excluded", excluded) % {
                "count": number(excluded)}
    elif "selected" in context:
        text = (_("Records ticked one by one, in the list filtered by") if filters
                else _("Records ticked one by one"))
    elif context.get("undo_of"):
        text = _("The records the undone job changed (from its change log)")
    else:
        text = _("Launched from code")
    list_url = str(context.get("list_url") or "")
    if not (list_url.startswith("/") and not list_url.startswith("//")):
        list_url = ""  # only links within the site
    if list_url and context.get("filters"):
        list_url += "?" + str(context["filters"])
    ticked = "selected" in context and not context.get("select_all")
    return {"text": text, "filters": filters, "list_url": list_url,
            "list_label": _("open the list they were ticked in") if ticked else _("open that list"),
            "records": records_phrase(job, job.total) if job.model else ""}
