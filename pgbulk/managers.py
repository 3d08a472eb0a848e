"""AsyncManager: the seam users subclass to hook lifecycle events and check the set-up."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from django.db.models import Model, QuerySet
from django.urls import URLResolver, include, path

if TYPE_CHECKING:
    from pgbulk.job_tasks import JobTask
    from pgbulk.models import Job

Lock = QuerySet | tuple[type[Model], Iterable[Any]] | None

logger = logging.getLogger("pgbulk")


class AsyncManager:
    """Default manager: logs lifecycle events. Subclass and override :meth:`on_event`."""

    def __init__(self, config: dict | None = None) -> None:
        """``config`` is accepted and not used here: a list view passes its
        ``async_manager_config`` when it makes its manager to launch a job task, for a
        subclass that takes it. Lifecycle hooks are called on a manager made without it."""

    def on_event(self, job: Job, event: str) -> None:
        """Called after commit for create, progress, complete, fail, cancel and cleanup."""
        if event != "progress":
            logger.info("pgbulk: job %s %s (%s)", job.id, event, job.status)

    def launch(
        self,
        task: JobTask | str,
        *args: Any,
        lock: Lock = None,
        user: Any = None,
        run: str = "auto",
        atomic: bool | None = None,
        conflict_checking: bool = True,
        context: dict[str, Any] | None = None,
        parallel: int | None = None,
        chunk_size: int | None = None,
        **kwargs: Any,
    ) -> Job:
        """Launch a job task; ``lock`` (a queryset, or ``(Model, pks)``) is reserved in the
        same transaction as the job and its queued task, or the launch is refused whole
        with ConflictError. ``args`` and ``kwargs`` must be JSON-serializable;
        ``context`` (JSON) describes the job for its pages, e.g. ``{"label": ...}``;
        ``chunk_size`` is what ``job.chunks()`` yields (CHUNK_SIZE by default)."""
        from pgbulk import launch as launching
        from pgbulk.job_tasks import REGISTRY, whole_size

        spec = REGISTRY.get(task) if isinstance(task, str) else task
        if spec is None or getattr(spec, "name", None) not in REGISTRY:
            raise TypeError(f"{task!r} is not a job task (decorate it with @pgbulk.job_task)")
        params: dict[str, Any] = {
            "args": list(args), "kwargs": kwargs, "context": context or {},
            "manager": f"{type(self).__module__}.{type(self).__qualname__}"}
        if chunk_size is not None:
            params["chunk_size"] = whole_size(chunk_size, "chunk_size")
        try:
            json.dumps(params)
        except TypeError as error:
            raise ValueError(f"job task arguments must be JSON-serializable: {error}") from None
        return launching.launch(
            "task", spec.name, lock_queryset(lock), params, user=user, run=run,
            atomic=spec.atomic if atomic is None else atomic, parallel=parallel,
            conflict_checking=conflict_checking, min_async_records=0, chunk_size=chunk_size,
        )

    def validate_async_system(self) -> list[str]:
        """Problems that keep async jobs from running; an empty list when all is well."""
        from pgbulk.checks import async_system_problems

        return async_system_problems()

    @classmethod
    def get_urlpatterns(cls) -> list[URLResolver]:
        """The pgbulk URLs, to add once to the project's urlpatterns
        (``urlpatterns += AsyncManager.get_urlpatterns()``)."""
        return [path("pgbulk/", include("pgbulk.urls"))]


def lock_queryset(lock: Lock) -> QuerySet | None:
    """The records a job needs, as a queryset: a queryset, ``(Model, pks)`` or None."""
    if lock is None or isinstance(lock, QuerySet):
        return lock
    model, pks = lock
    return model._base_manager.filter(pk__in=list(pks))
