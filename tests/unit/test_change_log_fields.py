"""Which fields undo can put back from the change log. No database."""

from __future__ import annotations

from django.contrib.postgres.fields import IntegerRangeField
from django.db import models

from pgbulk.changelog import restorable


def test_bytes_and_ranges_are_left_out_of_what_undo_restores():
    # to_jsonb writes bytea as hex text and ranges as text: to_python would not
    # give the old value back (bytes were base64-decoded, ranges failed to parse).
    assert not restorable(models.BinaryField())
    assert not restorable(IntegerRangeField())
    assert all(restorable(f) for f in (models.CharField(), models.DecimalField(),
                                       models.JSONField(), models.DateTimeField()))
