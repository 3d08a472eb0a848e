"""Progress arithmetic (pgbulk.progress.snapshot) and a job handle's bookkeeping. No database:
the one read of the live progress row is served from memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pgbulk import progress
from pgbulk.job_tasks import Every, JobHandle
from pgbulk.models import Job, Progress

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def live_rows(monkeypatch) -> dict:
    """``{job_id: Progress}``: what the UNLOGGED progress table holds (empty: no row)."""
    rows: dict = {}

    class Lookup:
        def __init__(self, job_id):
            self.job_id = job_id

        def first(self):
            return rows.get(self.job_id)

    monkeypatch.setattr(Progress.objects, "filter", lambda job_id: Lookup(job_id))
    monkeypatch.setattr(progress.timezone, "now", lambda: NOW)
    return rows


def job(status="running", total=1000, done=0, failed=0, started=None, finished=None) -> Job:
    return Job(kind="update", model="library.Book", status=status, total=total, done=done,
               failed_count=failed, started_at=started, finished_at=finished)


def test_a_queued_job_is_at_zero_and_known(live_rows):
    snap = progress.snapshot(job("queued"))
    assert (snap["done"], snap["percent"], snap["rate"], snap["eta_seconds"]) == (0, 0.0, None, None)
    assert snap["progress_known"] is True and snap["status"] == "queued"


def test_the_live_row_runs_ahead_of_committed_figures(live_rows):
    running = job(done=200, started=NOW - timedelta(seconds=10))
    live_rows[running.id] = Progress(job_id=running.id, total=1000, done=250, failed_count=50,
                                     message="250 of 1000")
    snap = progress.snapshot(running)
    assert (snap["done"], snap["failed_count"], snap["total"]) == (250, 50, 1000)
    assert snap["percent"] == 30.0  # done and failed are both processed
    assert snap["rate"] == 30.0 and snap["eta_seconds"] == pytest.approx(700 / 30, abs=0.1)
    assert snap["message"] == "250 of 1000" and snap["progress_known"] is True


def test_committed_figures_win_over_a_live_row_that_fell_back(live_rows):
    running = job(done=400, started=NOW - timedelta(seconds=4))
    live_rows[running.id] = Progress(job_id=running.id, total=1000, done=100)  # rolled back
    assert progress.snapshot(running)["done"] == 400


def test_without_a_live_row_a_running_job_says_its_progress_is_unknown(live_rows):
    snap = progress.snapshot(job(done=300, started=NOW - timedelta(seconds=3)))
    assert snap["done"] == 300 and snap["progress_known"] is False


def test_a_finished_job_shows_its_own_figures_and_no_eta(live_rows):
    finished = job("failed", total=10, done=6, failed=2, started=NOW - timedelta(seconds=8),
                   finished=NOW - timedelta(seconds=4))
    live_rows[finished.id] = Progress(job_id=finished.id, total=10, done=9)
    snap = progress.snapshot(finished)
    assert (snap["done"], snap["failed_count"], snap["percent"]) == (6, 2, 80.0)
    assert snap["rate"] == 2.0 and snap["eta_seconds"] is None  # 8 records in 4 s
    assert snap["progress_known"] is True


def test_success_is_100_percent_even_for_an_empty_selection(live_rows):
    assert progress.snapshot(job("succeeded", total=0))["percent"] == 100.0
    assert progress.snapshot(job("running", total=0))["percent"] == 0.0
    assert progress.snapshot(job("cancelled", total=3, done=1))["percent"] == 33.3


def handle(atomic=True, should_abort=None, runtime=None) -> JobHandle:
    return JobHandle(Job(kind="update", params={"atomic": atomic}, total=10), runtime,
                     should_abort)


def test_failed_records_are_all_counted_but_their_details_capped(settings):
    settings.PGBULK = {**settings.PGBULK, "MAX_RECORDED_ERRORS": 3}
    h = handle(atomic=False)
    h.fail_records([{"pk": i, "field": "price", "message": "bad"} for i in range(2)])
    h.fail_records([{"pk": i, "field": "price", "message": "bad"} for i in range(2, 5)])
    assert h.job.failed_count == 5
    assert [e["pk"] for e in h.job.errors] == [0, 1, 2]
    assert h.atomic is False and handle().atomic is True


class Runtime:
    """Stands in for the running job's context: counts the cancel checks it is asked."""

    def __init__(self, cancelled: bool) -> None:
        self.cancelled, self.asked = cancelled, 0

    def cancel_requested(self) -> bool:
        self.asked += 1
        return self.cancelled


def test_an_abort_from_procrastinate_stops_without_asking_the_database():
    runtime = Runtime(cancelled=False)
    assert handle(should_abort=lambda: True, runtime=runtime).should_stop() is True
    assert runtime.asked == 0


def test_a_cancel_request_stops_the_job():
    assert handle(should_abort=lambda: False, runtime=Runtime(cancelled=True)).should_stop()
    runtime = Runtime(cancelled=False)
    assert handle(runtime=runtime).should_stop() is False and runtime.asked == 1


def test_a_throttle_is_due_the_first_time_then_once_per_period():
    hourly = Every(3600)
    assert [hourly.due(), hourly.due(), hourly.due()] == [True, False, False]
    always = Every(0)
    assert [always.due(), always.due()] == [True, True]
