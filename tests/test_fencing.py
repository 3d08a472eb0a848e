"""Honest outcomes at the edges: shutdowns, crashes, sweeps and takeovers (issue: fencing).

Each test reproduces one defect with real worker processes and the real database.
An audit trigger counts every committed write of a book, so "written at most once"
is checked by the database, not inferred from the job's own report.
"""

from __future__ import annotations

import datetime
import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from decimal import Decimal

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, connections
from django.db.models import F
from django.urls import reverse
from django.utils import timezone

import pgbulk
from pgbulk import locks
from pgbulk.managers import AsyncManager
from pgbulk.models import Job
from pgbulk.progress import snapshot
from pgbulk.sweep import sweep
from testproject.library.models import Book, DraftBook, EBook, Member
from testproject.library.tasks import counted_steps, failing_task, launch_nested, stop_inside_chunk
from tests import conftest
from tests.factories import chunk_env, make_books, reservation_count, wait_for
from tests.test_sweep import FAULT_ENV

HOUR = datetime.timedelta(hours=1)

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.worker,
              pytest.mark.slow]


@pytest.fixture
def spawn(start_worker, settings):
    """``spawn(env)`` starts a worker on a queue of this test's own (stopped at its end)."""
    queue = f"fencing-{uuid.uuid4().hex[:8]}"
    settings.PGBULK = {**settings.PGBULK, "QUEUE": queue}
    started = []

    def start(env=None, concurrency: int = 2, args: tuple[str, ...] = ()):
        # Its own queue for its periodic sweep too: no other worker sweeps for it.
        env = {**FAULT_ENV, "PGBULK_QUEUE": queue, **(env or {})}
        started.append(start_worker(env, concurrency, queue, args))
        return started[-1]

    yield start
    for worker in started:
        if worker.process.poll() is None:  # stopped cleanly: its coverage data is kept
            worker.process.send_signal(signal.SIGCONT)
            worker.stop()


@pytest.fixture
def held_queue(settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held"}


def lock_held(job: Job) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT pgbulk_job_lock_held(%s)", [job.id])
        return cursor.fetchone()[0]


def sweep_until(job: Job, *statuses: str, timeout: float = 30.0, **overrides) -> Job:
    """Sweep until the job reaches one of ``statuses`` (whoever swept it)."""
    def reached():
        sweep(**overrides)
        current = Job.objects.get(pk=job.pk)
        return current if current.status in statuses else None
    return wait_for(reached, timeout=timeout, interval=0.3)


# --- 1. Liveness is the lock; fencing ---------------------------------------------------


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "chunked"])
def test_sigterm_drains_the_job_while_the_sweep_runs_every_second(
        spawn, writes, atomic):
    """Procrastinate stops beating on SIGTERM, then drains its job: the sweep must not
    call that job dead (it failed it and released its locks while it ran on)."""
    draining = spawn()
    ids = make_books(1200, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 24}, atomic=atomic)
    wait_for(lambda: job.progress()["done"] >= 100)
    draining.process.send_signal(signal.SIGTERM)
    while draining.process.poll() is None:
        sweep(heartbeat_timeout=1)  # a stale heartbeat alone must never mean dead
        time.sleep(1)
    job.refresh_from_db()
    assert (job.status, job.done) == ("succeeded", 1200), job.message
    assert writes(ids) == dict.fromkeys(ids, 1)
    assert reservation_count() == 0


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "chunked"])
def test_a_shutdown_that_cuts_a_job_short_is_never_a_success(spawn, writes, atomic):
    """A deploy with --shutdown-graceful-timeout stops the job mid-run. Before: its task
    was recorded 'succeeded' in Procrastinate, and an atomic job ended "Its task ended
    (succeeded) without finishing the job" (no fail event). Now the task fails; the atomic
    job fails saying why; the chunked one is resumed by the sweep and finishes."""
    cut = spawn(args=("--shutdown-graceful-timeout", "1"))
    ids = make_books(1200, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 26}, atomic=atomic)
    wait_for(lambda: job.progress()["done"] >= 100)
    cut.process.send_signal(signal.SIGTERM)
    cut.process.wait(30)
    job.refresh_from_db()
    with connection.cursor() as cursor:
        cursor.execute("SELECT status FROM procrastinate_jobs WHERE id = %s",
                       [job.procrastinate_job_id])
        assert cursor.fetchone()[0] == "failed"
    if atomic:
        assert job.status == "failed" and job.done == 0
        assert job.message == ("Stopped by a worker shutdown before it finished; its changes "
                               "were rolled back: nothing was changed."), job.message
        assert sum(writes(ids).values()) == 0 and reservation_count() == 0
        return
    assert job.status == "running" and 0 < job.done < 1200  # committed chunks stay
    # A shutdown is no lost worker: resumed even with no resumes left, and said so.
    # Before: counted as one ("lost 1 times") and failed for good after MAX_RESUMES deploys.
    resumed = sweep_until(job, "queued", "failed", heartbeat_timeout=1, max_resumes=0)
    assert resumed.status == "queued" and resumed.resumes == 0, resumed.message
    assert resumed.message.startswith("Stopped by a worker shutdown after "), resumed.message
    spawn()
    job.wait(60)
    assert (job.status, job.done) == ("succeeded", 1200), job.message
    assert writes(ids) == dict.fromkeys(ids, 1)


def test_a_shutdown_of_an_attempt_that_made_no_progress_counts_as_a_resume(spawn, settings):
    """A chunk longer than the shutdown's grace period never commits: forgiving every
    such shutdown would resume the job forever (review). Only an attempt that committed
    something is forgiven."""
    settings.PGBULK = {**settings.PGBULK, "CHUNK_SIZE": 2000}
    cut = spawn(chunk_env(2000), args=("--shutdown-graceful-timeout", "1"))
    ids = make_books(1200, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 39}, atomic=False)
    wait_for(lambda: job.progress()["done"] >= 100)  # in flight, in its only chunk
    cut.process.send_signal(signal.SIGTERM)
    cut.process.wait(30)
    job.refresh_from_db()
    assert (job.status, job.done, job.shutdown_attempt) == ("running", 0, None)
    ended = sweep_until(job, "queued", "failed", heartbeat_timeout=1, max_resumes=0)
    assert ended.status == "failed" and "was lost 1 times" in ended.message, ended.message


def test_a_runner_whose_attempt_is_over_commits_nothing_more(spawn, writes):
    first = spawn()
    ids = make_books(600, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 25}, atomic=False)
    wait_for(lambda: Job.objects.get(pk=job.pk).done >= 100)
    # What a sweep that took the job over does: a new run token.
    Job.objects.filter(pk=job.pk).update(attempt=F("attempt") + 1)
    wait_for(lambda: not lock_held(job))  # the runner stopped at its next commit
    stopped = Job.objects.get(pk=job.pk)
    assert stopped.status == "running" and stopped.finished_at is None  # it recorded nothing
    assert sum(writes(ids).values()) == stopped.done  # its last chunk rolled back
    assert first.process.poll() is None  # the worker itself goes on

    sweep_until(job, "queued")
    spawn()
    job.wait(60)
    assert (job.status, job.done) == ("succeeded", 600)
    assert writes(ids) == dict.fromkeys(ids, 1)


def test_an_atomic_job_whose_reservations_vanish_does_not_succeed(worker, writes):
    ids = make_books(1000, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 26})
    wait_for(lambda: job.progress()["done"] >= 200)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM pgbulk_reservation WHERE job_id = %s", [job.id])
    job.wait(60)
    assert (job.status, job.done) == ("failed", 0), job.message
    assert "of the 1000 reserved records" in job.message
    assert writes(ids) == {}


# --- 2. One model, one set of locks ------------------------------------------------------


def test_a_proxy_and_its_concrete_model_share_locks(held_queue):
    ids = make_books(10)
    pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:6]), {"price": 3}, run="async")
    with pytest.raises(pgbulk.ConflictError) as caught:
        pgbulk.bulk_update(DraftBook.objects.filter(pk__in=ids[4:]), {"price": 4}, run="async")
    assert caught.value.conflicts[0]["count"] == 2


def test_a_multi_table_child_and_its_parent_share_locks(held_queue):
    author = Book.objects.get(pk=make_books(1)[0]).author
    ebooks = [EBook.objects.create(title=f"E{n}", isbn=f"E-{n}", author=author)
              for n in range(4)]
    pgbulk.bulk_update(EBook.objects.filter(pk__in=[e.pk for e in ebooks[:2]]),
                       {"file_size": 9}, run="async")
    with pytest.raises(pgbulk.ConflictError):
        pgbulk.bulk_update(Book.objects.filter(pk=ebooks[1].pk), {"price": 4}, run="async")
    job = pgbulk.bulk_update(Book.objects.filter(pk=ebooks[2].pk), {"price": 4}, run="async")
    with pytest.raises(pgbulk.ConflictError):
        pgbulk.bulk_update(EBook.objects.filter(pk=ebooks[2].pk), {"file_size": 1}, run="async")
    assert job.status == "queued"


def test_a_multi_table_child_is_updated_with_its_parents_fields():
    author = Book.objects.get(pk=make_books(1)[0]).author
    ebook = EBook.objects.create(title="E", isbn="E-1", author=author)
    job = pgbulk.bulk_update(EBook.objects.all(), {"price": 7, "file_size": 3}, run="sync")
    assert job.status == "succeeded", job.message
    ebook.refresh_from_db()
    assert (ebook.price, ebook.file_size, ebook.revision) == (Decimal(7), 3, 2)  # created, saved


# --- 3. A launch inside a worker is one transaction ------------------------------------


def task_ids() -> set[int]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT id FROM procrastinate_jobs "
                       "WHERE task_name = 'pgbulk.tasks.bulk_update_task'")
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.parametrize("rollback", [False, True], ids=["committed", "rolled-back"])
def test_a_launch_inside_a_worker_is_part_of_its_transaction(worker, rollback):
    ids = make_books(30, genre=False)
    tasks_before = task_ids()
    outer = AsyncManager().launch(launch_nested, ids, 31, rollback=rollback)
    outer.wait(30)
    assert outer.status == "succeeded", outer.message
    nested = list(Job.objects.exclude(pk=outer.pk))
    if rollback:  # no job, no task, no reservation survive
        assert nested == [] and task_ids() == tasks_before and reservation_count() == 0
        return
    (job,) = nested
    job.wait(30)
    assert job.status == "succeeded", job.message
    assert set(Book.objects.filter(pk__in=ids).values_list("price", flat=True)) == {Decimal(31)}


# --- 4. Nothing waits on a running job's row ---------------------------------------------


def test_cancel_is_not_blocked_by_an_atomic_task_reporting_its_total(worker):
    job = AsyncManager().launch(counted_steps, 400, 0.05)
    wait_for(lambda: job.progress()["done"] >= 5)
    assert job.cancel() is True
    job.wait(30)
    assert (job.status, job.done) == ("cancelled", 0), job.message


def test_the_sweep_skips_job_rows_somebody_holds(held_queue):
    ids = make_books(5)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2}, atomic=False,
                             run="async")
    Job.objects.filter(pk=job.pk).update(status="running", started_at=timezone.now() - HOUR)
    with psycopg.connect(conftest.test_database_url()) as holder:
        holder.execute("SELECT 1 FROM pgbulk_job WHERE id = %s FOR UPDATE", [job.id])
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = '2s'")  # waiting on the row would fail
        try:
            report = sweep(max_task_duration=0)
        finally:
            with connection.cursor() as cursor:
                cursor.execute("RESET lock_timeout")
    assert str(job.id) not in report["resumed"] + report["failed"] + report["flagged"]
    assert Job.objects.get(pk=job.pk).status == "running"


# --- 6. Only a lost connection leaves a job to the sweep; resumes are capped -------------


def test_a_lock_timeout_fails_the_job_instead_of_resuming_it_forever(spawn):
    spawn({"PGOPTIONS": "-c lock_timeout=300"})
    ids = make_books(200, genre=False)
    with psycopg.connect(conftest.test_database_url()) as holder:
        holder.execute("SELECT 1 FROM library_book WHERE id = %s FOR UPDATE", [ids[150]])
        job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 27}, atomic=False)
        job.wait(30)
    assert job.status == "failed" and "lock timeout" in job.message, job.message
    # the chunk before the locked record committed (consecutive keys: spans of 100)
    assert job.done == Book.objects.filter(pk__in=ids, price=27).count() == 100
    assert reservation_count() == 0


def test_resumes_are_capped_and_the_last_message_is_kept(held_queue):
    ids = make_books(10)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2}, atomic=False,
                             run="async")
    Job.objects.filter(pk=job.pk).update(  # its run token was raised more often (fencing)
        status="running", attempt=5, resumes=3, done=4,
        message="Worker lost after 4 of 10 records; resuming where it stopped (resume 3 of 3).")
    report = sweep(max_resumes=3)
    job.refresh_from_db()
    assert report["failed"] == [str(job.id)] and job.status == "failed"
    assert "lost 4 times" in job.message and "4 of 10 records were changed" in job.message
    assert "Last: Worker lost after 4 of 10" in job.message
    assert reservation_count() == 0


# --- 7. A synchronous job whose process died before running it --------------------------


def test_a_sync_job_whose_process_died_before_claiming_it_is_failed():
    ids = make_books(20)
    script = (
        "import os, pgbulk\n"
        "from pgbulk import execute\n"
        "from testproject.library.models import Book\n"
        "execute.run = lambda *args, **kwargs: os._exit(9)  # dies right after the launch\n"
        f"pgbulk.bulk_update(Book.objects.filter(pk__in={ids!r}), {{'price': 28}}, run='sync')\n"
    )
    env = {**os.environ, "DATABASE_URL": conftest.test_database_url()}
    died = subprocess.run([sys.executable, "manage.py", "shell", "-c", script], cwd=conftest.ROOT,
                          env=env, capture_output=True, text=True, timeout=60)
    assert died.returncode == 9, died.stderr
    job = Job.objects.get()
    assert job.status == "queued" and reservation_count() == 20
    assert sweep()["failed"] == []  # within the grace period it may still start
    assert sweep(sync_start_timeout=0)["failed"] == [str(job.id)]
    job.refresh_from_db()
    assert job.status == "failed" and "stopped before running it" in job.message
    assert reservation_count() == 0


def test_a_sync_job_whose_launch_took_long_is_not_failed_before_it_could_start():
    """The start timeout ran from the job row's creation at the launch's beginning: a sweep
    right after a launch that took longer than SYNC_START_TIMEOUT failed the job before
    its process could claim it (review: 10 of 10 with a 1 s timeout and 1.5 s launches)."""
    from django.db.models.expressions import RawSQL

    from pgbulk import signals

    ids = make_books(3)
    slow = Book.objects.filter(pk__in=ids).filter(
        pk__in=RawSQL("SELECT id FROM library_book WHERE pg_sleep(0.5) IS NOT NULL", []))
    swept = []

    def sweep_at_commit(sender, job, event, **kwargs):  # between the commit and the claim
        if event == "create":
            swept.append(sweep(sync_start_timeout=1))

    signals.job_event.connect(sweep_at_commit)
    try:
        job = pgbulk.bulk_update(slow, {"price": 37}, run="sync")
    finally:
        signals.job_event.disconnect(sweep_at_commit)
    assert swept and swept[0]["failed"] == [], swept
    assert job.status == "succeeded", job.message


# --- 8. A failed atomic job changed nothing, and says so -----------------------------------


def test_a_failed_atomic_job_reports_nothing_changed(worker):
    ids = make_books(300, in_print=False)
    Book.objects.filter(pk=ids[250]).update(in_print=True)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"status": "archived"})
    job.wait(30)
    assert (job.status, job.done) == ("failed", 0)
    assert "Nothing was changed" in job.message
    assert job.progress()["done"] == 0


# --- 9. Cancel, then a crash: cancelled, with the counts ------------------------------------


def test_cancel_then_a_worker_crash_ends_cancelled_with_the_counts(
        spawn, writes):
    victim = spawn()
    ids = make_books(600, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 29}, atomic=False)
    wait_for(lambda: Job.objects.get(pk=job.pk).done >= 100)
    victim.process.send_signal(signal.SIGSTOP)  # frozen: it cannot act on the cancel
    assert job.cancel() is True
    victim.kill()
    job = sweep_until(job, "cancelled", "failed", "succeeded")
    changed = sum(writes(ids).values())
    assert job.status == "cancelled" and job.done == changed and 100 <= changed < 600
    assert f"{changed} of 600 records were changed" in job.message
    assert reservation_count() == 0


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "chunked"])
def test_a_paused_worker_shows_no_progress_instead_of_a_time_left(spawn, monkeypatch, atomic):
    """A frozen worker holds its job's liveness lock: the job is alive, and its pages
    guessed a time left that only grew. They now say how long nothing moved."""
    from pgbulk import progress
    from pgbulk.job_status import job_status

    monkeypatch.setattr(progress, "STALLED_AFTER", 1)
    frozen = spawn()
    ids = make_books(600, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 35}, atomic=atomic)
    wait_for(lambda: job.progress()["done"] >= 100)
    frozen.process.send_signal(signal.SIGSTOP)
    try:
        stalled = wait_for(lambda: (lambda s: s if s["stalled_seconds"] else None)(
            Job.objects.get(pk=job.pk).progress()))
        assert stalled["status"] == "running" and stalled["eta_seconds"] is None
        assert "no progress for" in job_status(Job.objects.get(pk=job.pk), stalled).figures
    finally:
        frozen.process.send_signal(signal.SIGCONT)
    job.wait(60)
    assert job.status == "succeeded" and job.progress()["stalled_seconds"] is None


def test_a_stop_inside_a_chunk_rolls_back_its_counts(worker):
    ids = make_books(500, genre=False)
    job = AsyncManager().launch(stop_inside_chunk, 250, 33,
                                lock=Book.objects.filter(pk__in=ids))
    job.wait(30)
    changed = Book.objects.filter(pk__in=ids, price=33).count()
    assert job.status == "cancelled" and job.done == changed == 200, job.message
    assert "after 200 of 500" in job.message


@pytest.mark.parametrize("outcome", ["cancelled", "failed"])
def test_a_chunk_another_runner_commits_before_the_end_is_counted_in_the_message(
        monkeypatch, settings, outcome):
    """With parallel runners, one ends the job (cancel seen, or its body failed) while
    another's chunk may still commit. Before: the message was written from the counts
    read before the end's transaction, so it said 'Cancelled after 200' of a job whose
    row (and data) held 220 (review: 3 of 60 races). Here the other runner's commit is
    made to land in that gap; the message must say what the row holds."""
    from pgbulk import execute

    real_finish = execute.finish

    def finish_after_another_runners_chunk(handle, status, message):
        with psycopg.connect(conftest.test_database_url(), autocommit=True) as other:
            other.execute("UPDATE pgbulk_job SET done = done + 20 WHERE id = %s", [handle.job.id])
        real_finish(handle, status, message)

    monkeypatch.setattr(execute, "finish", finish_after_another_runners_chunk)
    settings.PGBULK = {**settings.PGBULK, "CHUNK_SIZE": 100}
    ids = make_books(500, genre=False)
    task = stop_inside_chunk if outcome == "cancelled" else failing_task
    args = (250, 36) if outcome == "cancelled" else (250,)
    job = AsyncManager().launch(task, *args, lock=Book.objects.filter(pk__in=ids),
                                run="sync", atomic=False)
    job.refresh_from_db()
    assert job.status == outcome and job.done == 220, job.message
    assert "220 of 500 records" in job.message, job.message


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "chunked"])
def test_a_cancel_stops_a_running_job_at_its_next_record(spawn, writes, settings, atomic):
    """Before: a cancel was seen at the next chunk boundary only, so a chunk of 1,000
    slow saves ran to its end (and committed) first; the docs promised about 0.2 s."""
    settings.PGBULK = {**settings.PGBULK, "CHUNK_SIZE": 1000}
    spawn({"LIBRARY_SAVE_DELAY": "0.02", "PGBULK_CHUNK_SIZE": "1000"})
    ids = make_books(1000, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 38}, atomic=atomic)
    wait_for(lambda: job.progress()["done"] >= 10)
    assert job.cancel() is True
    job.wait(60)
    assert (job.status, job.done) == ("cancelled", 0), job.message
    assert sum(writes(ids).values()) == 0  # the open (only) chunk rolled back


def test_a_cancel_raised_inside_save_cancels_instead_of_failing_the_record():
    from django.db.models.signals import pre_save

    ids = make_books(5, genre=False)

    def stop_at_third(sender, instance, **kwargs):
        if instance.pk == ids[2]:
            raise pgbulk.exceptions.JobCancelled()

    pre_save.connect(stop_at_third, sender=Book)
    try:
        job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 34}, run="sync",
                                 atomic=False)
    finally:
        pre_save.disconnect(stop_at_third, sender=Book)
    assert (job.status, job.failed_count) == ("cancelled", 0), job.message


# --- 10. Conflict reports with any user table -------------------------------------------


def test_conflict_report_quotes_the_user_table_and_uses_its_key_column(held_queue, monkeypatch):
    user = get_user_model().objects.create(username="ada-auth")
    Member.objects.create(member_no=user.pk, handle="ada")
    ids = make_books(4)
    pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2}, user=user, run="async")
    monkeypatch.setattr(locks, "get_user_model", lambda: Member)
    with pytest.raises(pgbulk.ConflictError) as caught:
        pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 3}, run="async")
    assert caught.value.conflicts[0]["user"] == "ada"


# --- 11. UNLOGGED progress is read on the primary -------------------------------------------


class ReplicaRouter:
    """Sends every read of pgbulk's tables to a replica (which cannot read UNLOGGED tables)."""

    def db_for_read(self, model, **hints):
        return "replica" if model._meta.app_label == "pgbulk" else None


def test_progress_is_read_on_the_primary_behind_a_read_replica_router(settings):
    ids = make_books(3)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 5}, run="sync")
    settings.DATABASE_ROUTERS = ["tests.test_fencing.ReplicaRouter"]
    # The "replica" alias (tests/conftest.py) sees no pgbulk table: a read there fails.
    with pytest.raises(DatabaseError):
        list(Job.objects.all())
    assert snapshot(job)["done"] == 3


# --- 12. MAX_TASK_DURATION is measured on the current attempt -------------------------------


def test_a_resumed_job_is_not_stopped_for_the_time_its_first_attempt_took(worker):
    ids = make_books(1500)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 35}, atomic=False)
    wait_for(lambda: job.progress()["done"] >= 100)
    with connection.cursor() as cursor:  # its first attempt started long ago
        cursor.execute("UPDATE pgbulk_job SET started_at = now() - interval '2 hours' "
                       "WHERE id = %s", [job.id])
    assert sweep(max_task_duration=3600)["flagged"] == []
    job.wait(60)
    assert job.status == "succeeded", job.message


# --- How fast a dead worker is seen -------------------------------------------------------


@pytest.mark.parametrize("atomic", [True, False], ids=["atomic", "chunked"])
def test_a_dead_workers_job_is_seen_lost_and_repaired_on_read(
        spawn, client, admin_user, atomic):
    victim = spawn()
    ids = make_books(600, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 36}, atomic=atomic)
    wait_for(lambda: job.progress()["done"] >= 100)
    victim.kill()
    wait_for(lambda: snapshot(Job.objects.get(pk=job.pk), repair=False)["worker_lost"],
             timeout=5)
    client.force_login(admin_user)
    seen = client.get(reverse("pgbulk:job-progress", args=[job.id]),
                      HTTP_ACCEPT="application/json").json()
    assert seen["status"] == ("failed" if atomic else "queued"), seen
    assert "lost" in seen["message"]
    if atomic:
        assert seen["done"] == 0 and reservation_count() == 0


def test_a_busy_worker_resumes_a_dead_workers_job(spawn):
    # The busy worker's one slot holds a job of minutes; its periodic sweep waits behind it.
    spawn({"PGBULK_CLEANUP_SCHEDULE_INTERVAL": "1", "LIBRARY_SAVE_DELAY": "0.05"},
          concurrency=1)
    long_ids = make_books(2000, genre=False)
    long_job = pgbulk.bulk_update(Book.objects.filter(pk__in=long_ids), {"price": 37},
                                  atomic=False)
    wait_for(lambda: Job.objects.get(pk=long_job.pk).status == "running")
    doomed = spawn()
    ids = make_books(600, genre=False)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 38}, atomic=False)
    wait_for(lambda: Job.objects.get(pk=job.pk).done >= 100)
    doomed.kill()
    # Nobody reads its progress and no periodic sweep can run: the busy runner sweeps.
    resumed = wait_for(lambda: Job.objects.filter(pk=job.pk, status="queued").first(),
                       timeout=30)
    assert "resuming" in resumed.message
    assert Job.objects.get(pk=long_job.pk).status == "running"
    long_job.cancel()


# --- Exceptions and listeners -------------------------------------------------------------


def test_one_failing_listener_does_not_silence_the_others():
    from pgbulk.signals import job_event

    heard = []

    def broken(sender, job, event, **kwargs):
        raise RuntimeError("listener bug")

    def recorder(sender, job, event, **kwargs):
        heard.append(event)

    job_event.connect(broken)
    job_event.connect(recorder)
    try:
        pgbulk.bulk_update(Book.objects.filter(pk__in=make_books(2)), {"price": 3}, run="sync")
    finally:
        job_event.disconnect(broken)
        job_event.disconnect(recorder)
    assert "create" in heard and "complete" in heard


# --- Rolling deploys and composite keys ----------------------------------------------------


def test_the_previous_release_can_insert_jobs_and_call_the_v1_functions():
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO pgbulk_job (id, kind, task_name, model, status, run_mode, params, total,"
            " done, failed_count, errors, message, cancel_requested, created_at) VALUES "
            "(gen_random_uuid(), 'update', 'pgbulk.tasks.bulk_update_task', 'library.Book',"
            " 'queued', 'async', '{}', 0, 0, 0, '[]', '', false, now()) RETURNING id")
        job_id = cursor.fetchone()[0]
        assert Job.objects.filter(pk=job_id, attempt=0, cancelled_by=None).exists()
        cursor.execute("SELECT pgbulk_job_alive(%s), pgbulk_sweep()->'failed'->>0", [job_id])
        # not alive; failed by the v1 sweep (now the v2 one): its queued task is gone
        assert cursor.fetchone() == (False, str(job_id))


def test_a_composite_primary_key_is_refused_at_launch_and_by_the_checks():
    from django.core.exceptions import ImproperlyConfigured
    from django.test import override_settings

    from pgbulk.checks import check_bulk_models
    from testproject.library.models import Shelf

    Shelf.objects.create(room="A", number=1)
    with pytest.raises(ImproperlyConfigured, match="composite primary key"):
        pgbulk.bulk_update(Shelf.objects.all(), {"label": "x"}, run="sync")
    assert not Job.objects.exists()
    with override_settings(ROOT_URLCONF="tests.urls_composite"):
        assert [e.id for e in check_bulk_models()] == ["pgbulk.E004"]


# --- The fault test: SIGTERM, then SIGKILL, at random points -------------------------------


def test_sigterm_then_sigkill_at_random_points_with_the_sweep_every_second(spawn, writes):
    """20 jobs (both modes): each ends in an honest terminal state, every record is written
    at most once (exactly once when the job succeeded), no reservation is left.
    Replay a failure with PGBULK_FAULT_SEED=<the seed printed>."""
    seed = int(os.environ.get("PGBULK_FAULT_SEED") or random.randrange(10**6))
    print(f"PGBULK_FAULT_SEED={seed}")
    rng = random.Random(seed)
    stop = threading.Event()

    def sweep_every_second():
        try:
            while not stop.wait(1.0):
                sweep()
        finally:
            connections.close_all()

    sweeper = threading.Thread(target=sweep_every_second)
    sweeper.start()
    rescuer = None
    try:
        for trial in range(20):
            atomic = trial % 2 == 0
            worker = spawn()
            ids = make_books(150, genre=False)
            job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 100 + trial},
                                     atomic=atomic)
            time.sleep(rng.uniform(0, 1.0))
            worker.process.send_signal(signal.SIGTERM)
            time.sleep(rng.uniform(0, 1.0))
            if worker.process.poll() is None:
                worker.kill()
            deadline = time.monotonic() + 60
            while not Job.objects.get(pk=job.pk).is_terminal:
                assert time.monotonic() < deadline, f"seed {seed} trial {trial}: never ended"
                if rescuer is None and Job.objects.filter(pk=job.pk, status="queued").exists():
                    rescuer = spawn()
                time.sleep(0.2)
            job.refresh_from_db()
            seen = (seed, trial, job.status, job.message)
            counts = writes(ids)
            if job.status == "succeeded":
                assert counts == dict.fromkeys(ids, 1) and job.done == 150, seen
            else:
                assert (atomic, job.status, job.done, counts) == (True, "failed", 0, {}), seen
            assert reservation_count() == 0, seen
    finally:
        stop.set()
        sweeper.join()


def test_a_job_resumed_without_its_old_task_goes_back_to_its_own_queue(settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "own-queue"}
    ids = make_books(10)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2}, atomic=False,
                             run="async")
    Job.objects.filter(pk=job.pk).update(status="running")
    with connection.cursor() as cursor:  # its task row is gone, as after a cleanup
        cursor.execute("ALTER TABLE procrastinate_jobs DISABLE TRIGGER pgbulk_task_deleted")
        try:
            cursor.execute("DELETE FROM procrastinate_jobs WHERE id = %s",
                           [job.procrastinate_job_id])
        finally:
            cursor.execute("ALTER TABLE procrastinate_jobs ENABLE TRIGGER pgbulk_task_deleted")
    assert sweep()["resumed"] == [str(job.id)]
    job.refresh_from_db()
    with connection.cursor() as cursor:
        cursor.execute("SELECT queue_name FROM procrastinate_jobs WHERE id = %s",
                       [job.procrastinate_job_id])
        assert cursor.fetchone() == ("own-queue",)


def old_release_reserves(job: Job, pk: int) -> None:
    """What a process of the previous release writes: one row per key, no span."""
    with connection.cursor() as cursor:
        cursor.execute("INSERT INTO pgbulk_reservation (job_id, seq, model, object_pk, is_target,"
                       " exclusive, created_at) VALUES (%s, 1000, 'library.Book', %s, true,"
                       " true, now())", [job.id, str(pk)])


def test_reservations_of_the_previous_release_and_spans_exclude_each_other(held_queue):
    ids = make_books(20, genre=False)
    other = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[15:]), {"price": 1}, run="async")
    old_release_reserves(other, ids[3])  # an old web process launched on book 3
    with pytest.raises(pgbulk.ConflictError):
        pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:10]), {"price": 2}, run="async")
    spans = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[5:10]), {"price": 3}, run="async")
    assert spans.status == "queued"
    with pytest.raises(DatabaseError, match="pgbulk_reservation_record_uniq"):
        old_release_reserves(other, ids[7])  # the old code's unique check sees the span
