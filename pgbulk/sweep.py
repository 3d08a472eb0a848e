"""Running the database-side sweep (``pgbulk_sweep()`` in sql/) with pgbulk's settings."""

from __future__ import annotations

import json
from typing import Any

from django.db import connections, transaction

from pgbulk.conf import pgbulk_settings
from pgbulk.models import Job
from pgbulk.signals import emit
from pgbulk.sqlfiles import query

#: How stale a worker heartbeat may be before its jobs count as dead (seconds).
HEARTBEAT_TIMEOUT = 60


def sweep(*, dry_run: bool = False, using: str = "default", **overrides: Any) -> dict[str, Any]:
    """Run one sweep; with ``dry_run`` report what it would do and roll it back.

    ``overrides`` replace settings for this run (seconds): conflict_ttl,
    progress_ttl, max_task_duration, job_retention (days), heartbeat_timeout.
    """
    params = {
        "conflict_ttl": pgbulk_settings.CONFLICT_TTL,
        "progress_ttl": pgbulk_settings.PROGRESS_TTL,
        "max_task_duration": pgbulk_settings.MAX_TASK_DURATION,
        "job_retention": int(pgbulk_settings.JOB_RETENTION) * 86400,
        "heartbeat_timeout": HEARTBEAT_TIMEOUT,
        **overrides,
    }
    if "job_retention_days" in params:
        params["job_retention"] = int(params.pop("job_retention_days")) * 86400
    with transaction.atomic(using=using):
        with connections[using].cursor() as cursor:
            cursor.execute(query("sweep"), [
                params["conflict_ttl"], params["progress_ttl"], params["max_task_duration"],
                params["job_retention"], params["heartbeat_timeout"],
            ])
            raw = cursor.fetchone()[0]
        report = json.loads(raw) if isinstance(raw, str) else raw
        report["dry_run"] = dry_run
        if dry_run:
            transaction.set_rollback(True, using=using)
        else:
            for job in Job.objects.using(using).filter(
                pk__in=[*report.get("failed", []), *report.get("resumed", [])]
            ):
                emit(job, "cleanup", using=using)
    return report
