"""The running job's context: side connection, liveness lock, and the nested-work helpers."""

from __future__ import annotations

import contextvars
import json
import logging
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.db import OperationalError, connections, transaction
from django.db.models import Model

from pgbulk import locks
from pgbulk.conf import pgbulk_settings
from pgbulk.exceptions import ConflictError, ErrorEntry, JobFenced, PgbulkError
from pgbulk.sqlfiles import query

if TYPE_CHECKING:
    from pgbulk.models import Job

logger = logging.getLogger("pgbulk")

#: Longest a registration waits for another launch on the same model.
REGISTER_WAIT = "5s"
LOCK_NOT_AVAILABLE = "55P03"

_current: contextvars.ContextVar[JobRuntime | None] = contextvars.ContextVar(
    "pgbulk_job", default=None
)


def side_alias(using: str = "default") -> str:
    """A second connection to the same database, for writes that must not wait
    for the job's data transaction (progress, descendant reservations, liveness)."""
    alias = f"{using}__pgbulk_side"
    if alias not in connections.settings:
        main = connections[using].settings_dict
        connections.settings[alias] = {
            **main,
            "ATOMIC_REQUESTS": False,
            "AUTOCOMMIT": True,
            "CONN_MAX_AGE": 0,
            "TEST": {**main.get("TEST", {}), "MIRROR": using},
        }
    return alias


class Every:
    """``due()`` is True at most once per ``seconds`` (the first time always)."""

    def __init__(self, seconds: float, *, first: bool = True) -> None:
        self.seconds = seconds
        self.last = float("-inf") if first else time.monotonic()

    def due(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.seconds:
            return False
        self.last = now
        return True


class JobRuntime:
    """What a job's code can reach while it runs (see :func:`current_job`).

    A runner holds the job's liveness lock for as long as it lives and carries
    the run token (``attempt``) it claimed the job under: every write about the
    job checks that token, so a runner the sweep took the job from stops.
    """

    def __init__(self, job: Job, *, using: str = "default", separate: bool = True,
                 runner: int = 0) -> None:
        self.job = job
        self.using = using
        self.runner = runner  # slot of this runner among the job's ``parallel`` ones
        # Inside a caller's open transaction nothing is visible to a second
        # connection yet, so everything stays on the caller's connection.
        self.side = side_alias(using) if separate else using
        self.token: int | None = None
        self.outer = _current.get()  # the job this one runs inside, if any (a nested run)
        self.locked = False
        self._registered: set[tuple[str, str]] = set()
        self._sweep_clock = Every(pgbulk_settings.CLEANUP_SCHEDULE_INTERVAL, first=False)

    @property
    def separate(self) -> bool:
        return self.side != self.using

    def take_liveness_lock(self) -> bool:
        """Hold the job's advisory lock for as long as this runtime lives (inside a
        caller's transaction: until that transaction ends)."""
        name = "try_job_lock" if self.separate else "try_job_xact_lock"
        with connections[self.side].cursor() as cursor:
            cursor.execute(query(name), self.key)
            self.locked = bool(cursor.fetchone()[0])
        return self.locked

    @property
    def key(self) -> dict[str, Any]:
        return {"job_id": str(self.job.id), "runner": self.runner}

    def claim(self) -> bool:
        """Mark the job running under a run token; False if it is not ours to run."""
        with connections[self.using].cursor() as cursor:
            cursor.execute(query("claim_job"), self.key)
            row = cursor.fetchone()
        self.job.refresh_from_db()
        self.token = row[0] if row else None
        return row is not None

    def cancel_requested(self) -> bool:
        """Was the job asked to stop, or the job it runs inside (a nested run)? Raises
        JobFenced if this runner's attempt is over."""
        asked, current = self.runner_state()
        if not current:
            raise JobFenced(f"job {self.job.id}: attempt {self.token} is no longer current")
        return asked or (self.outer is not None and self.outer.should_end())

    def should_end(self) -> bool:
        """Should the runs nested in this one stop (then as cancelled)? Yes if this job,
        still running, was asked to stop, or another attempt took it over, or the same
        holds for the job it runs in."""
        with connections[self.side].cursor() as cursor:
            cursor.execute(query("outer_stop_wanted"), {"job_id": str(self.job.id),
                                                        "attempt": self.token})
            row = cursor.fetchone()
        return bool(row and row[0]) or (self.outer is not None and self.outer.should_end())

    def runner_state(self) -> tuple[bool, bool]:
        """(stop asked, this runner's attempt still current) of the job."""
        with connections[self.side].cursor() as cursor:
            cursor.execute(query("runner_state"), {"job_id": str(self.job.id),
                                                   "attempt": self.token})
            row = cursor.fetchone()
        return (bool(row[0]), bool(row[1])) if row else (False, False)

    def fenced(self, using: str | None = None):
        """The job's row, only while this runner's attempt is current (for ``update()``)."""
        from pgbulk.models import Job, Status

        return Job.objects.using(using or self.using).filter(
            pk=self.job.pk, status=Status.RUNNING, attempt=-1 if self.token is None else self.token)

    def update_job(self, using: str | None = None, **changes: Any) -> None:
        """Update the job's row under this runner's token; JobFenced if it is not current."""
        if not self.fenced(using).update(**changes):
            raise JobFenced(f"job {self.job.id}: attempt {self.token} is no longer current")

    def commit_counts(self, done: int, failed: int, skipped: int,
                      errors: list[ErrorEntry]) -> None:
        """In the chunk's transaction: add its counts and new errors to the job row and
        clear this runner's in-flight counts; JobFenced if the attempt is over."""
        with connections[self.using].cursor() as cursor:
            cursor.execute(query("commit_chunk"), {
                **self.key, "done": done, "failed": failed, "skipped": skipped,
                "errors": json.dumps(errors),
                "cap": pgbulk_settings.MAX_RECORDED_ERRORS, "attempt": self.token})
            if cursor.fetchone() is None:
                raise JobFenced(f"job {self.job.id}: attempt {self.token} is no longer current")

    def write_in_flight(self, done: int, failed: int) -> None:
        """What this runner has processed in its open transaction (beside it)."""
        with connections[self.side].cursor() as cursor:
            cursor.execute(query("write_in_flight"), {**self.key, "done": done, "failed": failed})

    def maybe_sweep(self, *, now: bool = False) -> None:
        """Run the sweep now and then while this job runs, so a dead worker's job is
        resumed even when every worker is busy with long jobs; ``now``: at once (a
        resumed job: what died with its last run, such as a job it ran inline, still
        holds records until the sweep ends it)."""
        if not self.separate or not (now or self._sweep_clock.due()):
            return
        from pgbulk.sweep import sweep

        try:
            sweep(using=self.side, housekeeping=not now)
        except Exception:  # the safety net must never break the job it runs beside
            logger.exception("pgbulk: in-band sweep failed (job %s runs on)", self.job.id)

    def register(self, model: type[Model], pks: Iterable[Any]) -> int:
        """Reserve ``pks`` of ``model`` under this job (see register_descendant_conflicts)."""
        label = locks.lock_label(model)
        wanted = [pk for pk in pks if (label, str(pk)) not in self._registered]
        if not wanted:
            return 0
        try:
            with transaction.atomic(using=self.side):
                self.guard_registration()
                count = locks.reserve(
                    self.job.id,
                    model._base_manager.using(self.side).filter(pk__in=wanted),
                    using=self.side,
                    is_target=False,
                    exclusive=self.job.params.get("conflict_checking", True),
                )
        except ConflictError as conflict:  # say what it was: not the job's own selection
            raise ConflictError(conflict.conflicts,
                                needed=str(model._meta.verbose_name_plural)) from None
        except OperationalError as error:
            if getattr(error.__cause__, "sqlstate", None) != LOCK_NOT_AVAILABLE:
                raise
            raise PgbulkError(
                f"Could not reserve {model._meta.verbose_name_plural} under this job: a launch "
                f"on them did not finish within {REGISTER_WAIT}.") from None
        self._registered.update((label, str(pk)) for pk in wanted)
        return count

    def guard_registration(self) -> None:
        """In the side transaction: wait at most REGISTER_WAIT for other launches (a
        launch this job's own transaction started would never end), and reserve only
        while this runner's attempt is current."""
        with connections[self.side].cursor() as cursor:
            if self.separate:  # never change the lock timeout of a caller's transaction
                cursor.execute(query("register_guard"), {"wait": REGISTER_WAIT})
            cursor.execute(query("runner_current"), {"job_id": str(self.job.id),
                                                     "attempt": self.token})
            if cursor.fetchone() is None:
                raise JobFenced(f"job {self.job.id}: attempt {self.token} is no longer current")

    def close(self) -> None:
        """Give up the liveness lock: end the side session, or, in a run nested in
        another job's run on the same side connection, release only this lock."""
        if not self.separate:
            return
        if self.outer is not None and self.outer.side == self.side:
            if self.locked:
                with connections[self.side].cursor() as cursor:
                    cursor.execute(query("unlock_job"), self.key)
            return
        connections[self.side].close()  # ends the session: releases the liveness lock


@contextmanager
def activate(runtime: JobRuntime) -> Iterator[JobRuntime]:
    token = _current.set(runtime)
    try:
        yield runtime
    finally:
        _current.reset(token)
        runtime.close()


def current_job() -> Job | None:
    """The pgbulk job running in this context, or None."""
    runtime = _current.get()
    return runtime.job if runtime else None


def skip_nested_async() -> bool:
    """True inside a running job: do nested work inline instead of launching a job."""
    return _current.get() is not None


def register_descendant_conflicts(model: type[Model], pks: Iterable[Any]) -> int:
    """Reserve child records under the running job, so no other job changes them.

    Raises ConflictError if another job holds any of them. Outside a job it
    does nothing and returns 0. Returns how many records were newly reserved.
    """
    runtime = _current.get()
    if runtime is None:
        return 0
    return runtime.register(model, pks)
