"""Running a job: claim it, call its job task's body, finish it honestly.

atomic=True: the body runs in one transaction, and the job finishes in it;
progress goes through the side connection so pollers see it meanwhile.
atomic=False: each chunk of JobHandle.chunk_rows() commits with its progress
and the release of its reservations, so a retried job resumes where it stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any

from django.db import InterfaceError, OperationalError, connections, transaction
from django.utils import timezone

from pgbulk import locks, progress
from pgbulk.conf import pgbulk_settings
from pgbulk.exceptions import JobCancelled
from pgbulk.job_tasks import REGISTRY, JobHandle
from pgbulk.models import Job, Status
from pgbulk.runtime import JobRuntime, activate
from pgbulk.signals import emit
from pgbulk.sqlfiles import query
from pgbulk.strategies import RecordFailed

logger = logging.getLogger("pgbulk")

ShouldAbort = Callable[[], bool] | None


def run(job_id: Any, *, should_abort: ShouldAbort = None, using: str = "default") -> Job | None:
    """Run a queued (or interrupted) job to a terminal state; None if it is not ours to run."""
    job = Job.objects.using(using).filter(pk=job_id).first()
    if job is None:
        logger.warning("pgbulk: job %s does not exist (deleted?), nothing to run", job_id)
        return None
    runtime = JobRuntime(job, using=using, separate=not connections[using].in_atomic_block)
    with activate(runtime):
        if not runtime.take_liveness_lock():
            logger.warning("pgbulk: job %s is being run by a live worker already", job_id)
            return None
        if not claim(job, using):
            return job
        handle = JobHandle(job, runtime, should_abort)
        try:
            run_body(handle)
        except JobCancelled:
            message = ("Cancelled; all its changes were rolled back." if handle.atomic
                       else f"Cancelled after {job.done} of {job.total} records.")
            finish(job, Status.CANCELLED, message, using=using)
        except (OperationalError, InterfaceError):
            # The database went away: nothing can be recorded now. The liveness
            # lock went with the session, so the sweep resumes or fails the job.
            logger.exception("pgbulk: job %s lost its database connection", job.id)
            raise
        except RecordFailed as error:
            logger.warning("pgbulk: job %s failed: %s", job.id, error)
            finish(job, Status.FAILED, failure_message(job, error), using=using)
        except Exception as error:
            logger.exception("pgbulk: job %s failed", job.id)
            finish(job, Status.FAILED, failure_message(job, error), using=using)
    return job


def run_body(handle: JobHandle) -> None:
    """Call the job task's body; atomic jobs do it and finish in one transaction."""
    import pgbulk.tasks  # noqa: F401  (registers the bulk tasks)

    job = handle.job
    spec = REGISTRY.get(job.task_name)
    if spec is None:
        raise LookupError(f"no job task named {job.task_name!r} is registered here "
                          "(is its module imported by the worker?)")
    args, kwargs = job.params.get("args", []), job.params.get("kwargs", {})
    if not handle.atomic:
        result = spec.func(handle, *args, **kwargs)
        handle.check_stop()
        conclude(job, result, handle.using)
        return
    with transaction.atomic(using=handle.using):
        result = spec.func(handle, *args, **kwargs)
        handle.check_stop()
        if job.failed_count:
            raise RecordFailed(job.errors)
        conclude(job, result, handle.using)


def conclude(job: Job, result: Any, using: str) -> None:
    """Finish a job whose body returned: failed if any record failed, else succeeded."""
    if job.failed_count:
        finish(job, Status.FAILED,
               f"{job.failed_count} of {job.total} records failed; {job.done} changed.",
               using=using)
    else:
        message = result if isinstance(result, str) else f"Done: {job.done} of {job.total}."
        finish(job, Status.SUCCEEDED, message, using=using)


def claim(job: Job, using: str) -> bool:
    with connections[using].cursor() as cursor:
        cursor.execute(query("claim_job"), [str(job.id)])
        claimed = cursor.fetchone() is not None
    job.refresh_from_db()
    return claimed


def chunks(job: Job, using: str, size: int | None = None) -> Iterator[list[tuple[int, str]]]:
    """Successive chunks of ``(seq, object_pk)`` of the job's remaining target records
    (``size`` rows each, CHUNK_SIZE by default)."""
    last = 0
    size = max(int(size or pgbulk_settings.CHUNK_SIZE), 1)
    while True:
        with connections[using].cursor() as cursor:
            cursor.execute(query("next_chunk"), [str(job.id), last, size])
            rows = cursor.fetchall()
        if not rows:
            return
        yield rows
        last = rows[-1][0]


EVENT_OF: dict[str, str] = {Status.SUCCEEDED: "complete", Status.FAILED: "fail", Status.CANCELLED: "cancel"}


def finish(job: Job, status: str, message: str, *, using: str) -> None:
    """Set the terminal status and release every reservation, in one transaction."""
    with transaction.atomic(using=using):
        if status == Status.CANCELLED and job.params.get("atomic", True):
            job.done = 0  # everything rolled back
        updated = Job.objects.using(using).filter(
            pk=job.pk, status__in=[Status.QUEUED, Status.RUNNING]
        ).update(
            status=status, message=message, finished_at=timezone.now(),
            done=job.done, failed_count=job.failed_count, errors=job.errors,
        )
        locks.release_job(job.id, using=using)
        progress.write_final(job, message, using=using)
        if updated:
            job.refresh_from_db()
            emit(job, EVENT_OF[status], using=using)


def failure_message(job: Job, error: BaseException) -> str:
    if isinstance(error, RecordFailed):
        return f"{job.model} {error}. Nothing was changed." if job.params.get(
            "atomic", True) else f"{job.model} {error}"
    return f"{type(error).__name__}: {error}"


def cancel(job: Job, by: Any = None) -> bool:
    """Cancel a queued job now, or ask a running one to stop at its next chunk."""
    using = job._state.db or "default"
    who = by if getattr(by, "is_authenticated", False) else None
    asked = {"cancel_requested": True, "cancelled_by": who, "cancelled_at": timezone.now()}
    with transaction.atomic(using=using):
        stopped = Job.objects.using(using).filter(pk=job.pk, status=Status.QUEUED).update(
            status=Status.CANCELLED, finished_at=timezone.now(),
            message="Cancelled before it started.", **asked,
        )
        if stopped:
            locks.release_job(job.id, using=using)
            _cancel_queued_task(job)
            job.refresh_from_db()
            emit(job, "cancel", using=using)
        else:
            stopped = Job.objects.using(using).filter(
                pk=job.pk, status=Status.RUNNING, cancel_requested=False).update(**asked)
            stopped = stopped or Job.objects.using(using).filter(
                pk=job.pk, status=Status.RUNNING).exists()
    job.refresh_from_db()
    return bool(stopped)


def _cancel_queued_task(job: Job) -> None:
    if job.procrastinate_job_id is None:
        return
    from procrastinate.contrib.django import app

    app.job_manager.cancel_job_by_id(job.procrastinate_job_id)
