"""The running job's context: side connection, liveness lock, and the nested-work helpers."""

from __future__ import annotations

import contextvars
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from django.db import connections, transaction
from django.db.models import Model

from pgbulk import locks
from pgbulk.sqlfiles import query

if TYPE_CHECKING:
    from pgbulk.models import Job

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


class JobRuntime:
    """What a job's code can reach while it runs (see :func:`current_job`)."""

    def __init__(self, job: Job, *, using: str = "default", separate: bool = True) -> None:
        self.job = job
        self.using = using
        # Inside a caller's open transaction nothing is visible to a second
        # connection yet, so everything stays on the caller's connection.
        self.side = side_alias(using) if separate else using
        self._registered: set[tuple[str, str]] = set()

    def take_liveness_lock(self) -> bool:
        """Hold the job's advisory lock for as long as this runtime lives."""
        if self.side == self.using:
            return True
        with connections[self.side].cursor() as cursor:
            cursor.execute(query("try_job_lock"), [str(self.job.id)])
            return bool(cursor.fetchone()[0])

    def cancel_requested(self) -> bool:
        with connections[self.side].cursor() as cursor:
            cursor.execute(query("cancel_requested"), [str(self.job.id)])
            row = cursor.fetchone()
        return bool(row and row[0])

    def register(self, model: type[Model], pks: Iterable[Any]) -> int:
        """Reserve ``pks`` of ``model`` under this job (see register_descendant_conflicts)."""
        label = locks.model_label(model)
        wanted = [pk for pk in pks if (label, str(pk)) not in self._registered]
        if not wanted:
            return 0
        with transaction.atomic(using=self.side):
            count = locks.reserve(
                self.job.id,
                model._base_manager.using(self.side).filter(pk__in=wanted),
                using=self.side,
                is_target=False,
                exclusive=self.job.params.get("conflict_checking", True),
            )
        self._registered.update((label, str(pk)) for pk in wanted)
        return count

    def close(self) -> None:
        if self.side != self.using:
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
