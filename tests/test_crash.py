"""PostgreSQL stopped in immediate mode mid-job, then restarted (runs last: it breaks every
connection). Needs the project's own cluster (scripts/localpg.sh); skipped on another server."""

from __future__ import annotations

import contextlib
import subprocess
import time
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest
from django.db import OperationalError, connection, connections

import pgbulk
from pgbulk.models import Job, Progress
from pgbulk.progress import snapshot
from pgbulk.sweep import sweep
from testproject.library.models import Book
from tests.factories import make_books, reservation_count, wait_for
from tests.test_sweep import FAST_DEATH, FAULT_ENV

ROOT = Path(__file__).resolve().parent.parent
pytestmark = [pytest.mark.django_db(transaction=True, databases="__all__"), pytest.mark.crash,
              pytest.mark.slow]


def own_cluster() -> bool:
    port_file = ROOT / ".pgdata" / "port"
    return port_file.exists() and port_file.read_text().strip() == str(
        connection.settings_dict["PORT"])


def database_is_back() -> bool:
    connections.close_all()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return True
    except OperationalError:
        return False


@contextlib.contextmanager
def rows_locked(ids: list[int]):
    """Hold row locks on these books from another session: a job reaching them waits."""
    s = connection.settings_dict
    holder = psycopg.connect(host=s["HOST"], port=s["PORT"], user=s["USER"],
                             password=s["PASSWORD"], dbname=s["NAME"])
    try:
        holder.execute("SELECT id FROM library_book WHERE id = ANY(%s) FOR UPDATE", [ids])
        yield
    finally:
        with contextlib.suppress(psycopg.Error):
            holder.close()  # after the crash this session is gone anyway


def test_immediate_shutdown_mid_job_ends_every_job_definitely(start_worker, stop_workers,
                                                               settings):
    if not own_cluster():
        pytest.skip("needs the cluster started by scripts/localpg.sh")
    stop_workers()  # the workers of earlier tests end cleanly rather than lose their database
    settings.PGBULK = {**settings.PGBULK, "QUEUE": "fault"}
    victim = start_worker(FAULT_ENV, concurrency=2, queue="fault")
    ids = make_books(1200, genre=False)
    # Neither job can finish before the crash: each one reaches a record whose row lock
    # the test holds, and waits there (the chunked job has committed the chunks before it).
    with rows_locked([ids[300], ids[900]]):
        chunked = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[:600]), {"price": 51},
                                     atomic=False)
        atomic = pgbulk.bulk_update(Book.objects.filter(pk__in=ids[600:]), {"price": 52})
        wait_for(lambda: chunked.progress()["done"] >= 100 and atomic.progress()["done"] >= 50)
        assert Job.objects.get(pk=atomic.pk).status == "running"

        subprocess.run(["bash", str(ROOT / "scripts" / "localpg.sh"), "crash"], check=True,
                       capture_output=True, timeout=120)
    victim.kill()
    wait_for(database_is_back, timeout=60, interval=0.5)

    # Recovery emptied the UNLOGGED table; the job rows say where the jobs stand.
    assert Progress.objects.count() == 0
    chunked.refresh_from_db()
    lost = snapshot(chunked, repair=False)  # what a reader sees before anything sweeps
    assert chunked.status == "running" and lost["progress_known"] is False
    assert lost["worker_lost"] is True
    atomic.refresh_from_db()  # running, or already failed if its task ended after restart
    assert atomic.status in ("running", "failed"), atomic.message

    rescuer = None
    deadline = time.monotonic() + 90
    while not all(Job.objects.get(pk=j.pk).is_terminal for j in (chunked, atomic)):
        assert time.monotonic() < deadline, "jobs did not reach a definite state"
        sweep(**FAST_DEATH)
        if rescuer is None and Job.objects.filter(pk=chunked.pk, status="queued").exists():
            rescuer = start_worker(FAULT_ENV, queue="fault")
        time.sleep(0.3)
    chunked.refresh_from_db()
    atomic.refresh_from_db()
    assert (chunked.status, chunked.done) == ("succeeded", 600)
    assert set(Book.objects.filter(pk__in=ids[:600]).values_list("price", "revision")) == {
        (Decimal(51), 1)}
    assert atomic.status == "failed"
    assert set(Book.objects.filter(pk__in=ids[600:]).values_list("price", "revision")) == {
        (Decimal(10), 0)}
    assert chunked.progress()["done"] == 600  # progress rebuilt
    assert reservation_count() == 0
