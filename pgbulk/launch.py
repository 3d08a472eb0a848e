"""Launching a job: one transaction writes the job row, every reservation and the queued task."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from django.db.models import QuerySet
from django.utils import timezone

from pgbulk import execute, locks
from pgbulk.changelog import expired_message, log_spec
from pgbulk.conf import pgbulk_settings
from pgbulk.exceptions import BulkValidationError, ConflictError
from pgbulk.models import Job, Status
from pgbulk.runtime import current_job
from pgbulk.signals import emit
from pgbulk.sqlfiles import query
from pgbulk.strategies import related_loading
from pgbulk.values import clean_values

RUN_MODES = ("auto", "async", "sync")
STRATEGIES = ("save", "queryset")
VALIDATIONS = ("changed", "full")
DEFAULT_MIN_ASYNC_RECORDS = 20


def bulk_update(
    queryset: QuerySet,
    values: dict[str, Any],
    *,
    user: Any = None,
    run: str = "auto",
    strategy: str = "save",
    atomic: bool = True,
    conflict_checking: bool = True,
    validation: str = "changed",
    parallel: int | None = None,
    fields: Iterable[str] | None = None,
    min_async_records: int = DEFAULT_MIN_ASYNC_RECORDS,
    manager: str | None = None,
    context: dict[str, Any] | None = None,
) -> Job:
    """Set ``values`` on every record of ``queryset``; the options are in docs/api.md.

    ``fields`` limits which fields may be changed (the view's ``bulk_fields``);
    ``manager`` is the dotted path of the AsyncManager that hears the job's events;
    ``context`` (JSON) describes where the job came from, e.g. the list's filters;
    ``validation`` says what the save strategy validates per record ("changed" or "full").
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, not {strategy!r}")
    if validation not in VALIDATIONS:
        raise ValueError(f"validation must be one of {VALIDATIONS}, not {validation!r}")
    cleaned = clean_values(queryset.model, values, fields)
    params = {"values": cleaned, "strategy": strategy, "validation": validation,
              "manager": manager, "change_log": log_spec(queryset.model, cleaned),
              "loading": related_loading(queryset), "context": context or {}}
    return launch("update", "pgbulk.tasks.bulk_update_task", queryset, params, user=user,
                  run=run, atomic=atomic, conflict_checking=conflict_checking,
                  min_async_records=min_async_records, parallel=parallel,
                  chunk_size=(pgbulk_settings.QUERYSET_CHUNK_SIZE if strategy == "queryset"
                              else pgbulk_settings.CHUNK_SIZE))


def bulk_delete(
    queryset: QuerySet,
    *,
    user: Any = None,
    run: str = "auto",
    atomic: bool = True,
    conflict_checking: bool = True,
    parallel: int | None = None,
    min_async_records: int = DEFAULT_MIN_ASYNC_RECORDS,
    manager: str | None = None,
    context: dict[str, Any] | None = None,
) -> Job:
    """Delete every record of ``queryset`` (cascades and signals as Django's delete())."""
    params = {"manager": manager, "context": context or {}}
    return launch("delete", "pgbulk.tasks.bulk_delete_task", queryset, params,
                  user=user, run=run,
                  atomic=atomic, conflict_checking=conflict_checking,
                  min_async_records=min_async_records, parallel=parallel)


def launch(
    kind: str,
    task_name: str,
    queryset: QuerySet | None,
    params: dict[str, Any],
    *,
    user: Any,
    run: str,
    atomic: bool,
    conflict_checking: bool,
    min_async_records: int,
    parallel: int | None = None,
    chunk_size: int | None = None,
    using: str | None = None,
    undo_of: Job | None = None,
) -> Job:
    """Create the job and reserve its records; defer it, or run it here when synchronous.

    ``parallel`` runners work on a chunked job at once (PARALLELISM by default);
    several walk chunks of ``chunk_size`` (CHUNK_SIZE), fixed at launch; a single
    runner uses its worker's settings.
    """
    if run not in RUN_MODES:
        raise ValueError(f"run must be one of {RUN_MODES}, not {run!r}")
    if run == "async" and not pgbulk_settings.ASYNC_ENABLED:
        raise ImproperlyConfigured('run="async" needs PGBULK["ASYNC_ENABLED"] = True')
    using = using or (queryset.db if queryset is not None else "default")
    queryset = locks.as_selection(queryset) if queryset is not None else None
    runners = runner_count(parallel, atomic)
    params = {**params, "atomic": bool(atomic), "conflict_checking": bool(conflict_checking),
              "parallel": runners, "queue": task_queue(task_name)}
    if runners > 1:  # every runner must cut the same chunks: fixed now
        params["chunk_size"] = chunk_size or pgbulk_settings.CHUNK_SIZE
    with transaction.atomic(using=using):
        if undo_of is not None:
            hold_log(undo_of, using)
        job = Job.objects.using(using).create(
            kind=kind, task_name=task_name, params=params, undo_of=undo_of,
            change_log="kept" if params.get("change_log") else "",
            model=queryset.model._meta.label if queryset is not None else "",
            user=user if getattr(user, "is_authenticated", False) else None,
        )
        if queryset is not None:
            job.total = reserve(job, queryset, using, conflict_checking,
                                chunk_size or pgbulk_settings.CHUNK_SIZE)
        if not job.total and kind != "task":
            raise BulkValidationError({"__all__": ["No records are selected."]})
        job.run_mode = run_mode(run, job.total, min_async_records)
        if job.run_mode == "async":
            job.procrastinate_job_id = defer(task_name, job, using=using)
            for runner in range(1, runners):
                defer(task_name, job, using=using, runner=runner)
        # Launched now (a long selection took a while): a synchronous job's start timeout
        # counts from here, not from the beginning of the launch.
        job.created_at = timezone.now()
        job.save(update_fields=["total", "run_mode", "procrastinate_job_id", "created_at"])
        emit(job, "create", using=using)
    if job.run_mode == "sync":
        execute.run(job.id, using=using)
        job.refresh_from_db()
    return job


def hold_log(undone: Job, using: str) -> None:
    """In an undo's launch: lock the undone job's row until the undo is committed (the
    sweep skips locked rows: it neither deletes the job nor purges its change log
    meanwhile), and check that its log is still there."""
    kept = Job.objects.using(using).select_for_update(no_key=True).filter(
        pk=undone.pk, change_log="kept")
    if not kept.exists():
        raise BulkValidationError({"__all__": [expired_message()]})


def reserve(job: Job, queryset: QuerySet, using: str, exclusive: bool, chunk_size: int) -> int:
    """Reserve the job's records (see locks.reserve); a conflict with the job this launch
    runs inside says so."""
    try:
        return locks.reserve(job.id, queryset, using=using, exclusive=exclusive,
                             chunk_size=chunk_size)
    except ConflictError as conflict:
        outer = current_job()
        if outer is None:
            raise
        raise ConflictError(conflict.conflicts, launching_job=str(outer.id)) from None


def runner_count(parallel: int | None, atomic: bool) -> int:
    """How many runners a job gets: ``parallel``, else PARALLELISM (1 for atomic jobs,
    which run in one transaction and so on one worker)."""
    if parallel is None:
        return 1 if atomic else max(pgbulk_settings.PARALLELISM, 1)
    if not isinstance(parallel, int) or isinstance(parallel, bool) or parallel < 1:
        raise ValueError(f"parallel must be a whole number >= 1, not {parallel!r}")
    if parallel > 1 and atomic:
        raise ValueError("parallel > 1 needs atomic=False: an atomic job runs in one "
                         "transaction, so on one worker")
    return parallel


def run_mode(run: str, total: int, min_async_records: int) -> str:
    if run == "auto":
        enough = total >= min_async_records
        return "async" if pgbulk_settings.ASYNC_ENABLED and enough else "sync"
    return run


def task_queue(task_name: str) -> str:
    """The Procrastinate queue a job task's jobs go to (its own, or PGBULK["QUEUE"])."""
    from pgbulk.job_tasks import REGISTRY

    spec = REGISTRY.get(task_name)
    if spec is None:
        raise LookupError(f"no job task named {task_name!r} is registered")
    return spec.queue or pgbulk_settings.QUEUE


def defer(task_name: str, job: Job, *, using: str = "default", runner: int = 0) -> int:
    """Queue the task in the current transaction, on Django's connection.

    Procrastinate's connector commits on its own connection inside a worker;
    calling its defer function here keeps the launch one transaction everywhere.
    """
    with connections[using].cursor() as cursor:
        cursor.execute(query("defer_task"), {
            "queue": job.params.get("queue") or task_queue(task_name), "task_name": task_name,
            "args": json.dumps({"job_id": str(job.id), **({"runner": runner} if runner else {})})})
        return cursor.fetchone()[0]


__all__ = ["Status", "bulk_delete", "bulk_update", "launch"]
