"""The bulk edit form: a "change this field" toggle per field, and the field's own widget.

Value widgets start blank (never a default that looks like a current value). A ticked
field left empty is refused, unless the field can be empty (nullable, or a blank-able
text field; an M2M "replace with" nothing clears it): then the empty choice reads
"set to empty".
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from django import forms
from django.db.models import JSONField, Model, QuerySet
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from pgbulk.values import model_field

M2M_CHOICES = [("add", gettext_lazy("Add")), ("remove", gettext_lazy("Remove")),
               ("set", gettext_lazy("Replace with"))]


def is_empty(value: Any, field: Any) -> bool:
    """Is a cleaned value "nothing given"? For a JSON field only no input is: ``[]``,
    ``{}`` and ``""`` typed in are JSON values."""
    if value is None:
        return True
    if isinstance(field, JSONField):
        return False
    return value == "" or (isinstance(value, list | tuple | QuerySet) and len(value) == 0)


#: What "empty" writes into a field that may be blank but not NULL.
EMPTY_VALUES: dict[str, Any] = {"CharField": "", "TextField": "", "ArrayField": []}


def can_be_empty(field: Any) -> bool:
    """May a bulk edit set this model field to empty (NULL, or "" for text)?"""
    if field.many_to_many:
        return bool(field.blank)
    if field.null:
        return True
    return bool(field.blank) and field.get_internal_type() in EMPTY_VALUES


def value_field(field: Any) -> forms.Field:
    """A blank, optional form field for a new value of ``field``."""
    blank_label = _("(set to empty)") if can_be_empty(field) else "---------"
    if field.many_to_many:
        return field.formfield(required=False)
    if field.is_relation:
        return field.formfield(required=False, empty_label=blank_label)
    if field.get_internal_type() == "BooleanField" or field.choices:
        choices = ([("true", _("Yes")), ("false", _("No"))] if not field.choices
                   else field.get_choices(include_blank=False))
        coerce = (lambda raw: raw == "true") if not field.choices else field.to_python
        return forms.TypedChoiceField(choices=[("", blank_label), *choices], coerce=coerce,
                                      empty_value=None, required=False)
    form_field = field.formfield(required=False)
    form_field.initial = None
    form_field.show_hidden_initial = False
    if isinstance(form_field, forms.DateField) and not isinstance(form_field,
                                                                   forms.DateTimeField):
        form_field.widget = forms.DateInput(attrs={"type": "date"})
    return form_field


class KeysInput(forms.TextInput):
    """A text box of related keys, separated by commas (a many-to-many field's raw ids)."""

    def format_value(self, value: Any) -> str | None:
        if isinstance(value, list | tuple):
            return ", ".join(str(key) for key in value)
        return super().format_value(value)

    def value_from_datadict(self, data: Any, files: Any, name: str) -> list[str]:
        raw = data.get(name) or ""
        return [key.strip() for key in raw.split(",") if key.strip()]


class BulkEditForm(forms.Form):
    """Built from ``bulk_fields``; ``values()`` gives what ``pgbulk.bulk_update`` takes.
    Relations named in ``raw_id_fields`` take keys typed in a text box instead of a
    select listing every related record."""

    def __init__(self, model: type[Model], field_names: list[str], *args,
                 raw_id_fields: Iterable[str] = (), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        self.field_names = list(field_names)
        raw_ids = set(raw_id_fields)
        for name in self.field_names:
            field = model_field(model, name)
            verbose = field.verbose_name
            self.fields[f"change_{name}"] = forms.BooleanField(
                required=False, label=_("Change %(field)s") % {"field": verbose})
            if field.many_to_many:
                self.fields[f"{name}_op"] = forms.ChoiceField(
                    choices=M2M_CHOICES, initial="add", required=False,
                    label=_("How to change %(field)s") % {"field": verbose})
            self.fields[name] = value_field(field)
            self.fields[name].label = _("New %(field)s") % {"field": verbose}
            if name in raw_ids and field.is_relation:
                self.fields[name].widget = (KeysInput() if field.many_to_many
                                            else forms.TextInput())

    def rows(self) -> list[dict[str, Any]]:
        """Per field: its toggle, its optional M2M operation and its value, for templates."""
        return [
            {
                "name": name,
                "toggle": self[f"change_{name}"],
                "operation": self[f"{name}_op"] if f"{name}_op" in self.fields else None,
                "value": self[name],
                "hint": self.hint(name),
            }
            for name in self.field_names
        ]

    def hint(self, name: str) -> str:
        field = model_field(self.model, name)
        widget = self.fields[name].widget
        if isinstance(widget, KeysInput):
            return _("The keys of the records, separated by commas.")
        if field.is_relation and type(widget) is forms.TextInput:
            return _("The key of the record.")
        if field.many_to_many:
            return _("“Replace with” nothing removes them all.") if can_be_empty(field) else ""
        widget = self.fields[name].widget
        if can_be_empty(field) and not isinstance(widget, forms.Select):
            return _("Leave empty to set to empty.")
        return ""

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        ticked = [name for name in self.field_names if cleaned.get(f"change_{name}")]
        if not ticked:
            raise forms.ValidationError(_("Tick at least one field to change."))
        for name in ticked:
            field = model_field(self.model, name)
            if name in self.errors or not is_empty(cleaned.get(name), field):
                continue
            replacing = field.many_to_many and cleaned.get(f"{name}_op") == "set"
            if field.many_to_many and not replacing:
                self.add_error(name, _("Choose at least one, or untick “%(label)s”.") % {
                    "label": self.fields[f"change_{name}"].label})
            elif not can_be_empty(field):
                self.add_error(name, _("Give a new value, or untick “%(label)s”: this "
                                       "field cannot be empty.") % {
                    "label": self.fields[f"change_{name}"].label})
        return cleaned

    def add_validation_errors(self, errors: dict[str, list[str]]) -> None:
        """Show a BulkValidationError's messages on their fields (others on the form)."""
        for field, messages in errors.items():
            self.add_error(field if field in self.fields else None, messages)

    def values(self) -> dict[str, Any]:
        values: dict[str, Any] = {}
        for name in self.field_names:
            if not self.cleaned_data.get(f"change_{name}"):
                continue
            field = model_field(self.model, name)
            value = self.cleaned_data.get(name)
            if field.many_to_many:
                operation = self.cleaned_data.get(f"{name}_op") or "add"
                value = {operation: [obj.pk for obj in (value or [])]}
            elif is_empty(value, field):
                value = None if field.null else EMPTY_VALUES.get(field.get_internal_type(), "")
            values[name] = value
        return values
