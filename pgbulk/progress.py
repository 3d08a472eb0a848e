"""Live progress: written to the UNLOGGED progress table, read with the job row as fallback."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.db import connections, router
from django.utils import timezone

from pgbulk.sqlfiles import query

if TYPE_CHECKING:
    from pgbulk.models import Job


#: Seconds without progress from a running job's live runners after which its pages say
#: so instead of guessing the time left.
STALLED_AFTER = 30


def write(job: Job, done: int, failed: int, message: str = "", *, using: str) -> None:
    """Record the job's progress as it is now (live figures fall back when the
    transaction that counted them rolls back; the job row keeps what committed)."""
    with connections[using].cursor() as cursor:
        cursor.execute(query("upsert_progress"), {
            "job_id": str(job.id), "total": job.total, "done": done, "failed": failed,
            "message": message})


def write_final(job: Job, message: str, *, using: str) -> None:
    """Record a finished job's exact figures (an atomic job that rolled back goes to 0);
    its runners have nothing in flight any more."""
    write(job, job.done, job.failed_count, message, using=using)
    with connections[using].cursor() as cursor:
        cursor.execute(query("forget_in_flight"), {"job_id": str(job.id)})


def primary(job: Job) -> str:
    """The database a job lives on: progress is UNLOGGED, so never read from a replica."""
    from pgbulk.models import Progress

    return router.db_for_write(Progress, instance=job) or "default"


def probe(job: Job, using: str) -> tuple[bool, int | None]:
    """(worker lost, jobs ahead in the queue): one cheap query for one job."""
    with connections[using].cursor() as cursor:
        cursor.execute(query("job_probe"), {"job_id": str(job.id)})
        row = cursor.fetchone()
    return (bool(row[0]), row[1]) if row else (False, None)


def snapshot(job: Job, *, repair: bool = True) -> dict[str, Any]:
    """Status and progress of a job as a plain dict (what the progress endpoint serves).

    A running job that no runner holds is reported as ``worker_lost``; with
    ``repair`` the sweep then acts on that one job at once (resume, fail or
    cancel it) and the snapshot shows the outcome.
    """
    from pgbulk.models import Progress

    using = primary(job)
    worker_lost, queue_position = probe(job, using) if not job.is_terminal else (False, None)
    if worker_lost and repair:
        from pgbulk.sweep import sweep_job

        sweep_job(job.id, using=using)
        job.refresh_from_db(using=using)
        worker_lost, queue_position = probe(job, using) if not job.is_terminal else (False, None)
    live = Progress.objects.using(using).filter(job_id=job.id).first()
    in_flight, idle = (0, 0, 0), None
    if job.status == "running" and not worker_lost:
        with connections[using].cursor() as cursor:
            cursor.execute(query("in_flight"), {"job_id": str(job.id)})
            row = cursor.fetchone()
        if row:
            job.done, job.failed_count, in_flight, idle = row[0], row[1], row[2:5], row[5]
    return figures(job, live=live, in_flight=in_flight, worker_lost=worker_lost,
                   queue_position=queue_position, now=timezone.now(), idle=idle)


def figures(job: Job, *, live: Any, in_flight: tuple[int, int, int], worker_lost: bool,
            queue_position: int | None, now: Any, idle: float | None = None) -> dict[str, Any]:
    """The progress figures of a job from what was read: its row, its progress row
    (``live``: message; None after a crash), and ``in_flight`` = (done, failed, runners)
    of the live runners' open transactions, added to what the job row has committed;
    ``idle``: seconds since a live runner last made progress (no time left is guessed
    once that is STALLED_AFTER or more: a paused worker, a lock wait, a silent task)."""
    running = job.status == "running" and not worker_lost
    total = job.total
    done, failed = job.done, job.failed_count
    message = job.message
    if running:
        done, failed = done + in_flight[0], failed + in_flight[1]
        if live is not None and live.message:
            message = live.message
    skipped = job.skipped_count or 0  # an undo's records left alone: processed, not remaining
    if total:  # at most total in all, failures first (a task may advance() failed records)
        failed = min(failed, total)
        done = min(done, total - failed)
        skipped = min(skipped, total - done - failed)
    processed = done + failed + skipped
    percent = 100.0 if job.is_terminal and job.status == "succeeded" else (
        round(100.0 * processed / total, 1) if total else 0.0
    )
    rate = eta = None
    if job.started_at and processed and job.status != "queued":  # a re-queued job: no rate
        end = job.finished_at or now
        elapsed = max((end - job.started_at).total_seconds(), 1e-3)
        rate = round(processed / elapsed, 1)
        if not job.is_terminal and rate:
            eta = round((total - processed) / rate, 1)
    stalled = None
    if running and idle is not None and idle >= STALLED_AFTER:
        stalled, eta = round(idle), None
    return {
        "id": str(job.id),
        "status": job.status,
        "kind": job.kind,
        "model": job.model,
        "done": done,
        "failed_count": failed,
        "skipped_count": skipped,
        "total": total,
        "percent": min(percent, 100.0),
        "rate": rate,
        "eta_seconds": eta,
        # Running, but no progress for this many seconds (None: progressing, or not running).
        "stalled_seconds": stalled,
        "message": message,
        "errors": job.errors,
        "progress_known": (live is not None or bool(in_flight[2]) or job.is_terminal
                           or job.status == "queued"),
        # Running, but no runner holds the job's liveness lock: its worker died.
        "worker_lost": worker_lost,
        # Queued: how many tasks of its queue will be fetched before it (None otherwise).
        "queue_position": queue_position,
    }
