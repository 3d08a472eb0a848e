"""A job task beyond bulk edits: recalculate book prices from their author's pricing rule."""

from __future__ import annotations

import os
import time
from decimal import Decimal

from django.db import transaction

import pgbulk
from pgbulk.exceptions import JobCancelled
from testproject.library.models import Book

#: Base price per status; an author's price_factor multiplies it.
BASE_PRICE = {"draft": Decimal(15), "published": Decimal(20), "archived": Decimal(5)}


def price_for(book: Book) -> Decimal:
    return (BASE_PRICE[book.status] * book.author.price_factor).quantize(Decimal("0.01"))


@pgbulk.job_task(atomic=False)
def recalculate_prices(job: pgbulk.JobHandle, pause: float | None = None) -> None:
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
    # Its message: "Done: N of N records.", from the counts every chunk committed.


@pgbulk.job_task
def failing_task(job: pgbulk.JobHandle, after: int = 0) -> None:
    """A task that fails (used by the tests to show failure is reported as failure)."""
    for keys in job.chunks():
        job.advance(len(keys))
        if job.job.done >= after:
            raise RuntimeError(f"pricing service unavailable after {job.job.done} books")


@pgbulk.job_task(atomic=False)
def launch_nested(job: pgbulk.JobHandle, ids: list[int], price: int,
                  rollback: bool = False) -> str:
    """Launch a bulk edit from inside a worker, in a transaction (rolled back on request)."""
    with transaction.atomic():
        nested = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": price},
                                    run="async")
        if rollback:
            transaction.set_rollback(True)
    return f"Launched {nested.id}" + (" and rolled it back." if rollback else ".")


@pgbulk.job_task
def counted_steps(job: pgbulk.JobHandle, steps: int, pause: float = 0.05) -> str:
    """An atomic task that reports its own total, then works step by step."""
    job.set_total(steps)
    for _step in range(steps):
        time.sleep(pause)
        job.advance(1)
        job.check_stop(now=False)
    return f"Did {steps} steps."


@pgbulk.job_task(atomic=False)
def stop_inside_chunk(job: pgbulk.JobHandle, after: int, price: int) -> str:
    """Change each chunk, then stop in the middle of the chunk after ``after`` records."""
    for keys in job.chunks():
        Book.objects.filter(pk__in=keys).update(price=price)
        job.advance(len(keys))
        if job.job.done > after:
            raise JobCancelled()
    return "Never stopped."


@pgbulk.job_task(atomic=False)
def fails_keeping_its_walk(job: pgbulk.JobHandle, after: int, price: int) -> None:
    """Keep the chunk walk in a variable, change each chunk, and fail in the chunk after
    ``after`` records (the walk outlives the body's frame in the traceback)."""
    walk = job.chunks()
    for keys in walk:
        Book.objects.filter(pk__in=keys).update(price=price)
        job.advance(len(keys))
        if job.job.done > after:
            raise RuntimeError("pricing service unavailable")


@pgbulk.job_task(atomic=False)
def counts_outside_chunks(job: pgbulk.JobHandle) -> None:
    """A chunked task without records to walk: its counts are reported, not chunked."""
    job.set_total(3)
    job.fail_records([{"pk": "x", "record": "Thing X", "field": None, "message": "bad"}])
    job.advance(2)


@pgbulk.job_task(atomic=False)
def chunk_sizes(job: pgbulk.JobHandle, size: int | None = None) -> str:
    """Walk the locked books and say how many records each chunk held."""
    return "chunks: " + ", ".join(str(len(chunk)) for chunk in job.chunks(size))


@pgbulk.job_task(atomic=False)
def report_failures(job: pgbulk.JobHandle, errors: list) -> None:
    """Count every locked book as done, then report ``errors`` as failed records."""
    for keys in job.chunks():
        job.advance(len(keys))
    job.fail_records(errors)


@pgbulk.job_task(atomic=False)
def absolute_progress(job: pgbulk.JobHandle, pause: float = 0.0) -> None:
    """Report progress as an absolute count of the records this run processed."""
    mine = 0
    for keys in job.chunks():
        time.sleep(pause)
        mine += len(keys)
        job.progress(mine)


@pgbulk.job_task(atomic=False)
def run_nested_inline(job: pgbulk.JobHandle, ids: list[int], pause: float) -> str:
    """Run a slow chunked job task on ``ids`` inline, inside this job (a nested run)."""
    from pgbulk.managers import AsyncManager

    nested = AsyncManager().launch(recalculate_prices, pause=pause, lock=(Book, ids),
                                   run="sync", chunk_size=5)
    return f"Nested job {nested.id} ended {nested.status}."
