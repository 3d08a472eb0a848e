"""Cleaning bulk update values (pgbulk.values) where no database is involved.

Valid values that a CheckConstraint reads (``Book.price``) are checked against it, which
Django does with a query: those few tests are marked ``django_db`` and run in the tier
with PostgreSQL (skipped, saying so, without one).
"""

from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

import pytest

from pgbulk.exceptions import BulkValidationError
from pgbulk.values import clean_values, split
from testproject.library.models import Author, Book, Label


def errors_of(model, values, allowed=None) -> dict[str, list[str]]:
    with pytest.raises(BulkValidationError) as caught:
        clean_values(model, values, allowed)
    return caught.value.errors


@pytest.mark.django_db
def test_plain_values_come_back_json_ready():
    cleaned = clean_values(Book, {"price": "12.5", "published_on": "2024-01-31",
                                  "in_print": False, "status": "published", "title": "T"})
    assert cleaned == {"price": "12.5", "published_on": "2024-01-31", "in_print": False,
                       "status": "published", "title": "T"}
    assert json.loads(json.dumps(cleaned)) == cleaned


@pytest.mark.django_db
def test_values_round_trip_to_python_on_the_worker_side():
    cleaned = clean_values(Book, {"price": Decimal("7.25"), "published_on": date(2024, 2, 29)})
    simple, m2m = split(Book, {**cleaned, "author": "3", "genres": {"add": [1, 2]}})
    assert simple == {"price": Decimal("7.25"), "published_on": date(2024, 2, 29),
                      "author_id": 3}
    assert m2m == {"genres": {"add": [1, 2]}}


def test_split_keeps_none_as_none():
    simple, m2m = split(Book, {"published_on": None})
    assert simple == {"published_on": None} and m2m == {}


@pytest.mark.parametrize("values", [{}, None, [("price", 1)], "price=1"])
def test_nothing_to_change_is_refused(values):
    assert errors_of(Book, values) == {"__all__": ["Choose at least one field to change."]}


@pytest.mark.parametrize(("name", "message"), [
    ("nope", "Unknown field 'nope'."),
    ("revision", "This field is not editable."),  # editable=False
    ("id", "This field is not editable."),  # the primary key
])
def test_fields_that_cannot_be_changed(name, message):
    assert errors_of(Book, {name: 1}) == {name: [message]}


def test_a_reverse_relation_is_not_editable():
    assert errors_of(Author, {"books": {"set": []}}) == {"books": ["This field is not editable."]}


@pytest.mark.django_db
def test_only_the_allowed_fields_may_be_changed():
    assert errors_of(Book, {"title": "x"}, allowed=["price"]) == {
        "title": ["This field cannot be bulk edited here."]}
    assert clean_values(Book, {"price": 1}, allowed=["price"]) == {"price": "1"}


def test_every_bad_value_is_reported_at_once():
    errors = errors_of(Book, {"price": "abc", "status": "lost", "title": None,
                              "published_on": "31/31/2024", "in_print": True})
    assert set(errors) == {"price", "status", "title", "published_on"}
    assert errors["title"] == ["This field cannot be empty."]
    assert "lost" in errors["status"][0]


def test_a_value_beyond_the_fields_limits_is_refused():
    assert "price" in errors_of(Book, {"price": "123456789.123"})
    assert "title" in errors_of(Book, {"title": "x" * 301})


@pytest.mark.parametrize("value", [None, ""])
def test_a_required_foreign_key_cannot_be_emptied(value):
    assert errors_of(Book, {"author": value}) == {"author": ["This field cannot be empty."]}


def test_a_malformed_foreign_key_is_refused_before_any_lookup():
    assert errors_of(Book, {"author": "abc"}) == {
        "author": ["'abc' is not a valid key for author."]}


def test_keys_are_read_as_the_related_models_key_type():
    simple, _ = split(Book, {"author": 7})
    assert simple == {"author_id": 7}
    assert errors_of(Book, {"genres": {"add": ["not-a-number"]}}) == {
        "genres": ["'not-a-number' is not a valid key for genre."]}
    assert errors_of(Label, {"rank": "high"})["rank"]


@pytest.mark.parametrize("value", [
    [1, 2],  # no operation
    {"append": [1]},  # unknown operation
    {"add": [1], "remove": [2]},  # two operations
])
def test_many_to_many_needs_exactly_one_operation(value):
    (message,) = errors_of(Book, {"genres": value})["genres"]
    assert message.startswith("Give exactly one of")


@pytest.mark.parametrize("items", ["1,2", b"1", 5])
def test_many_to_many_needs_a_list(items):
    assert errors_of(Book, {"genres": {"add": items}}) == {
        "genres": ["Give a list of related records or their keys."]}


def test_many_to_many_keys_must_be_well_formed():
    assert errors_of(Book, {"genres": {"set": [1, "two"]}}) == {
        "genres": ["'two' is not a valid key for genre."]}


def test_the_error_message_names_field_and_problem():
    with pytest.raises(BulkValidationError) as caught:
        clean_values(Book, {"price": "abc", "nope": 1})
    assert "price:" in str(caught.value) and "nope: Unknown field 'nope'." in str(caught.value)
