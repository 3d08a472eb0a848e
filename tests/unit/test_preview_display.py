"""How a preview shows values a person reads, whatever the field holds. No database."""

from __future__ import annotations

from decimal import Decimal

from django.db import models

from pgbulk.previews import displays, key_of


def test_json_values_are_shown_and_do_not_break_the_lookup():
    # Before: a dict or list value raised "unhashable type" (a 500 from the Preview button).
    field = models.JSONField(name="data")
    values = [{"b": 1, "a": [1, 2]}, [1, "x"], None, 3]
    shown = displays(field, values)
    assert shown[key_of({"a": [1, 2], "b": 1})] == '{"b": 1, "a": [1, 2]}'
    assert shown[key_of([1, "x"])] == '[1, "x"]'
    assert shown[key_of(None)] == "(empty)" and shown[key_of(3)] == "3"


def test_choices_are_shown_by_their_label():
    field = models.CharField(name="status", choices=[("draft", "Draft")])
    assert displays(field, ["draft", "other"]) == {"draft": "Draft", "other": "other"}


def test_decimals_beyond_28_digits_are_shown_exactly():
    # Before: quantize() in the default 28-digit context raised InvalidOperation (a 500).
    field = models.DecimalField(name="amount", max_digits=30, decimal_places=10)
    big = Decimal("98765432109876543210.9876543211")
    assert displays(field, [big, Decimal("12")]) == {
        big: "98765432109876543210.9876543211", Decimal("12"): "12.0000000000"}
