"""The safety net against real processes: dead workers, vanished tasks, stuck jobs, TTLs."""

from __future__ import annotations

import json
import random
import time
from datetime import timedelta
from decimal import Decimal
from io import StringIO

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection
from django.db.utils import DatabaseError
from django.utils import timezone

import pgbulk
from pgbulk.models import Job, Progress
from pgbulk.progress import snapshot
from pgbulk.sweep import sweep
from testproject.library.models import Book
from tests import conftest
from tests.factories import chunk_env, make_books, reservation_count, wait_for

pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.worker]

FAULT_ENV = {"LIBRARY_SAVE_DELAY": "0.005", **chunk_env(50),
             "PGBULK_HEARTBEAT_INTERVAL": "0.5"}
FAST_DEATH = {"heartbeat_timeout": 3}


@pytest.fixture
def fault_queue(settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "fault"}


def sweep_until(job: Job, key: str, timeout: float = 30.0) -> dict:
    """Sweep until the dead job shows up under ``key`` (its session takes a moment to end)."""
    def acted():
        report = sweep(**FAST_DEATH)
        return report if str(job.id) in report[key] else None
    return wait_for(acted, timeout=timeout, interval=0.3)


def test_dead_worker_atomic_job_fails_with_data_untouched(start_worker, fault_queue):
    doomed = start_worker(FAULT_ENV, queue="fault")
    ids = make_books(600)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 21})
    wait_for(lambda: job.progress()["done"] >= 100)
    doomed.kill()
    sweep_until(job, "failed")
    job.refresh_from_db()
    assert job.status == "failed" and "worker running this job was lost" in job.message
    assert not Book.objects.filter(pk__in=ids, price=21).exists()
    assert reservation_count() == 0


@pytest.mark.slow
def test_dead_worker_chunked_job_resumes_on_another_worker(start_worker, fault_queue):
    doomed = start_worker(FAULT_ENV, queue="fault")
    ids = make_books(600)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 22}, atomic=False)
    wait_for(lambda: Job.objects.get(pk=job.pk).done >= 100)
    doomed.kill()
    sweep_until(job, "resumed")
    assert Job.objects.get(pk=job.pk).status == "queued"
    rescuer = start_worker(FAULT_ENV, queue="fault")
    job.wait(60)
    rescuer.stop()
    assert (job.status, job.done) == ("succeeded", 600)
    assert set(Book.objects.filter(pk__in=ids).values_list("price", "revision")) == {
        (Decimal(22), 1)}
    assert reservation_count() == 0


@pytest.mark.slow
def test_sigkill_at_random_points(start_worker, fault_queue):
    """20 trials across both modes: never half-changed or changed twice, no lock left."""
    rng = random.Random(5)
    rescuer = None
    for trial in range(20):
        atomic = trial % 2 == 0
        worker = start_worker(FAULT_ENV, queue="fault")
        ids = make_books(150, genre=False)
        job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 30 + trial},
                                 atomic=atomic)
        time.sleep(rng.uniform(0, 1.2))
        worker.kill()
        deadline = time.monotonic() + 60
        while not Job.objects.get(pk=job.pk).is_terminal:
            assert time.monotonic() < deadline, f"trial {trial}: job never finished"
            sweep(**FAST_DEATH)
            if Job.objects.get(pk=job.pk).status == "queued" and rescuer is None:
                rescuer = start_worker(FAULT_ENV, queue="fault")
            time.sleep(0.3)
        job.refresh_from_db()
        revisions = set(Book.objects.filter(pk__in=ids).values_list("price", "revision"))
        if job.status == "succeeded":
            assert revisions == {(Decimal(30 + trial), 1)}, (trial, job.message)
        else:
            assert atomic and job.status == "failed", (trial, job.status, job.message)
            assert revisions == {(Decimal(10), 0)}
        assert reservation_count() == 0
    if rescuer:
        rescuer.stop()


def test_a_task_cancelled_or_deleted_in_procrastinate_ends_the_job(settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held"}
    from procrastinate.contrib.django import app

    ids = make_books(60)
    first = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:30]), {"price": 2})
    second = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[30:]), {"price": 3})
    app.job_manager.cancel_job_by_id(first.procrastinate_job_id)
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM procrastinate_jobs WHERE id = %s",
                       [second.procrastinate_job_id])
    first.refresh_from_db()
    second.refresh_from_db()
    assert first.status == "cancelled" and second.status == "failed"
    assert "deleted" in second.message
    assert reservation_count() == 0


def test_sweep_fails_a_queued_job_whose_task_vanished_unnoticed(settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held"}
    ids = make_books(30)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2})
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE procrastinate_jobs DISABLE TRIGGER pgbulk_task_deleted")
        try:
            cursor.execute("DELETE FROM procrastinate_jobs WHERE id = %s",
                           [job.procrastinate_job_id])
        finally:
            cursor.execute("ALTER TABLE procrastinate_jobs ENABLE TRIGGER pgbulk_task_deleted")
    assert reservation_count() == 30
    dry = json.loads(call_command_output("pgbulk_cleanup", "--dry-run", "--json"))
    assert dry["failed"] == [str(job.id)] and dry["dry_run"] is True
    assert Job.objects.get(pk=job.pk).status == "queued" and reservation_count() == 30
    report = sweep()
    assert report["failed"] == [str(job.id)] and report["released"] == 30
    assert Job.objects.get(pk=job.pk).status == "failed" and reservation_count() == 0


def test_a_job_running_too_long_is_asked_to_stop(worker):
    ids = make_books(1500)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 23}, atomic=False)
    wait_for(lambda: job.progress()["done"] >= 100)
    report = sweep(max_task_duration=0)
    assert report["flagged"] == [str(job.id)] and report["failed"] == []
    job.wait(30)
    assert job.status == "cancelled"
    assert reservation_count() == 0


@pytest.mark.slow
def test_sweeping_again_and_again_never_touches_live_jobs(worker):
    ids = make_books(900, genre=False)
    jobs = [pgbulk.bulk_update(Book.objects.filter(pk__in=ids[n * 300:(n + 1) * 300]),
                               {"price": 40 + n}, atomic=bool(n % 2)) for n in range(3)]
    job_ids = {str(j.id) for j in jobs}
    sweeps = 0
    while not all(Job.objects.get(pk=j.pk).is_terminal for j in jobs):
        report = sweep()
        sweeps += 1
        touched = set(report["failed"]) | set(report["resumed"]) | set(report["flagged"])
        assert not touched & job_ids, report
    assert sweeps > 3
    for n, job in enumerate(jobs):
        job.refresh_from_db()
        assert job.status == "succeeded"
        assert set(Book.objects.filter(pk__in=ids[n * 300:(n + 1) * 300])
                   .values_list("price", flat=True)) == {Decimal(40 + n)}


@pytest.mark.slow
def test_sigterm_drains_the_running_job(start_worker, fault_queue):
    stopping = start_worker(FAULT_ENV, queue="fault")
    ids = make_books(300)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 24}, atomic=False)
    wait_for(lambda: job.progress()["done"] >= 50)
    stopping.stop()
    assert stopping.process.returncode is not None
    job.refresh_from_db()
    assert job.status in ("succeeded", "cancelled"), job.message
    assert reservation_count() == 0
    changed = Book.objects.filter(pk__in=ids, price=24).count()
    assert changed == job.done


def test_ttls_expire_progress_history_and_orphaned_reservations():
    ids = make_books(5)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2}, run="sync")
    assert Progress.objects.filter(job_id=job.id).exists()
    with connection.cursor() as cursor:  # a reservation left behind by a finished job
        cursor.execute("INSERT INTO pgbulk_reservation (job_id, seq, model, object_pk, "
                       "is_target, exclusive, created_at) VALUES (%s, 1, 'library.Book', %s, "
                       "true, true, now())", [job.id, str(ids[0])])
    report = sweep()
    assert report["released"] == 1 and report["deleted_progress"] == 0
    report = sweep(progress_ttl=0)
    assert report["deleted_progress"] == 1 and report["deleted_jobs"] == 0
    report = sweep(job_retention=0)
    assert report["deleted_jobs"] == 1 and not Job.objects.filter(pk=job.pk).exists()


def test_terminal_states_are_final_in_the_database():
    ids = make_books(2)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2}, run="sync")
    for status in ("running", "queued", "failed"):
        with pytest.raises(DatabaseError):
            Job.objects.filter(pk=job.pk).update(status=status)
    assert Job.objects.get(pk=job.pk).status == "succeeded"


def test_progress_is_rebuilt_when_the_unlogged_table_is_empty(settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held", "CHUNK_SIZE": 10}
    ids = make_books(30)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2}, atomic=False)
    Job.objects.filter(pk=job.pk).update(status="running", done=20)
    Progress.objects.all().delete()  # what a crash does to the UNLOGGED table
    job.refresh_from_db()
    seen = snapshot(job, repair=False)  # nobody runs it: a reader sees the lost worker
    assert (seen["done"], seen["progress_known"], seen["worker_lost"]) == (20, False, True)


def test_status_command_reports_jobs_locks_and_workers(worker, settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held"}
    ids = make_books(25)
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 2})
    status = json.loads(call_command_output("pgbulk_status", "--json"))
    assert [j["id"] for j in status["active_jobs"]] == [str(job.id)]
    assert status["locks"][0]["targets"] == 25
    assert status["workers"]
    text = call_command_output("pgbulk_status")
    assert "active jobs: 1" in text and str(job.id) in text
    assert reservation_count() == 25


def test_status_counts_what_a_running_atomic_job_has_processed_as_its_page_does(worker):
    """Before: pgbulk_status (the pgbulk_active_jobs view) read only committed counts, so a
    running atomic job showed done 0, 0 % for its whole run while its page said 800."""
    ids = make_books(1000, genre=False)
    with psycopg.connect(conftest.test_database_url()) as holder:
        holder.execute("SELECT 1 FROM library_book WHERE id = %s FOR UPDATE", [ids[800]])
        job = pgbulk.bulk_update(Book.objects.filter(pk__in=ids), {"price": 31})

        def waiting() -> bool:  # the runner waits for the locked record: its count stops
            with connection.cursor() as cursor:
                cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = "
                               "current_database() AND wait_event_type = 'Lock'")
                return cursor.fetchone()[0] > 0

        wait_for(waiting, timeout=30, interval=0.1)
        seen = job.progress()["done"]
        active = json.loads(call_command_output("pgbulk_status", "--json"))["active_jobs"]
        assert seen > 0 and [(j["id"], j["done"]) for j in active] == [(str(job.id), seen)]
        assert float(active[0]["percent"]) == round(100 * seen / 1000, 1)
    job.wait(30)
    assert job.status == "succeeded", job.message


def test_stale_jobs_are_judged_by_the_projects_max_task_duration(settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held"}
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=make_books(25)), {"price": 2})
    two_hours_ago = timezone.now() - timedelta(hours=2)
    Job.objects.filter(pk=job.pk).update(status="running", started_at=two_hours_ago,
                                         attempt_started_at=two_hours_ago)

    def stale() -> list[tuple[str, str]]:
        rows = json.loads(call_command_output("pgbulk_status", "--json"))["stale_jobs"]
        return [(row["id"], row["reason"]) for row in rows]

    with psycopg.connect(conftest.test_database_url(), autocommit=True) as runner:  # a live runner
        runner.execute("SELECT pg_advisory_lock(pgbulk_job_lock_key(%s))", [job.id])
        settings.PGBULK = {**settings.PGBULK, "MAX_TASK_DURATION": 3 * 3600}
        assert stale() == []
        settings.PGBULK = {**settings.PGBULK, "MAX_TASK_DURATION": 3600}
        assert stale() == [(str(job.id), "running too long")]
        with connection.cursor() as cursor:  # psql's view: the default, 1 h
            cursor.execute("SELECT reason, attempt_running_for FROM pgbulk_stale_jobs")
            ((reason, running_for),) = cursor.fetchall()
        assert reason == "running too long" and running_for >= timedelta(hours=2)
    assert wait_for(lambda: stale() == [(str(job.id), "worker died")], interval=0.2)


def test_cleanup_command_says_what_the_sweep_did_or_that_another_one_runs(settings):
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held"}
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=make_books(25)), {"price": 2})
    Job.objects.filter(pk=job.pk).update(status="running")  # and nobody runs it
    with psycopg.connect(conftest.test_database_url()) as other:  # a sweep in progress
        other.execute("SELECT pg_advisory_xact_lock(pgbulk_model_lock_key('pgbulk.sweep'))")
        assert call_command_output("pgbulk_cleanup") == "Another sweep is running; nothing done.\n"
    dry = call_command_output("pgbulk_cleanup", "--dry-run")
    assert dry.startswith("0 job(s) would be resumed, 1 failed, 0 cancelled, 0 flagged as "
                          "stuck; 25 reservation(s) released; ")  # it left cancelled out
    assert dry.endswith(" change log row(s) deleted.\n" + f"  failed: {job.id}\n")
    assert f"  failed: {job.id}" in dry and Job.objects.get(pk=job.pk).status == "running"
    assert f"  failed: {job.id}" in call_command_output("pgbulk_cleanup")
    assert Job.objects.get(pk=job.pk).status == "failed"


def call_command_output(*args) -> str:
    out = StringIO()
    call_command(*args, stdout=out)
    return out.getvalue()


def test_the_sweep_before_a_resume_keeps_old_jobs_and_their_logs(settings):
    """A resumed job sweeps first (to end what died with its last run); that sweep must not
    do the housekeeping: purging change logs and deleting old jobs, before the body runs."""
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "held"}
    job = pgbulk.bulk_update(Book.objects.filter(pk__in=make_books(3)), {"price": 2},
                             run="sync")
    long_ago = timezone.now() - timedelta(days=400)
    Job.objects.filter(pk=job.pk).update(created_at=long_ago, finished_at=long_ago)
    sweep(housekeeping=False)
    assert Job.objects.get(pk=job.pk).change_log == "kept"
    assert sweep()["deleted_jobs"] == 1  # the scheduled sweep does
