"""pgbulk.preview: counts, samples and predicted failures, read with no write."""

from __future__ import annotations

import pytest

import pgbulk
from testproject.library.models import Book
from tests.factories import make_books

pytestmark = pytest.mark.django_db


def test_smoke():
    ids = make_books(30)
    Book.objects.filter(pk__in=ids[:5]).update(status="published")
    Book.objects.filter(pk__in=ids[5:12]).update(status="archived", in_print=False)
    result = pgbulk.preview(Book.objects.all(), {"status": "archived", "genres": {"set": []}})
    import pprint; pprint.pprint(result)
    assert 0
