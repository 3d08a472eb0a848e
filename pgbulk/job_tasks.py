"""Job tasks: any function run as a pgbulk job, with locks, progress, cancel and the sweep.

    @pgbulk.job_task
    def recalculate(job, factor):
        for keys in job.chunks():          # the reserved records, chunk by chunk
            ...                            # change them
            job.advance(len(keys))         # progress
        return "Recalculated."

    AsyncManager().launch(recalculate, 1.1, lock=Book.objects.filter(...), user=request.user)

Bulk update and bulk delete are two such tasks (pgbulk/tasks.py).
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import Error, transaction
from django.db.models import Model

from pgbulk import locks, progress
from pgbulk.conf import pgbulk_settings
from pgbulk.exceptions import ErrorEntry, JobCancelled, JobFenced, JobShutdown
from pgbulk.runtime import Every
from pgbulk.signals import emit

if TYPE_CHECKING:
    from pgbulk.models import Job
    from pgbulk.runtime import JobRuntime


@dataclass(frozen=True)
class JobTask:
    """A registered job task: its body, and the Procrastinate task that runs it."""

    name: str
    func: Callable[..., Any]
    atomic: bool
    procrastinate_task: Any
    queue: str | None = None  # None: PGBULK["QUEUE"] when the job is launched

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)


REGISTRY: dict[str, JobTask] = {}

# Seconds between two progress writes, and between two cancel checks: often
# enough for a progress bar, rare enough to cost nothing on fast chunks.
TICK = 0.2


def run_in_worker(context, job_id: str, runner: int = 0) -> None:
    """The Procrastinate side of every job task: run the job, fail loudly if it failed."""
    from django.db import close_old_connections

    from pgbulk import execute
    from pgbulk.exceptions import JobFailed

    def abort_reason() -> str | None:
        reason = context.abort_reason()
        return getattr(reason, "value", reason) if reason else None

    close_old_connections()
    try:
        job = execute.run(job_id, should_abort=abort_reason, runner=runner)
    except JobShutdown:  # a chunked job cut short: the sweep resumes it, in another task
        raise JobFailed("Stopped by a worker shutdown before the job finished; the sweep "
                        "resumes it.", expected=True) from None
    finally:
        close_old_connections()
    if job is not None and job.status == "failed":
        # The queue records a failure too, never a success.
        raise JobFailed(job.message, expected=job.failed_count > 0)


class ExpectedFailures(logging.Filter):
    """Procrastinate logs every failed task with its traceback; a job that failed
    because records failed is a business outcome: one warning line, no traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if getattr(error, "expected", False):
            record.exc_info, record.exc_text = None, None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def checked_entries(errors: Any) -> list[ErrorEntry]:
    """``errors`` as fail_records() takes them: a list of JSON dicts, each with a "pk" and
    a "message" (and maybe a "record" and a "field")."""
    if not isinstance(errors, list | tuple):
        raise TypeError("fail_records() takes a list of {pk, message} dicts, not "
                        f"{type(errors).__name__}")
    entries: list[ErrorEntry] = []
    for entry in errors:
        if (not isinstance(entry, dict) or "message" not in entry
                or entry.get("pk") is None or isinstance(entry["pk"], bool)):
            raise ValueError(f"fail_records(): each entry needs a 'pk' and a 'message', not "
                             f"{entry!r}")
        pk = entry["pk"] if isinstance(entry["pk"], str | int) else str(entry["pk"])  # UUID
        entry = {**entry, "pk": pk, "message": str(entry["message"])}
        try:
            json.dumps(entry)
        except TypeError as error:
            raise ValueError(f"fail_records(): {entry!r} is not JSON ({error})") from None
        entries.append(entry)  # type: ignore[arg-type]
    return entries


def whole_size(value: Any, what: str) -> int:
    """A chunk size given by code: a whole number of at least 1 (else ValueError)."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{what} must be a whole number of at least 1, not {value!r}")
    return value


#: The keywords AsyncManager().launch() takes itself: a task's parameter of one of
#: these names can only be given by position (a keyword-only one is refused).
LAUNCH_KEYWORDS = frozenset({"lock", "user", "run", "atomic", "conflict_checking", "context",
                             "parallel", "chunk_size"})


def job_task(func: Callable | None = None, *, name: str | None = None, atomic: bool = True,
             queue: str | None = None):
    """Make ``func(job, *args, **kwargs)`` a pgbulk job task (a Procrastinate task underneath).

    ``job`` is a :class:`JobHandle`. ``atomic=True`` runs the body in one
    transaction (a dead worker's job is failed, its work rolled back);
    ``atomic=False`` commits per chunk of :meth:`JobHandle.chunks` (a dead
    worker's job is resumed: the body runs again over the records left).
    ``queue`` is the Procrastinate queue its jobs go to (PGBULK["QUEUE"] by default).
    """

    def register(body: Callable) -> JobTask:
        from procrastinate.contrib.django import app

        task_name = name or f"{body.__module__}.{body.__qualname__}"
        keyword_only = {name for name, p in inspect.signature(body).parameters.items()
                        if p.kind is inspect.Parameter.KEYWORD_ONLY}
        taken = LAUNCH_KEYWORDS & keyword_only
        if taken:
            raise TypeError(
                f"job task {task_name}: a keyword-only parameter may not be named "
                f"{min(taken)!r}: AsyncManager().launch() takes that keyword itself, so "
                "the task would never receive it (pass it by position instead)")

        def run(context, job_id: str, runner: int = 0) -> None:
            run_in_worker(context, job_id, runner)

        run.__name__ = run.__qualname__ = body.__name__
        run.__doc__ = body.__doc__
        task = app.task(name=task_name, queue=queue or pgbulk_settings.QUEUE,
                        pass_context=True)(run)
        spec = JobTask(task_name, body, atomic, task, queue)
        REGISTRY[task_name] = spec
        return spec

    return register(func) if func is not None else register


class JobHandle:
    """What a job task's body gets: progress, stop requests, its records, more locks."""

    def __init__(self, job: Job, runtime: JobRuntime,
                 should_abort: Callable[[], Any] | None = None) -> None:
        self.job = job
        self.runtime = runtime
        self.should_abort = should_abort
        self.atomic = bool(job.params.get("atomic", True))
        self.message = ""
        self.reserved = job.total  # target records reserved when this runner claimed the job
        self.done_before = job.done  # committed by earlier runs (a resumed body counts from 0)
        self.walked = 0  # target records handed to the body by chunk_rows()
        self.walk_complete = False
        self.new_errors: list[ErrorEntry] = []  # not yet written to the error table
        self.new_skips: list[ErrorEntry] = []  # records an undo left alone, not yet written
        # What this runner counted (done, failed, skipped) that is not on the job row yet:
        # its open chunk's, anything counted between chunks, or an atomic job's whole run.
        self.pending = [0, 0, 0]
        self._message_shown: str | None = None
        self._write_tick, self._check_tick = Every(TICK), Every(TICK)
        self._walks: list[Generator[Any, None, None]] = []  # chunk walks the body started

    @property
    def using(self) -> str:
        return self.runtime.using

    # --- progress ---------------------------------------------------------------------

    def set_total(self, total: int) -> None:
        """Say how many records the job will process (written at once, beside the
        job's data transaction, so nothing waits for it)."""
        self.job.total = int(total)
        self.runtime.update_job(using=self.runtime.side, total=self.job.total)

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        """Report progress (visible at once, even inside an atomic job's transaction).

        ``done`` counts the records this run of the body processed (a resumed job's body
        counts from 0 again: what earlier runs committed is added); with ``parallel``
        runners use advance().
        """
        if total is not None and total != self.job.total:
            self.set_total(total)
        self.count_done(max(self.job.done, self.done_before + int(done)), message)

    def advance(self, count: int, message: str = "") -> None:
        self.count_done(self.job.done + max(int(count), 0), message)

    def count_done(self, done: int, message: str) -> None:
        before, self.job.done = self.job.done, done
        self.pending[0] += self.job.done - before
        self.message = message or self.message
        self.publish(force=bool(message) or self.job.done >= self.job.total)

    def tick(self, in_flight: int) -> None:
        """Show ``in_flight`` more records processed in the open chunk (at most every TICK),
        and stop at this record if asked to (the open chunk rolls back)."""
        self.publish(in_flight)
        self.check_stop(now=False)

    def publish(self, in_flight: int = 0, *, force: bool = False) -> None:
        """Write what this runner has in flight beside its data transaction, and the
        job's message when it changed (at most every TICK unless forced)."""
        if not force and not self._write_tick.due():
            return
        self.runtime.write_in_flight(self.pending[0] + in_flight, self.pending[1])
        message = self.message or ""
        if force or message != self._message_shown:
            progress.write(self.job, self.job.done + in_flight, self.job.failed_count,
                           message, using=self.runtime.side)
            self._message_shown = message
        emit(self.job, "progress", using=self.runtime.side)

    def fail_records(self, errors: list[ErrorEntry]) -> None:
        """Record failed records (``{pk, record, field, message}``); the job will end failed.
        A malformed list raises TypeError or ValueError and records nothing."""
        errors = checked_entries(errors)
        cap = pgbulk_settings.MAX_RECORDED_ERRORS
        self.job.failed_count += len(errors)
        self.pending[1] += len(errors)
        self.job.errors = (self.job.errors + errors)[:cap]
        self.new_errors.extend(errors)

    def skip_records(self, entries: list[ErrorEntry]) -> None:
        """Record records an undo left alone (they changed since the job it undoes)."""
        self.job.skipped_count += len(entries)
        self.pending[2] += len(entries)
        self.new_skips.extend(entries)

    def flush_errors(self, using: str) -> None:
        """Write the errors and skips recorded since the last flush to the error table."""
        from pgbulk.models import JobError

        JobError.objects.using(using).bulk_create(
            JobError(job_id=self.job.pk, object_pk=e["pk"], record=e.get("record") or "",
                     field=e.get("field") or "", message=e["message"], skipped=skipped)
            for entries, skipped in ((self.new_errors, False), (self.new_skips, True))
            for e in entries)
        self.new_errors, self.new_skips = [], []

    # --- stop requests -------------------------------------------------------------------

    def should_stop(self, *, now: bool = True) -> bool:
        """Was the job cancelled (or aborted by Procrastinate)?

        ``now=False`` (between chunks) asks the database at most every TICK
        seconds; Procrastinate's abort flag is in memory and always read. A
        worker shutting down raises JobShutdown (the sweep resumes the job); a
        runner whose attempt is over raises JobFenced.
        """
        reason = self.should_abort() if self.should_abort else None
        if reason == "shutdown":
            raise JobShutdown()
        if reason:
            return True
        if not (now or self._check_tick.due()):
            return False
        self.runtime.maybe_sweep()
        return self.runtime.cancel_requested()

    def check_stop(self, *, now: bool = True) -> None:
        """Raise JobCancelled if somebody asked the job to stop (see should_stop)."""
        if self.should_stop(now=now):
            raise JobCancelled()

    # --- records ---------------------------------------------------------------------------

    def chunk_rows(self, size: int | None = None) -> Iterator[list[locks.Row]]:
        """See walk(); the walk is closed when the body ends (close_walks)."""
        walk = self.walk(size)
        self._walks.append(walk)
        return walk

    def close_walks(self) -> None:
        """End the chunk walks the body left open: the chunk it was in rolls back (with
        its counts) now, not whenever Python frees the walk (a body that kept it in a
        variable and raised kept the chunk's transaction open under the job's outcome)."""
        for walk in self._walks:
            walk.close()
        self._walks.clear()

    def walk(self, size: int | None = None) -> Generator[list[locks.Row], None, None]:
        """Chunks of ``(seq, object_pk)`` of the reserved target records not done yet
        (``size`` rows each, CHUNK_SIZE by default).

        Chunked jobs: each chunk's work commits in one transaction with the
        release of its records and the job's counts, under this runner's run
        token; a re-run resumes. A chunk that does not commit rolls back its
        counts and errors too. Several runners of one job claim chunks apart
        (a chunk one of them works on is skipped by the others; one it left
        behind when it died is taken by the next that comes by).
        """
        size = max(int(size or self.job.params.get("chunk_size") or pgbulk_settings.CHUNK_SIZE), 1)
        if self.atomic:
            for rows in locks.walk(self.job.id, self.using, size):
                self.check_stop(now=False)
                self.walked += locks.record_count(rows)
                yield rows
        else:
            yield from self.claimed_chunks(size)
        self.walk_complete = True

    def claimed_chunks(self, size: int) -> Iterator[list[locks.Row]]:
        after, progressed = 0, False
        while True:
            self.check_stop(now=False)
            first = locks.next_target_seq(self.job.id, after, using=self.using)
            if first is None:
                if after == 0:
                    return  # nothing is left
                if not progressed:  # what is left is in chunks other runners hold
                    time.sleep(TICK)
                after, progressed = 0, False  # look again from the start
                continue
            number = (first - 1) // size
            after = (number + 1) * size
            before = (self.job.done, self.job.failed_count, self.job.errors,
                      len(self.new_errors), list(self.pending), self.job.skipped_count,
                      len(self.new_skips))
            try:
                with transaction.atomic(using=self.using):
                    rows = locks.claim_chunk(self.job.id, number, size, using=self.using)
                    if not rows:
                        continue
                    progressed = True
                    self.walked += locks.record_count(rows)
                    yield rows
                    self.commit_chunk(rows)
            except BaseException:
                self.job.done, self.job.failed_count, self.job.errors = before[:3]
                del self.new_errors[before[3]:]
                self.pending = before[4]
                self.job.skipped_count = before[5]
                del self.new_skips[before[6]:]
                with contextlib.suppress(Error):  # never hide why the chunk stopped
                    self.publish(force=True)
                raise

    def commit_chunk(self, rows: list[locks.Row]) -> None:
        """In the chunk's transaction: add what this runner counted to the job (if the
        attempt is still ours: the job row first, as finish() does), then release the
        chunk's records, all of which must still be reserved."""
        self.commit_pending()
        released = locks.release_chunk(self.job.id, rows[0][0], rows[-1][0], using=self.using)
        if released != len(rows):
            raise JobFenced(f"job {self.job.id}: a chunk was done by another runner")

    def commit_pending(self) -> None:
        """In the caller's transaction: add the pending counts and errors to the job row
        and the error table (JobFenced if this runner's attempt is over)."""
        done, failed, skipped = self.pending
        self.runtime.commit_counts(done, failed, skipped, self.new_errors)
        self.flush_errors(self.using)
        self.pending = [0, 0, 0]

    def chunks(self, size: int | None = None) -> Iterator[list[Any]]:
        """Chunks of primary keys of the reserved records (of the job's model); none for
        a job launched without records (``lock=None``)."""
        from django.apps import apps

        if size is not None:
            whole_size(size, "chunks(size)")
        if not self.job.model:
            return
        to_python = apps.get_model(self.job.model)._meta.pk.to_python
        for rows in self.chunk_rows(size):
            yield locks.keys_of(rows, to_python)

    def register(self, model: type[Model], pks) -> int:
        """Reserve more records under this job (ConflictError if another job holds them)."""
        return self.runtime.register(model, pks)
