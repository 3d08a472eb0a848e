"""Small helpers that create sample data set-based for tests."""

from __future__ import annotations

import time

from django.db import connection

from testproject.library.models import Author, Book, Genre


def make_books(count: int, genre: bool = True, **overrides) -> list[int]:
    """Create ``count`` books (one author; genre Crime unless ``genre=False``); return ids."""
    author = Author.objects.create(name="Test author")
    genres = [Genre.objects.get_or_create(name=name)[0] for name in ("Crime", "Poetry")]
    start = Book.objects.count()
    books = Book.objects.bulk_create(
        Book(
            title=f"Book {start + i}", isbn=f"T-{start + i:012d}", price=10, author=author,
            **overrides,
        )
        for i in range(count)
    )
    if genre:
        through = Book.genres.through
        through.objects.bulk_create(through(book_id=b.id, genre_id=genres[0].id) for b in books)
    return [b.id for b in books]


def chunk_env(size: int) -> dict[str, str]:
    """Worker environment for chunks of ``size`` records, in both strategies."""
    return {"PGBULK_CHUNK_SIZE": str(size), "PGBULK_QUERYSET_CHUNK_SIZE": str(size)}


def reservation_count() -> int:
    """How many records are reserved (a row may hold a span of consecutive keys)."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT coalesce(sum(span), 0) FROM pgbulk_reservation")
        return cursor.fetchone()[0]


def wait_for(predicate, timeout: float = 30.0, interval: float = 0.02, errors=()):
    """The first truthy value of ``predicate()`` (``errors`` raised meanwhile count as falsy)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except errors:
            value = None
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
