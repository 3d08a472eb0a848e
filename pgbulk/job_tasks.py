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

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from django.db import transaction
from django.db.models import F, Model

from pgbulk import locks, progress
from pgbulk.conf import pgbulk_settings
from pgbulk.exceptions import JobCancelled
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

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.func(*args, **kwargs)


REGISTRY: dict[str, JobTask] = {}

# Seconds between two progress writes, and between two cancel checks: often
# enough for a progress bar, rare enough to cost nothing on fast chunks.
TICK = 0.2


class Every:
    """``due()`` is True at most once per ``seconds`` (the first time always)."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.last = float("-inf")

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


def run_in_worker(context, job_id: str) -> None:
    """The Procrastinate side of every job task: run the job, fail loudly if it failed."""
    from django.db import close_old_connections

    from pgbulk import execute
    from pgbulk.exceptions import JobFailed

    close_old_connections()
    try:
        job = execute.run(job_id, should_abort=context.should_abort)
    finally:
        close_old_connections()
    if job is not None and job.status == "failed":
        raise JobFailed(job.message)  # the queue records a failure too, never a success


def job_task(func: Callable | None = None, *, name: str | None = None, atomic: bool = True,
             queue: str = "pgbulk"):
    """Make ``func(job, *args, **kwargs)`` a pgbulk job task (a Procrastinate task underneath).

    ``job`` is a :class:`JobHandle`. ``atomic=True`` runs the body in one
    transaction (a dead worker's job is failed, its work rolled back);
    ``atomic=False`` commits per chunk of :meth:`JobHandle.chunks` (a dead
    worker's job is resumed: the body runs again over the records left).
    """

    def register(body: Callable) -> JobTask:
        from procrastinate.contrib.django import app

        task_name = name or f"{body.__module__}.{body.__qualname__}"

        def run(context, job_id: str) -> None:
            run_in_worker(context, job_id)

        run.__name__ = run.__qualname__ = body.__name__
        run.__doc__ = body.__doc__
        spec = JobTask(task_name, body, atomic,
                       app.task(name=task_name, queue=queue, pass_context=True)(run))
        REGISTRY[task_name] = spec
        return spec

    return register(func) if func is not None else register


class JobHandle:
    """What a job task's body gets: progress, stop requests, its records, more locks."""

    def __init__(self, job: Job, runtime: JobRuntime, should_abort: Callable[[], bool] | None):
        self.job = job
        self.runtime = runtime
        self.should_abort = should_abort
        self.atomic = bool(job.params.get("atomic", True))
        self.message = ""
        self._write_tick, self._check_tick = Every(TICK), Every(TICK)

    @property
    def using(self) -> str:
        return self.runtime.using

    # --- progress ---------------------------------------------------------------------

    def set_total(self, total: int) -> None:
        self.job.total = int(total)
        type(self.job).objects.using(self.using).filter(pk=self.job.pk).update(
            total=self.job.total)

    def progress(self, done: int, total: int | None = None, message: str = "") -> None:
        """Report progress (visible at once, even inside an atomic job's transaction)."""
        if total is not None and total != self.job.total:
            self.set_total(total)
        self.job.done = max(self.job.done, int(done))
        self.message = message or self.message
        if not self._write_tick.due() and not message and self.job.done < self.job.total:
            return  # written at most every TICK seconds (the final state always is)
        # Atomic: through the side connection, visible while the data transaction
        # is open. Chunked: in the chunk's transaction, committed with its work.
        using = self.runtime.side if self.atomic else self.using
        progress.write(self.job, self.job.done, self.job.failed_count,
                       self.message or f"{self.job.done} of {self.job.total}", using=using)
        emit(self.job, "progress", using=using)

    def advance(self, count: int, message: str = "") -> None:
        self.progress(self.job.done + count, message=message)

    def fail_records(self, errors: list[dict[str, Any]]) -> None:
        """Record failed records (``{pk, field, message}``); the job will end failed."""
        cap = int(pgbulk_settings.MAX_RECORDED_ERRORS)
        self.job.failed_count += len(errors)
        self.job.errors = (self.job.errors + errors)[:cap]

    # --- stop requests -------------------------------------------------------------------

    def should_stop(self, *, now: bool = True) -> bool:
        """Was the job cancelled (or aborted by Procrastinate)?

        ``now=False`` (between chunks) asks the database at most every TICK
        seconds; Procrastinate's abort flag is in memory and always read.
        """
        if self.should_abort and self.should_abort():
            return True
        return (now or self._check_tick.due()) and self.runtime.cancel_requested()

    def check_stop(self, *, now: bool = True) -> None:
        """Raise JobCancelled if somebody asked the job to stop (see should_stop)."""
        if self.should_stop(now=now):
            raise JobCancelled()

    # --- records ---------------------------------------------------------------------------

    def chunk_rows(self, size: int | None = None) -> Iterator[list[tuple[int, str]]]:
        """Chunks of ``(seq, object_pk)`` of the reserved target records not done yet
        (``size`` rows each, CHUNK_SIZE by default).

        Chunked jobs: each chunk's work commits in one transaction with the
        release of its records and the job's progress, so a re-run resumes.
        """
        from pgbulk.execute import chunks

        for rows in chunks(self.job, self.using, size):
            self.check_stop(now=False)
            if self.atomic:
                yield rows
                continue
            with transaction.atomic(using=self.using):
                failed_before, done_before = self.job.failed_count, self.job.done
                yield rows
                locks.release_chunk(self.job.id, rows[0][0], rows[-1][0], using=self.using)
                type(self.job).objects.using(self.using).filter(pk=self.job.pk).update(
                    done=F("done") + (self.job.done - done_before),
                    failed_count=F("failed_count") + (self.job.failed_count - failed_before),
                    errors=self.job.errors,
                )

    def chunks(self, size: int | None = None) -> Iterator[list[Any]]:
        """Chunks of primary keys of the reserved records (of the job's model)."""
        from django.apps import apps

        to_python = apps.get_model(self.job.model)._meta.pk.to_python
        for rows in self.chunk_rows(size):
            yield [to_python(object_pk) for _seq, object_pk in rows]

    def register(self, model: type[Model], pks) -> int:
        """Reserve more records under this job (ConflictError if another job holds them)."""
        return self.runtime.register(model, pks)
