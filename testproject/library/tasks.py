"""A job task beyond bulk edits: recalculate book prices from their author's pricing rule."""

from __future__ import annotations

import os
import time
from decimal import Decimal

import pgbulk
from testproject.library.models import Book

#: Base price per status; an author's price_factor multiplies it.
BASE_PRICE = {"draft": Decimal(15), "published": Decimal(20), "archived": Decimal(5)}


def price_for(book: Book) -> Decimal:
    return (BASE_PRICE[book.status] * book.author.price_factor).quantize(Decimal("0.01"))


@pgbulk.job_task(atomic=False)
def recalculate_prices(job: pgbulk.JobHandle, pause: float | None = None) -> str:
    """Set each locked book's price from its author's pricing rule, chunk by chunk.

    The rule is slow on purpose (LIBRARY_PRICING_DELAY seconds per book, 2 ms by
    default: seconds per thousand books), so the progress bar has work to show.
    """
    pause = float(os.environ.get("LIBRARY_PRICING_DELAY", "0.002")) if pause is None else pause
    for keys in job.chunks():
        books = list(Book.objects.filter(pk__in=keys).select_related("author")
                     .select_for_update(of=("self",), no_key=True))
        for book in books:
            book.price = price_for(book)
            time.sleep(pause)
        Book.objects.bulk_update(books, ["price"])
        job.advance(len(books))
    return f"Recalculated {job.job.done} prices."


@pgbulk.job_task
def failing_task(job: pgbulk.JobHandle, after: int = 0) -> None:
    """A task that fails (used by the tests to show failure is reported as failure)."""
    for keys in job.chunks():
        job.advance(len(keys))
        if job.job.done >= after:
            raise RuntimeError(f"pricing service unavailable after {job.job.done} books")
