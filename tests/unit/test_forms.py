"""The bulk edit form (pgbulk.forms.BulkEditForm), built and validated without a database."""

from __future__ import annotations

from decimal import Decimal

from django import forms

from pgbulk.forms import BulkEditForm
from testproject.library.models import Book

FIELDS = ["status", "price", "published_on", "in_print", "author", "genres"]


def form(data=None) -> BulkEditForm:
    return BulkEditForm(Book, FIELDS, data=data)


def test_each_field_gets_a_toggle_and_its_own_optional_widget():
    built = form()
    for name in FIELDS:
        assert isinstance(built.fields[f"change_{name}"], forms.BooleanField)
        assert built.fields[name].required is False
    assert built.fields["change_price"].label == "Change price"
    assert isinstance(built.fields["author"], forms.ModelChoiceField)
    assert isinstance(built.fields["genres"], forms.ModelMultipleChoiceField)
    assert built.fields["published_on"].widget.input_type == "date"
    assert [value for value, _label in built.fields["genres_op"].choices] == [
        "add", "remove", "set"]


def test_rows_follow_the_field_order_and_only_m2m_has_an_operation():
    rows = form().rows()
    assert [row["name"] for row in rows] == FIELDS
    assert [row["name"] for row in rows if row["operation"] is not None] == ["genres"]
    assert rows[1]["toggle"].name == "change_price" and rows[1]["value"].name == "price"


def test_nothing_ticked_is_refused():
    bound = form({"price": "3"})
    assert not bound.is_valid()
    assert bound.non_field_errors() == ["Tick at least one field to change."]


def test_values_are_the_ticked_fields_only():
    bound = form({"change_price": "on", "price": "7.5", "change_status": "on",
                  "status": "published", "in_print": "true", "published_on": "2024-01-31"})
    assert bound.is_valid(), bound.errors
    assert bound.values() == {"price": Decimal("7.5"), "status": "published"}


def test_a_ticked_field_may_be_emptied_or_unset():
    bound = form({"change_published_on": "on", "published_on": "", "change_in_print": "on",
                  "in_print": "false"})
    assert bound.is_valid(), bound.errors
    assert bound.values() == {"published_on": None, "in_print": False}


def test_a_ticked_field_that_cannot_be_empty_needs_a_value():
    bound = form({"change_in_print": "on", "in_print": ""})
    assert not bound.is_valid()
    assert set(bound.errors) == {"in_print"}


def test_many_to_many_values_carry_their_operation():
    bound = form({"change_genres": "on", "genres_op": "set"})  # "replace with" nothing
    assert bound.is_valid(), bound.errors
    assert bound.values() == {"genres": {"set": []}}
    for data in ({"genres_op": "remove"}, {}):  # remove nothing, add (the default) nothing
        bound = form({"change_genres": "on", **data})
        assert not bound.is_valid() and set(bound.errors) == {"genres"}


def test_a_bad_value_is_an_error_on_its_field():
    bound = form({"change_price": "on", "price": "abc", "change_status": "on", "status": "lost"})
    assert not bound.is_valid()
    assert set(bound.errors) == {"price", "status"}


def test_validation_errors_from_pgbulk_land_on_their_fields():
    bound = form({"change_price": "on", "price": "1"})
    assert bound.is_valid()
    bound.add_validation_errors({"price": ["Too cheap."], "__all__": ["Held by a job."],
                                 "revision": ["Not editable."]})
    assert bound.errors["price"] == ["Too cheap."]
    assert bound.non_field_errors() == ["Held by a job.", "Not editable."]


def test_json_typed_in_is_a_value_not_empty():
    """Before: "[]" or '""' typed into a JSON field was taken for "empty": NULL was written."""
    from testproject.library.models import Label

    for typed, value in (("[]", []), ('""', ""), ("{}", {}), ("", None)):
        bound = BulkEditForm(Label, ["data"], data={"change_data": "on", "data": typed})
        assert bound.is_valid(), bound.errors
        assert bound.values() == {"data": value}


def test_an_array_field_that_may_be_blank_can_be_emptied_to_an_empty_list():
    """It could not be emptied from the form ("this field cannot be empty")."""
    from django.contrib.postgres.fields import ArrayField
    from django.db import models

    from pgbulk.forms import EMPTY_VALUES, can_be_empty

    field = ArrayField(models.CharField(max_length=5), blank=True)
    assert can_be_empty(field) and EMPTY_VALUES[field.get_internal_type()] == []
    assert not can_be_empty(ArrayField(models.CharField(max_length=5)))
