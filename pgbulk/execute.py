"""Running a job: claim it under a run token, call its job task's body, finish it honestly.

atomic=True: the body runs in one transaction, and the job finishes in it;
progress goes through the side connection so pollers see it meanwhile.
atomic=False: each chunk of JobHandle.chunk_rows() commits with its counts and
the release of its reservations, so a retried job resumes where it stopped.
Every commit about the job checks the runner's token (fencing): a runner the
sweep took the job from rolls back and records nothing.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from typing import Any

from django.db import DatabaseError, InterfaceError, OperationalError, connections, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.text import capfirst

from pgbulk import describe, locks, progress
from pgbulk.cancel import cancel  # noqa: F401  (moved to pgbulk.cancel; the old name stays)
from pgbulk.conf import pgbulk_settings
from pgbulk.exceptions import JobCancelled, JobFenced, JobShutdown, RecordFailed
from pgbulk.job_tasks import REGISTRY, JobHandle
from pgbulk.models import Change, Job, Status
from pgbulk.runtime import JobRuntime, activate
from pgbulk.signals import emit
from pgbulk.strategies import LOCK_ATTEMPTS, deadlock

logger = logging.getLogger("pgbulk")

ShouldAbort = Callable[[], Any] | None
# (terminal status, message), or None: nothing to record. A message that counts a chunked
# job's records is a function, called once the job's counts are final (see finish).
Outcome = tuple[str, "str | Callable[[], str]"] | None

EVENT_OF: dict[str, str] = {
    Status.SUCCEEDED: "complete", Status.FAILED: "fail", Status.CANCELLED: "cancel"}

# SQLSTATEs of a connection that is gone: connection exceptions and server shutdowns.
LOST_CONNECTION_STATES = ("08", "57P01", "57P02", "57P03")


def run(job_id: Any, *, should_abort: ShouldAbort = None, using: str = "default",
        runner: int = 0) -> Job | None:
    """Run a queued (or interrupted) job to a terminal state; None if it is not ours to run.

    ``runner`` is this runner's slot when the job runs on several workers at once.
    """
    job = Job.objects.using(using).filter(pk=job_id).first()
    if job is None:
        logger.warning("pgbulk: job %s does not exist (deleted?), nothing to run", job_id)
        return None
    runtime = JobRuntime(job, using=using, separate=not connections[using].in_atomic_block,
                         runner=runner)
    with activate(runtime):
        if not runtime.take_liveness_lock():
            logger.warning("pgbulk: job %s is being run by a live worker already", job_id)
            return None
        if not runtime.claim():
            return job
        if job.attempt > 0:  # a resume: end what died with the last run first
            runtime.maybe_sweep(now=True)
        handle = JobHandle(job, runtime, should_abort)
        try:
            handle.publish(force=True)  # progress known from the start; nothing in flight
            outcome = run_to_outcome(handle)
            if outcome is not None:
                finish(handle, *outcome)
        except JobFenced:
            job.refresh_from_db()
            if job.is_terminal and job.attempt == runtime.token:
                logger.info("pgbulk: job %s was finished by another of its runners", job.id)
            else:
                logger.warning("pgbulk: job %s was taken over (its attempt %s is over); this "
                               "runner rolled back and recorded nothing", job.id, runtime.token)
    return job


def run_to_outcome(handle: JobHandle) -> Outcome:
    """Run the body; say how the job ended (None: already finished, or left to the sweep)."""
    job = handle.job
    try:
        run_body(handle)
        return None
    except JobFenced:
        raise  # the job is not ours any more: record nothing
    except JobShutdown:
        if not handle.atomic:
            logger.warning("pgbulk: job %s stopped by a worker shutdown; the sweep will "
                           "resume it", job.id)
            mark_shutdown(handle)
            raise  # its task is not a success: run_in_worker says so
        logger.warning("pgbulk: job %s stopped by a worker shutdown", job.id)
        return Status.FAILED, ("Stopped by a worker shutdown before it finished; its "
                               "changes were rolled back: nothing was changed.")
    except (OperationalError, InterfaceError) as error:
        if connection_lost(error, handle.using):
            # Nothing can be recorded now. The liveness lock went with the
            # session, so the sweep resumes or fails the job.
            logger.error("pgbulk: job %s lost its database connection: %s", job.id, error)
            raise
        logger.exception("pgbulk: job %s failed", job.id)
        return Status.FAILED, lambda error=error: failure_message(handle, error)
    except JobCancelled:
        reason = stop_reason(job)
        if handle.atomic:
            return Status.CANCELLED, (f"{reason}Cancelled; all its changes were rolled back: "
                                      "nothing was changed.")
        return Status.CANCELLED, lambda: reason + cancelled_message(job)
    except RecordFailed as error:
        logger.warning("pgbulk: job %s failed: %s", job.id, error)
        return Status.FAILED, lambda error=error: failure_message(handle, error)
    except Exception as error:
        logger.exception("pgbulk: job %s failed", job.id)
        return Status.FAILED, lambda error=error: failure_message(handle, error)


def mark_shutdown(handle: JobHandle) -> None:
    """Tell the sweep this attempt was stopped by a worker shutdown, not lost, if it made
    progress: a resume then does not count towards MAX_RESUMES. One that made none (a
    chunk longer than the shutdown's grace period) counts, or it would resume forever.
    Best effort: nothing may hide the shutdown itself."""
    if handle.job.done <= handle.done_before:
        return
    with contextlib.suppress(DatabaseError):
        handle.runtime.fenced(handle.runtime.side).update(shutdown_attempt=F("attempt"))


def cancelled_message(job: Job) -> str:
    """A cancelled chunked job's message, from its final counts."""
    processed = job.done + job.failed_count + job.skipped_count
    if job.total and processed >= job.total:  # the cancel came after the last chunk
        return (f"Cancelled after every record was processed: {job.done:,} of "
                f"{job.total:,} records were {changed_word(job)}.")
    return f"Cancelled after {job.done:,} of {job.total:,} records; the rest were not changed."


def read_committed(handle: JobHandle) -> None:
    """A chunked job's counts: what its chunks committed (its other runners' too), and
    what this runner counted since (committed when it finishes)."""
    if handle.atomic:
        return
    job = handle.job
    job.refresh_from_db(fields=["done", "failed_count", "skipped_count", "errors", "total"])
    job.done += handle.pending[0]
    job.failed_count += handle.pending[1]
    job.skipped_count += handle.pending[2]
    job.errors = (job.errors + handle.new_errors)[:pgbulk_settings.MAX_RECORDED_ERRORS]


def stop_reason(job: Job) -> str:
    """Why a job was stopped, when it was not a person: the time limit (MAX_TASK_DURATION)."""
    current = Job.objects.using(job._state.db).filter(pk=job.pk).values(
        "message", "cancelled_by_id").first()
    if current and current["cancelled_by_id"] is None and current["message"].startswith(
            "Running longer than"):
        return current["message"].replace("asked to stop.", "stopped. ")
    return ""


def run_body(handle: JobHandle) -> None:
    """Call the job task's body; atomic jobs do it and finish in one transaction."""
    job = handle.job
    spec = REGISTRY.get(job.task_name)
    if spec is None:
        raise LookupError(f"no job task named {job.task_name!r} is registered here "
                          "(is its module imported by the worker?)")
    args, kwargs = job.params.get("args", []), job.params.get("kwargs", {})
    if not handle.atomic:
        result = call_body(spec.func, handle, args, kwargs)
        handle.check_stop()
        conclude(handle, result)
        return
    with transaction.atomic(using=handle.using):
        result = call_body(spec.func, handle, args, kwargs)
        handle.check_stop()
        if job.failed_count:
            raise RecordFailed(job.errors)
        if handle.walk_complete and handle.walked < handle.reserved:
            raise RuntimeError(
                f"only {handle.walked} of the {handle.reserved} reserved records were "
                "processed (its reservations vanished).")
        conclude(handle, result)


def call_body(func: Callable[..., Any], handle: JobHandle, args: list, kwargs: dict) -> Any:
    """The body's result; however it ends, the chunk walks it left open end with it."""
    try:
        return func(handle, *args, **kwargs)
    finally:
        handle.close_walks()


def conclude(handle: JobHandle, result: Any) -> None:
    """Finish a job whose body returned: failed if any record failed, else succeeded."""
    job = handle.job
    read_committed(handle)
    processed = job.done + job.failed_count + job.skipped_count
    skipped = skipped_phrase(job) + gone(handle)
    if job.kind in ("update", "delete") and not handle.atomic and processed != job.total:
        finish(handle, Status.FAILED,
               f"Only {processed:,} of the {job.total:,} reserved records were processed "
               f"(their reservations vanished); {job.done:,} {done_word(job)}.")
    elif job.failed_count:
        done = min(job.done, max(job.total - job.failed_count, 0)) if job.total else job.done
        own = f" {result}" if isinstance(result, str) and result else ""  # a task's message
        finish(handle, Status.FAILED, f"{job.failed_count:,} of {job.total:,} records "
               f"failed; {done:,} {done_word(job)}.{unchanged(handle)}{skipped}{own}")
    elif job.undo_of_id:
        finish(handle, Status.SUCCEEDED,
               f"Restored {job.done:,} of {job.total:,} records.{skipped}")
    else:
        verb = {"update": "Updated", "delete": "Deleted"}.get(job.kind, "Done:")
        counted = (f"{verb} {job.done:,} of {job.total:,} records." if job.total
                   else f"Done: {job.done:,} records." if job.done else "Done.")
        message = result if isinstance(result, str) else counted + unchanged(handle) + skipped
        finish(handle, Status.SUCCEEDED, message)


def skipped_phrase(job: Job) -> str:
    """" 2 skipped: they changed since the undone job." for an undo, " 2 were already
    gone." for a delete; "" when none was left alone."""
    count = job.skipped_count
    if not count:
        return ""
    if job.kind == "delete":
        return f" {count:,} {'was' if count == 1 else 'were'} already gone."
    return f" {count:,} skipped: {'it' if count == 1 else 'they'} changed since the undone job."


def changed_word(job: Job) -> str:
    """What a job did to its records, for "N of M records were ...": changed, deleted,
    processed (a task)."""
    return {"update": "changed", "delete": "deleted"}.get(job.kind, "processed")


def done_word(job: Job) -> str:
    if job.undo_of_id:
        return "restored"
    return {"update": "updated", "delete": "deleted"}.get(job.kind, "done")


def unchanged(handle: JobHandle) -> str:
    """" 8 changed; 12 already held the new values." for an update job whose change log
    is kept (the records it wrote that it did not log: their logged values did not
    change), so the count agrees with its Changes. Not said when fields are left out of
    the log: a record may have changed in those."""
    job = handle.job
    if job.kind != "update" or job.change_log != "kept" or job.undo_of_id or not job.done:
        return ""
    if (job.params.get("change_log") or {}).get("excluded"):
        return ""
    logged = Change.objects.using(handle.using).filter(job_id=job.id).count()
    count = job.done - logged
    if count <= 0:
        return ""
    if count == job.done:
        return (" It already held the new values: nothing changed." if count == 1 else
                f" None changed: all {count:,} already held the new values.")
    return f" {logged:,} changed; {count:,} already held the new values."


def gone(handle: JobHandle) -> str:
    """" 2 records the undone job changed no longer exist." for an undo: the records the undone job
    logged that were deleted before the undo was launched (they are not in its total)."""
    job = handle.job
    if not job.undo_of_id:
        return ""
    count = Change.objects.using(handle.using).filter(job_id=job.undo_of_id).count() - job.total
    if count <= 0:
        return ""
    return (" 1 record the undone job changed no longer exists." if count == 1
            else f" {count:,} records the undone job changed no longer exist.")


def finish(handle: JobHandle, status: str, message: str | Callable[[], str]) -> None:
    """Set the terminal status and release every reservation, in one transaction, under
    the runner's token (JobFenced, and nothing written, if the job is no longer ours).

    A chunked job's row is locked first (by adding what this runner counted since its
    last chunk), so its other runners' chunks have committed before its counts are read
    or wait and then find it finished (they roll back): a ``message`` function says
    what the row holds."""
    job, using = handle.job, handle.using
    if handle.atomic and status != Status.SUCCEEDED:
        job.done = job.skipped_count = 0  # everything rolled back
        handle.new_skips = []
    counts = ({"done": job.done, "failed_count": job.failed_count, "errors": job.errors,
               "skipped_count": job.skipped_count} if handle.atomic else {})  # a chunked job's counts are on its row (and below)
    with transaction.atomic(using=using):
        if not handle.atomic:
            handle.commit_pending()  # what it counted since its last chunk; locks the row
            read_committed(handle)
        text = message() if callable(message) else message
        handle.runtime.update_job(
            status=status, message=text, finished_at=timezone.now(), **counts)
        handle.flush_errors(using)
        locks.release_job(job.id, using=using)
        job.refresh_from_db()
        progress.write_final(job, text, using=using)
        emit(job, EVENT_OF[status], using=using)


def record_failure(job: Job, error: RecordFailed) -> str:
    """ "Book 3 (key 3) could not be changed: in_print: Archived books cannot be in print." """
    first = error.entries[0]
    model = describe.job_model(job)
    name = first.get("record") or (capfirst(str(model._meta.verbose_name)) if model
                                   else "Record")
    verb = changed_word(job)
    where = f"{first['field']}: " if first.get("field") else ""
    return f"{name} (key {first['pk']}) could not be {verb}: {where}{sentence(first['message'])}"


def sentence(text: object) -> str:
    """``text`` as a sentence: stripped, ending with a full stop unless it has one."""
    text = str(text).strip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


def connection_lost(error: BaseException, using: str) -> bool:
    """Was ``error`` the loss of the database connection (not a timeout, deadlock...)?"""
    if isinstance(error, InterfaceError):
        return True
    state = getattr(error.__cause__, "sqlstate", None)
    if state is None or state.startswith(LOST_CONNECTION_STATES):
        return True
    raw = connections[using].connection
    return raw is None or bool(getattr(raw, "closed", False) or getattr(raw, "broken", False))


def failure_message(handle: JobHandle, error: BaseException) -> str:
    job = handle.job
    read_committed(handle)
    if isinstance(error, RecordFailed):
        suffix = " Nothing was changed." if handle.atomic else ""
        return f"{record_failure(job, error)}{suffix}"
    verb = changed_word(job)
    suffix = " Nothing was changed." if handle.atomic else (
        f" {job.done:,} of {job.total:,} records were {verb} before it stopped.")
    text = str(error).strip()
    if deadlock(error):  # PostgreSQL's text names its processes, no record
        text = (f"deadlock detected: another transaction kept locking the same records in "
                f"the other order ({LOCK_ATTEMPTS} tries)")
    return f"{type(error).__name__}{': ' + sentence(text) if text else '.'}{suffix}"
