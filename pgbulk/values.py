"""Validating the values of a bulk update, and carrying them to the worker as JSON."""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import FieldDoesNotExist, ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import router
from django.db.models import CheckConstraint, Model, Q

from pgbulk.exceptions import BulkValidationError

M2M_OPERATIONS = ("add", "remove", "set")


def clean_values(
    model: type[Model], values: dict[str, Any], allowed: Iterable[str] | None = None
) -> dict[str, Any]:
    """Check ``values`` against ``model``; return them JSON-ready, or raise BulkValidationError."""
    if not isinstance(values, dict) or not values:
        raise BulkValidationError({"__all__": ["Choose at least one field to change."]})
    allowed_set = set(allowed) if allowed is not None else None
    cleaned: dict[str, Any] = {}
    errors: dict[str, list[str]] = {}
    for name, value in values.items():
        try:
            field = editable_field(model, name, allowed_set)
            cleaned[name] = clean_one(field, value)
        except ValidationError as error:
            errors[str(name)] = list(error.messages)
    if not errors:
        errors = constraint_errors(model, cleaned)
    if errors:
        raise BulkValidationError(errors)
    return json.loads(json.dumps(cleaned, cls=ExactJSONEncoder))


class ExactJSONEncoder(DjangoJSONEncoder):
    """DjangoJSONEncoder, without its rounding of times to the millisecond (a job set
    ``12:00:00.678901`` as ``12:00:00.678``, and counted records holding it as changed)."""

    def default(self, o: Any) -> Any:
        if isinstance(o, (datetime.datetime, datetime.time)) and not (
                isinstance(o, datetime.time) and o.utcoffset() is not None):
            text = o.isoformat()
            return text[:-6] + "Z" if text.endswith("+00:00") else text
        return super().default(o)


def constraint_errors(model: type[Model], cleaned: dict[str, Any]) -> dict[str, list[str]]:
    """Check constraints that involve only the changed fields, on an instance carrying
    the new values (every other field excluded). A constraint that also reads an
    unchanged field depends on each record: the database checks it per record.
    """
    changed = {name: value for name, value in cleaned.items()
               if not model_field(model, name).many_to_many}
    if not changed:
        return {}
    instance = model(**{model_field(model, name).attname: value
                        for name, value in changed.items()})
    names = {f.name: f.name for f in model._meta.concrete_fields}
    names.update({f.attname: f.name for f in model._meta.concrete_fields})
    exclude = {"pk", *(set(names.values()) - set(changed))}
    using = router.db_for_write(model)
    errors: dict[str, list[str]] = {}
    for constraint in model._meta.constraints:
        if not isinstance(constraint, CheckConstraint):
            continue  # a unique constraint depends on the other records
        try:
            constraint.validate(model, instance, exclude=exclude, using=using)
        except ValidationError as error:
            condition = constraint.condition
            refs = ({names.get(ref, ref) for ref in condition.referenced_base_fields}
                    if isinstance(condition, Q) else set())
            fields = sorted(refs & set(changed))
            key = fields[0] if len(fields) == 1 else "__all__"
            errors.setdefault(key, []).extend(error.messages)
    return errors


def model_field(model: type[Model], name: str) -> Any:
    """A model field by name (typed loosely: Django fields are dynamic)."""
    return model._meta.get_field(name)


def editable_field(model: type[Model], name: str, allowed: set[str] | None) -> Any:
    try:
        field = model_field(model, name)
    except (FieldDoesNotExist, TypeError):
        raise ValidationError(f"Unknown field {name!r}.") from None
    if allowed is not None and name not in allowed:
        raise ValidationError("This field cannot be bulk edited here.")
    if (
        field.auto_created
        or getattr(field, "primary_key", False)
        or not getattr(field, "editable", False)
        or not (field.concrete or field.many_to_many)
    ):
        raise ValidationError("This field is not editable.")
    return field


def clean_one(field: Any, value: Any) -> Any:
    if field.many_to_many:
        return clean_m2m(field, value)
    if field.many_to_one or field.one_to_one:
        return clean_fk(field, value)
    if value is None and not field.null:
        raise ValidationError("This field cannot be empty.")
    return field.clean(value, None)


def clean_fk(field: Any, value: Any) -> Any:
    if value is None or value == "":
        if not field.null:
            raise ValidationError("This field cannot be empty.")
        return None
    related = field.related_model
    key = value.pk if isinstance(value, Model) else value
    key = to_key(related, key)
    if not related._base_manager.filter(pk=key).exists():
        raise ValidationError(f"{related._meta.verbose_name} {key!r} does not exist.")
    return key


def clean_m2m(field: Any, value: Any) -> dict[str, list[Any]]:
    if not isinstance(value, dict) or len(value) != 1 or next(iter(value)) not in M2M_OPERATIONS:
        raise ValidationError('Give exactly one of {"add": [...]}, {"remove": [...]}, {"set": [...]}.')
    operation, items = next(iter(value.items()))
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise ValidationError("Give a list of related records or their keys.")
    related = field.related_model
    keys = list(dict.fromkeys(
        to_key(related, item.pk if isinstance(item, Model) else item) for item in items
    ))
    found = set(related._base_manager.filter(pk__in=keys).values_list("pk", flat=True))
    missing = [k for k in keys if k not in found]
    if missing:
        shown = ", ".join(repr(k) for k in missing[:10])
        raise ValidationError(f"{related._meta.verbose_name_plural} not found: {shown}.")
    return {operation: keys}


def to_key(model: Any, raw: Any) -> Any:
    """A primary key value of ``model`` from user input; ValidationError if malformed."""
    try:
        return model._meta.pk.to_python(raw)
    except (ValidationError, TypeError, ValueError):
        raise ValidationError(f"{raw!r} is not a valid key for {model._meta.verbose_name}.") from None


def split(model: type[Model], cleaned: dict[str, Any]) -> tuple[dict[str, Any], dict[str, dict]]:
    """Worker side: JSON values back to ``({attname: python value}, {m2m name: {op: keys}})``."""
    simple: dict[str, Any] = {}
    m2m: dict[str, dict] = {}
    for name, raw in cleaned.items():
        field = model_field(model, name)
        if field.many_to_many:
            m2m[name] = raw
        elif field.is_relation:
            simple[field.attname] = None if raw is None else to_key(field.related_model, raw)
        else:
            simple[field.attname] = None if raw is None else field.to_python(raw)
    return simple, m2m
