"""Jobs run by a real Procrastinate worker process against the real database."""

from __future__ import annotations

import random
import threading
import time
from decimal import Decimal

import pytest
from django.db import connection, connections

import pgbulk
from pgbulk import execute
from pgbulk.models import Job, Reservation
from testproject.library.models import Author, Book, Genre
from tests.factories import chunk_env, make_books, reservation_count, wait_for

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.worker]


def procrastinate_status(job: Job) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT status FROM procrastinate_jobs WHERE id = %s",
                       [job.procrastinate_job_id])
        return cursor.fetchone()[0]


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "chunked"])
@pytest.mark.parametrize("strategy", ["save", "queryset"])
def test_async_update_applies_every_record_once(worker, strategy, atomic):
    ids = make_books(300)
    poetry = Genre.objects.get(name="Poetry")
    job = pgbulk.bulk_update(
        Book.objects.filter(pk__in=ids), {"status": "published", "genres": {"add": [poetry.pk]}},
        run="async", strategy=strategy, atomic=atomic,
    )
    assert job.status == "queued"
    job.wait(60)
    assert (job.status, job.done, job.failed_count) == ("succeeded", 300, 0), job.message
    assert Book.objects.filter(pk__in=ids, status="published").count() == 300
    assert poetry.books.filter(pk__in=ids).count() == 300
    expected_revision = 1 if strategy == "save" else 0
    assert set(Book.objects.filter(pk__in=ids).values_list("revision", flat=True)) == {
        expected_revision}
    assert reservation_count() == 0
    assert wait_for(lambda: procrastinate_status(job) == "succeeded")


@pytest.mark.slow
@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "chunked"])
def test_progress_is_visible_while_the_job_runs(worker, atomic):
    ids = make_books(1000)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 11}, atomic=atomic)
    seen = []
    while True:
        job.refresh_from_db()
        snapshot = job.progress()
        seen.append(snapshot)
        if job.is_terminal:
            break
        time.sleep(0.05)
    running = [s["done"] for s in seen if s["status"] == "running"]
    assert any(0 < done < 1000 for done in running), running
    dones = [s["done"] for s in seen]
    assert dones == sorted(dones), "progress went backwards"
    assert all(s["done"] <= s["total"] for s in seen)
    assert seen[-1]["status"] == "succeeded" and seen[-1]["done"] == 1000
    assert any(s["rate"] for s in seen if s["status"] == "running")


def start_slow_job(atomic: bool, count: int = 2000) -> tuple[Job, list[int]]:
    ids = make_books(count)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 12}, atomic=atomic)
    wait_for(lambda: job.progress()["done"] >= 200)
    return job, ids


def test_cancel_a_running_atomic_job_rolls_everything_back(worker):
    job, ids = start_slow_job(atomic=True)
    assert job.cancel() is True
    job.wait(30)
    assert job.status == "cancelled"
    assert job.done == 0 and "rolled back" in job.message
    assert not Book.objects.filter(pk__in=ids, price=12).exists()
    assert reservation_count() == 0


def test_cancel_a_running_chunked_job_keeps_committed_chunks(worker):
    job, ids = start_slow_job(atomic=False)
    job.cancel()
    job.wait(30)
    assert job.status == "cancelled"
    changed = Book.objects.filter(pk__in=ids, price=12).count()
    assert 200 <= changed < 2000 and changed == job.done and changed % 100 == 0
    assert reservation_count() == 0
    assert "Cancelled" in job.message


def test_a_failing_job_is_failed_not_succeeded(worker):
    ids = make_books(150, in_print=False)
    Book.objects.filter(pk=ids[120]).update(in_print=True)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"status": "archived"})
    job.wait(30)
    assert job.status == "failed"
    assert f"(key {ids[120]})" in job.message and "in_print" in job.message
    assert not Book.objects.filter(pk__in=ids, status="archived").exists()
    assert reservation_count() == 0
    assert wait_for(lambda: procrastinate_status(job) == "failed")


def test_a_chunked_job_reports_failed_records_and_finishes_the_rest(worker):
    ids = make_books(250, in_print=False)
    bad = [ids[5], ids[150]]
    Book.objects.filter(pk__in=bad).update(in_print=True)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"status": "archived"},
                             atomic=False)
    job.wait(30)
    assert (job.status, job.done, job.failed_count) == ("failed", 248, 2)
    assert [(e["pk"], e["field"]) for e in job.errors] == [(str(pk), "in_print") for pk in bad]
    assert Book.objects.filter(pk__in=ids, status="archived").count() == 248
    assert reservation_count() == 0
    # An expected business outcome: one line in the worker's log, no traceback.
    wait_for(lambda: f"job_id='{job.id}'" in worker.output())
    log = worker.output()
    assert "ended with status: Error" in log and f"JobFailed: {job.message}" not in log


def test_async_delete_and_protected_records(worker):
    ids = make_books(120)
    job = pgbulk.bulk_delete(Book.objects.filter(pk__in=ids[:100]))
    job.wait(30)
    assert (job.status, job.done) == ("succeeded", 100)
    assert list(Book.objects.values_list("pk", flat=True)) == ids[100:]
    for pk in range(25):
        Author.objects.create(name=f"spare {pk}")
    job = pgbulk.bulk_delete(Author.objects.all(), atomic=False)
    job.wait(30)
    assert (job.status, job.done, job.failed_count) == ("failed", 25, 1)
    assert "protected" in job.errors[0]["message"]


@pytest.mark.slow
def test_nested_helpers_work_inside_a_real_worker_run(worker):
    ids = make_books(1500)
    crime = Genre.objects.get(name="Crime")
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 13})
    # Book.save() sees skip_nested_async() and registers its genre under the job.
    held = wait_for(lambda: Reservation.objects.filter(job=job, model="library.Genre").first())
    assert (held.object_pk, held.is_target) == (str(crime.pk), False)
    with pytest.raises(pgbulk.ConflictError) as caught:
        pgbulk.bulk_update(Genre.objects.filter(pk=crime.pk), {"name": "Noir"}, run="sync")
    assert caught.value.conflicts[0]["job_id"] == str(job.id)
    job.wait(60)
    assert job.status == "succeeded"
    assert reservation_count() == 0
    assert pgbulk.bulk_update(Genre.objects.filter(pk=crime.pk), {"name": "Noir"},
                              run="sync").status == "succeeded"


def test_a_retried_chunked_job_resumes_and_applies_nothing_twice(start_worker, settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "doomed"}
    doomed = start_worker({"LIBRARY_SAVE_DELAY": "0.01", **chunk_env(50)},
                          queue="doomed")
    ids = make_books(400)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 14}, atomic=False)
    wait_for(lambda: Job.objects.get(pk=job.pk).done >= 100, timeout=60)
    doomed.kill()
    job.refresh_from_db()
    assert job.status == "running" and 100 <= job.done < 400
    # Records not yet changed stay reserved (plus the genre registered by Book.save).
    assert sum(Reservation.objects.filter(job=job, is_target=True).values_list(
        "span", flat=True)) == 400 - job.done
    # What a retry does: take the liveness lock (free once the dead worker's
    # session is gone), claim the job, walk what is left.
    resumed = wait_for(lambda: execute.run(job.id), timeout=20, interval=0.2)
    assert resumed.status == "succeeded" and resumed.done == 400
    assert set(Book.objects.filter(pk__in=ids).values_list("price", "revision")) == {
        (Decimal(14), 1)}
    assert reservation_count() == 0


def test_twenty_concurrent_launches_with_overlapping_selections(worker, settings):
    # No genres: Book.save() would register the shared genre, and the jobs would
    # (rightly) conflict at run time as well as at launch.
    ids = make_books(400, genre=False)
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held"}  # launch first, run them after
    rng = random.Random(20)
    selections = [sorted(rng.sample(ids, rng.randint(5, 60))) for _ in range(20)]
    accepted: dict[int, Job] = {}
    problems: list[BaseException] = []
    barrier = threading.Barrier(20)

    def launch(n: int) -> None:
        try:
            barrier.wait()
            accepted[n] = pgbulk.bulk_update(
                Book.objects.filter(pk__in=selections[n]), {"price": 100 + n},
                run="async", strategy=rng.choice(["save", "queryset"]),
                atomic=bool(n % 2))
        except pgbulk.ConflictError:
            pass
        except BaseException as error:
            problems.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=launch, args=(n,)) for n in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not problems, problems
    assert 1 <= len(accepted) < 20
    chosen = [set(selections[n]) for n in accepted]
    for i, a in enumerate(chosen):
        for b in chosen[i + 1:]:
            assert not a & b, "two accepted jobs hold the same record"
    with connection.cursor() as cursor:
        cursor.execute("UPDATE procrastinate_jobs SET queue_name = 'pgbulk' "
                       "WHERE queue_name = 'held' AND status = 'todo'")
    for job in accepted.values():
        job.wait(60)
        assert job.status == "succeeded", job.message
    expected = {pk: Decimal(10) for pk in ids}
    for n in accepted:
        expected.update({pk: Decimal(100 + n) for pk in selections[n]})
    assert dict(Book.objects.filter(pk__in=ids).values_list("pk", "price")) == expected
    assert reservation_count() == 0


def test_save_strategy_progress_moves_within_a_chunk(start_worker, settings):
    """1,000-record chunks of 5 ms saves take 5 s each: progress must move meanwhile
    (it used to jump in chunk steps)."""
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "big-chunks"}
    worker = start_worker({"LIBRARY_SAVE_DELAY": "0.005", **chunk_env(1000)},
                          queue="big-chunks")
    ids = make_books(1100, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 19}, atomic=False)
    seen = []
    while Job.objects.get(pk=job.pk).done < 1000:  # the first chunk has not committed
        seen.append(job.progress()["done"])
        time.sleep(0.1)
    assert any(0 < done < 1000 for done in seen), seen
    job.wait(60)
    worker.stop()
    assert job.status == "succeeded"
