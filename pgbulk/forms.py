"""The bulk edit form: a "change this field" toggle per field, and the field's own widget."""

from __future__ import annotations

from typing import Any

from django import forms
from django.db.models import Model

from pgbulk.values import model_field

M2M_CHOICES = [("add", "Add"), ("remove", "Remove"), ("set", "Replace with")]


class BulkEditForm(forms.Form):
    """Built from ``bulk_fields``; ``values()`` gives what ``pgbulk.bulk_update`` takes."""

    def __init__(self, model: type[Model], field_names: list[str], *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.model = model
        self.field_names = list(field_names)
        for name in self.field_names:
            field = model_field(model, name)
            self.fields[f"change_{name}"] = forms.BooleanField(
                required=False, label=f"Change {field.verbose_name}")
            if field.many_to_many:
                self.fields[f"{name}_op"] = forms.ChoiceField(
                    choices=M2M_CHOICES, initial="add", required=False, label="")
            form_field = field.formfield()
            form_field.required = False
            if isinstance(form_field, forms.DateField):
                form_field.widget = forms.DateInput(attrs={"type": "date"})
            self.fields[name] = form_field

    def rows(self) -> list[dict[str, Any]]:
        """Per field: its toggle, its optional M2M operation and its value, for templates."""
        return [
            {
                "name": name,
                "toggle": self[f"change_{name}"],
                "operation": self[f"{name}_op"] if f"{name}_op" in self.fields else None,
                "value": self[name],
            }
            for name in self.field_names
        ]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if not any(cleaned.get(f"change_{name}") for name in self.field_names):
            raise forms.ValidationError("Tick at least one field to change.")
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
            value = self.cleaned_data.get(name)
            if f"{name}_op" in self.fields:
                operation = self.cleaned_data.get(f"{name}_op") or "add"
                value = {operation: [obj.pk for obj in (value or [])]}
            values[name] = value
        return values
