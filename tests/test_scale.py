"""Scale-out: 4 worker processes on many concurrent jobs against one PostgreSQL."""

from __future__ import annotations

import random
from decimal import Decimal

import pytest
from django.db import connection

import pgbulk
from pgbulk.models import Job
from testproject.library.models import Book
from tests.factories import chunk_env, make_books, reservation_count

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.worker,
              pytest.mark.slow]


def test_four_workers_share_many_jobs_without_violating_a_conflict(start_worker, settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "scale"}
    workers = [start_worker({"LIBRARY_SAVE_DELAY": "0.001", **chunk_env(50)},
                            concurrency=1, queue="scale") for _ in range(4)]
    ids = make_books(2000, genre=False)
    rng = random.Random(4)
    accepted: dict[int, tuple[Job, list[int]]] = {}
    refused = 0
    for n in range(40):
        start = rng.randrange(0, 1900)
        selection = ids[start:start + rng.randint(20, 150)]
        try:
            job = pgbulk.bulk_update(Book.objects.filter(pk__in=selection), {"price": 100 + n},
                                     atomic=bool(n % 2), strategy=rng.choice(["save", "queryset"]))
            accepted[n] = (job, selection)
        except pgbulk.ConflictError:
            refused += 1  # overlapped a job still holding its records
    for job, _ in accepted.values():
        job.wait(120)
        assert job.status == "succeeded", job.message
    assert len(accepted) >= 10
    # Replaying the accepted jobs in launch order gives the final data: two jobs
    # holding the same record at once would have broken this.
    expected = {pk: Decimal(10) for pk in ids}
    for n, (_job, selection) in sorted(accepted.items()):
        expected.update({pk: Decimal(100 + n) for pk in selection})
    assert dict(Book.objects.filter(pk__in=ids).values_list("pk", "price")) == expected
    assert reservation_count() == 0
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(DISTINCT worker_id) FROM procrastinate_jobs "
                       "WHERE id = ANY(%s)", [[j.procrastinate_job_id for j, _ in accepted.values()]])
        assert cursor.fetchone()[0] >= 2, "the jobs were not shared between workers"
    for worker in workers:
        worker.stop()
