"""One chunked job, several workers at once (``parallel``): every record exactly once."""

from __future__ import annotations

import signal
import uuid

import pytest
from django.db import connection

import pgbulk
from pgbulk.models import Job
from testproject.library.models import Book
from tests.factories import make_books, reservation_count, wait_for

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.worker,
              pytest.mark.slow]


@pytest.fixture
def workers(start_worker, settings):
    """``workers(n, env)``: n workers on a queue of this test's own, each named in its
    database sessions (application_name), stopped at the end of the test."""
    queue = f"fan-{uuid.uuid4().hex[:8]}"
    settings.PGBULK = {**settings.PGBULK, "QUEUE": queue, "CHUNK_SIZE": 100,
                       "QUERYSET_CHUNK_SIZE": 100}
    started = []

    def start(count: int, env: dict[str, str] | None = None):
        for _ in range(count):
            name = f"{queue}-{len(started)}"
            started.append(start_worker({"PGBULK_QUEUE": queue, "PGAPPNAME": name,
                                         **(env or {})}, concurrency=1, queue=queue))
            started[-1].name = name
        return started

    yield start
    for worker in started:
        if worker.process.poll() is None:  # stopped cleanly: its coverage data is kept
            worker.process.send_signal(signal.SIGCONT)
            worker.stop()


def runners_alive(job: Job) -> dict[int, str]:
    """{runner slot: application_name of the worker holding it}."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT r, a.application_name FROM generate_series(0, %s - 1) r "
            "JOIN pg_locks l ON l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 "
            " AND (l.classid::bigint << 32) | l.objid::bigint = pgbulk_runner_lock_key(%s, r) "
            "JOIN pg_stat_activity a ON a.pid = l.pid", [job.params["parallel"], job.id])
        return dict(cursor.fetchall())


def test_four_workers_share_one_job_and_write_every_record_once(workers, writes):
    started = workers(4)
    ids = make_books(20_000, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 61}, atomic=False,
                             strategy="queryset", parallel=4)
    seen = set()
    while not Job.objects.get(pk=job.pk).is_terminal:
        seen.update(runners_alive(job).values())
    job.refresh_from_db()
    assert (job.status, job.done, job.failed_count) == ("succeeded", 20_000, 0), job.message
    assert job.message == "Updated 20,000 of 20,000 records."  # all runners' work, not one's
    assert writes(ids) == dict.fromkeys(ids, 1)
    assert len(seen) >= 2, seen  # more than one worker did run it
    assert seen <= {w.name for w in started}
    assert reservation_count() == 0 and job.progress()["done"] == 20_000


def test_a_runner_killed_mid_job_leaves_its_chunk_to_the_others(workers, writes):
    started = workers(3, {"LIBRARY_SAVE_DELAY": "0.004"})
    ids = make_books(3000, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 62}, atomic=False,
                             parallel=3)
    alive = wait_for(lambda: (found := runners_alive(job)) and len(found) == 3 and found)
    wait_for(lambda: Job.objects.get(pk=job.pk).done >= 300)
    victim = next(w for w in started if w.name == alive[1])
    victim.kill()
    job.wait(120)
    assert (job.status, job.done) == ("succeeded", 3000), job.message
    assert writes(ids) == dict.fromkeys(ids, 1)
    assert job.attempt == 0  # the others went on: nobody had to take the job over


def test_cancel_stops_every_runner(workers, writes):
    workers(3, {"LIBRARY_SAVE_DELAY": "0.004"})
    ids = make_books(3000, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 63}, atomic=False,
                             parallel=3)
    wait_for(lambda: len(runners_alive(job)) >= 2)
    wait_for(lambda: Job.objects.get(pk=job.pk).done >= 200)
    assert job.cancel() is True
    job.wait(60)
    changed = sum(writes(ids).values())
    assert job.status == "cancelled" and job.done == changed < 3000, job.message
    assert max(writes(ids).values()) == 1
    wait_for(lambda: not runners_alive(job))
    assert reservation_count() == 0


def test_a_failing_record_in_one_runner_is_reported_and_the_rest_goes_on(workers):
    workers(2)
    ids = make_books(1000, in_print=False, genre=False)
    Book.objects.filter(pk=ids[777]).update(in_print=True)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"status": "archived"},
                             atomic=False, parallel=2)
    job.wait(60)
    assert (job.status, job.done, job.failed_count) == ("failed", 999, 1), job.message
    assert [(e["pk"], e["field"]) for e in job.errors] == [(str(ids[777]), "in_print")]
    assert job.record_errors.count() == 1


def test_parallel_needs_a_chunked_job(workers):
    with pytest.raises(ValueError, match="atomic=False"):
        pgbulk.bulk_update(Book.objects.filter(pk__in=make_books(3)), {"price": 1}, parallel=2)
    assert not Job.objects.exists()
