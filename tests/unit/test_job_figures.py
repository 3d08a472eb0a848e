"""Progress arithmetic (pgbulk.progress.figures) and a job handle's bookkeeping. No database:
the figures are computed from what was read (job row, progress row, runners' in-flight counts)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from pgbulk import progress
from pgbulk.job_tasks import JobHandle
from pgbulk.models import Job, Progress
from pgbulk.runtime import Every

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
NOTHING = (0, 0, 0)  # no runner has anything in flight


def job(status="running", total=1000, done=0, failed=0, started=None, finished=None) -> Job:
    return Job(kind="update", model="library.Book", status=status, total=total, done=done,
               failed_count=failed, started_at=started, finished_at=finished)


def figures(job, live=None, in_flight=NOTHING, worker_lost=False, queue_position=None):
    return progress.figures(job, live=live, in_flight=in_flight, worker_lost=worker_lost,
                            queue_position=queue_position, now=NOW)


def test_a_queued_job_is_at_zero_and_known():
    snap = figures(job("queued"), queue_position=2)
    assert (snap["done"], snap["percent"], snap["rate"], snap["eta_seconds"]) == (0, 0.0, None, None)
    assert snap["progress_known"] is True and snap["queue_position"] == 2


def test_live_runners_in_flight_counts_add_to_the_committed_figures():
    running = job(done=200, started=NOW - timedelta(seconds=10))
    live = Progress(job_id=running.id, total=1000, message="Recalculating")
    snap = figures(running, live, in_flight=(50, 50, 2))  # two runners, 100 uncommitted
    assert (snap["done"], snap["failed_count"], snap["total"]) == (250, 50, 1000)
    assert snap["percent"] == 30.0  # done and failed are both processed
    assert snap["rate"] == 30.0 and snap["eta_seconds"] == pytest.approx(700 / 30, abs=0.1)
    assert snap["message"] == "Recalculating" and snap["progress_known"] is True


def test_a_lost_worker_counts_only_what_committed():
    running = job(done=400, started=NOW - timedelta(seconds=4))
    snap = figures(running, Progress(job_id=running.id, message="x"), in_flight=(90, 0, 1),
                   worker_lost=True)
    assert (snap["done"], snap["worker_lost"]) == (400, True)


def test_figures_never_pass_the_total():
    snap = figures(job(total=100, done=90), in_flight=(30, 5, 1))  # failures count first
    assert (snap["done"], snap["failed_count"], snap["percent"]) == (95, 5, 100.0)


def test_without_a_live_row_a_running_job_says_its_progress_is_unknown():
    snap = figures(job(done=300, started=NOW - timedelta(seconds=3)))
    assert snap["done"] == 300 and snap["progress_known"] is False


def test_a_finished_job_shows_its_own_figures_and_no_eta():
    finished = job("failed", total=10, done=6, failed=2, started=NOW - timedelta(seconds=8),
                   finished=NOW - timedelta(seconds=4))
    snap = figures(finished, Progress(job_id=finished.id, total=10, done=9), in_flight=(3, 0, 1))
    assert (snap["done"], snap["failed_count"], snap["percent"]) == (6, 2, 80.0)
    assert snap["rate"] == 2.0 and snap["eta_seconds"] is None  # 8 records in 4 s
    assert snap["progress_known"] is True


def test_success_is_100_percent_even_for_an_empty_selection():
    assert figures(job("succeeded", total=0))["percent"] == 100.0
    assert figures(job("running", total=0))["percent"] == 0.0
    assert figures(job("cancelled", total=3, done=1))["percent"] == 33.3


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
        self.cancelled, self.asked, self.sweeps = cancelled, 0, 0

    def cancel_requested(self) -> bool:
        self.asked += 1
        return self.cancelled

    def maybe_sweep(self) -> None:
        self.sweeps += 1


def test_an_abort_from_procrastinate_stops_without_asking_the_database():
    runtime = Runtime(cancelled=False)
    assert handle(should_abort=lambda: True, runtime=runtime).should_stop() is True
    assert runtime.asked == 0


def test_a_cancel_request_stops_the_job():
    assert handle(should_abort=lambda: None, runtime=Runtime(cancelled=True)).should_stop()
    runtime = Runtime(cancelled=False)
    assert handle(runtime=runtime).should_stop() is False and runtime.asked == 1
    assert runtime.sweeps == 1  # a busy runner sweeps now and then as it checks


def test_a_worker_shutting_down_leaves_the_job_to_the_sweep():
    from pgbulk.exceptions import JobShutdown

    runtime = Runtime(cancelled=False)
    with pytest.raises(JobShutdown):
        handle(should_abort=lambda: "shutdown", runtime=runtime).should_stop()
    assert runtime.asked == 0


def test_a_throttle_is_due_the_first_time_then_once_per_period():
    hourly = Every(3600)
    assert [hourly.due(), hourly.due(), hourly.due()] == [True, False, False]
    always = Every(0)
    assert [always.due(), always.due()] == [True, True]


def test_a_job_queued_again_after_a_lost_worker_shows_no_rate_or_time_left():
    """It showed the earlier run's rate and an ETA while it waited for a worker."""
    requeued = job("queued", total=1000, done=400, started=NOW - timedelta(seconds=40))
    snap = figures(requeued)
    assert (snap["done"], snap["rate"], snap["eta_seconds"]) == (400, None, None)


def test_a_sub_second_duration_reads_less_than_a_second():
    from pgbulk.job_status import duration_text

    assert (duration_text(0.2), duration_text(0.6), duration_text(75)) == (
        "< 1 s", "1 s", "1 min 15 s")


def test_a_running_job_without_progress_for_a_while_says_so_instead_of_a_time_left():
    """A paused worker still holds its job (alive), so the pages guessed a time left that
    only grew; now they say how long nothing moved."""
    from pgbulk.job_status import job_status

    running = job(done=200, started=NOW - timedelta(seconds=100))
    live = Progress(job_id=running.id, total=1000)

    def snap(idle: float) -> dict:
        return progress.figures(running, live=live, in_flight=(0, 0, 1), worker_lost=False,
                                queue_position=None, now=NOW, idle=idle)

    moving = snap(progress.STALLED_AFTER - 1)
    assert moving["stalled_seconds"] is None and moving["eta_seconds"] == 400.0
    assert "about 6 min 40 s left" in job_status(running, moving).figures
    stalled = snap(95)
    assert stalled["stalled_seconds"] == 95 and stalled["eta_seconds"] is None
    figures_text = job_status(running, stalled).figures
    assert "no progress for 1 min 35 s" in figures_text and "left" not in figures_text
    assert snap(95)["rate"] == moving["rate"]  # what it did so far stays as measured


def test_a_cancel_that_came_after_the_last_chunk_says_every_record_was_processed():
    """Before: "Cancelled after 200 of 200 records; the rest were not changed." (review)."""
    from pgbulk.execute import cancelled_message

    assert cancelled_message(job("running", total=200, done=200)) == (
        "Cancelled after every record was processed: 200 of 200 records were changed.")
    assert cancelled_message(job("running", total=200, done=80)) == (
        "Cancelled after 80 of 200 records; the rest were not changed.")


def test_a_failure_hidden_from_who_may_not_read_the_records_says_what_was_done():
    """It said "changed" of deletes and tasks, and "5 of 0" for a task with no total."""
    from pgbulk.permissions import public_message

    def hidden(kind: str, done: int, total: int) -> str:
        failed = Job(kind=kind, model="library.Book", status="failed", done=done, total=total)
        return public_message(failed, "ValueError: 'Secret' refused.", readable=False)

    assert hidden("update", 0, 9) == "The job failed; you may not see why. Nothing was changed."
    assert hidden("delete", 4, 9).endswith("4 of 9 records were deleted.")
    assert hidden("task", 4, 9).endswith("4 of 9 records were processed.")
    assert hidden("task", 5, 0).endswith("5 records were processed.")
    assert hidden("update", 4, 9).endswith("4 of 9 records were changed.")
