"""Running the database-side sweep (``pgbulk_sweep()`` in sql/) with pgbulk's settings."""

from __future__ import annotations

import json
from typing import Any

from django.db import connections, transaction

from pgbulk.conf import pgbulk_settings
from pgbulk.models import Job
from pgbulk.signals import emit
from pgbulk.sqlfiles import query

#: How stale a worker heartbeat may be before a task it fetched but never
#: started is put back in the queue (seconds). Running jobs are judged by their
#: liveness lock alone.
HEARTBEAT_TIMEOUT = 60

AGES = ("conflict_ttl", "progress_ttl", "max_task_duration", "job_retention",
        "heartbeat_timeout", "sync_start_timeout")


def sweep_params(**overrides: Any) -> dict[str, Any]:
    """The sweep's parameters from pgbulk's settings (ages in seconds)."""
    params = {
        "conflict_ttl": pgbulk_settings.CONFLICT_TTL,
        "progress_ttl": pgbulk_settings.PROGRESS_TTL,
        "max_task_duration": pgbulk_settings.MAX_TASK_DURATION,
        "job_retention": int(pgbulk_settings.JOB_RETENTION) * 86400,
        "heartbeat_timeout": HEARTBEAT_TIMEOUT,
        "max_resumes": pgbulk_settings.MAX_RESUMES,
        "sync_start_timeout": pgbulk_settings.SYNC_START_TIMEOUT,
        "only_job": None,
        **overrides,
    }
    if "job_retention_days" in params:
        params["job_retention"] = int(params.pop("job_retention_days")) * 86400
    for age in AGES:
        params[age] = float(params[age])
    return params


def sweep(*, dry_run: bool = False, using: str = "default", **overrides: Any) -> dict[str, Any]:
    """Run one sweep; with ``dry_run`` report what it would do and roll it back.

    ``overrides`` replace settings for this run (ages in seconds): conflict_ttl,
    progress_ttl, max_task_duration, job_retention (or job_retention_days),
    heartbeat_timeout, max_resumes, sync_start_timeout, only_job.
    """
    params = sweep_params(**overrides)
    with transaction.atomic(using=using):
        with connections[using].cursor() as cursor:
            cursor.execute(query("sweep"), params)
            raw = cursor.fetchone()[0]
        report = json.loads(raw) if isinstance(raw, str) else raw
        report["dry_run"] = dry_run
        if dry_run:
            transaction.set_rollback(True, using=using)
        else:
            acted = [*report.get("failed", []), *report.get("resumed", []),
                     *report.get("cancelled", [])]
            for job in Job.objects.using(using).filter(pk__in=acted):
                emit(job, "cleanup", using=using)
    return report


def sweep_job(job_id: Any, *, using: str = "default") -> dict[str, Any]:
    """Sweep one job now (a reader found its worker lost): resume, fail or cancel it."""
    return sweep(using=using, only_job=str(job_id))
