"""Running the sweep, pgbulk's safety net (``pgbulk_sweep_v3()`` in sql/), with its settings.

"The sweep" is the one name of that safety net in the code and the docs; users know
it from before as "cleanup": the command ``pgbulk_cleanup``, the setting
``CLEANUP_SCHEDULE_INTERVAL`` and the lifecycle event ``cleanup`` keep that name.
"""

from __future__ import annotations

import json
from typing import Any

from django.db import connections, transaction

from pgbulk.conf import HEARTBEAT_TIMEOUT, pgbulk_settings
from pgbulk.models import Job
from pgbulk.signals import emit
from pgbulk.sqlfiles import query

#: Intervals (seconds) a cron schedule repeats evenly: divisors of a minute (the
#: seconds field), of an hour (minutes) and of a day (hours).
CRON_INTERVALS = tuple(sorted(
    {s for s in range(1, 61) if 60 % s == 0}
    | {60 * m for m in range(1, 61) if 60 % m == 0}
    | {3600 * h for h in range(1, 25) if 24 % h == 0}))


#: Jobs whose change logs one sweep deletes at most (a log may hold a million rows).
PURGE_BATCH = 5


def schedule_interval(seconds: float) -> int:
    """How often the periodic sweep runs for an interval setting of ``seconds``: the
    longest interval a cron schedule repeats evenly that is not longer (1 s to a day)."""
    return max([step for step in CRON_INTERVALS if step <= seconds] or [CRON_INTERVALS[0]])


def sweep_cron(seconds: float) -> str:
    """The periodic sweep's cron expression (a seconds field below a minute), every
    ``schedule_interval(seconds)``."""
    step = schedule_interval(seconds)
    if step < 60:
        return f"* * * * * */{step}"
    if step < 3600:
        return f"*/{step // 60} * * * *"
    if step < 86400:
        return f"0 */{step // 3600} * * *"
    return "0 0 * * *"


def sweep_params(**overrides: Any) -> dict[str, Any]:
    """The sweep's parameters from pgbulk's settings (ages in seconds)."""
    params = {
        "conflict_ttl": pgbulk_settings.CONFLICT_TTL,
        "progress_ttl": pgbulk_settings.PROGRESS_TTL,
        "max_task_duration": pgbulk_settings.MAX_TASK_DURATION,
        "job_retention": pgbulk_settings.JOB_RETENTION * 86400,
        "heartbeat_timeout": HEARTBEAT_TIMEOUT,
        "max_resumes": pgbulk_settings.MAX_RESUMES,
        "sync_start_timeout": pgbulk_settings.SYNC_START_TIMEOUT,
        "only_job": None,
        **overrides,
    }
    if "job_retention_days" in params:
        params["job_retention"] = params.pop("job_retention_days") * 86400
    return params


def sweep(*, dry_run: bool = False, using: str = "default", housekeeping: bool = True,
          **overrides: Any) -> dict[str, Any]:
    """Run one sweep; with ``dry_run`` report what it would do and roll it back; without
    ``housekeeping`` only act on unfinished jobs and reservations (no change log purge,
    no deletion of old jobs).

    ``overrides`` replace settings for this run (ages in seconds): conflict_ttl,
    progress_ttl, max_task_duration, job_retention (or job_retention_days),
    heartbeat_timeout, max_resumes, sync_start_timeout, only_job.
    """
    params = sweep_params(**overrides)
    if not housekeeping:
        params["job_retention"] = KEEP_FOREVER
    with transaction.atomic(using=using):
        with connections[using].cursor() as cursor:
            report_purge = 0
            if params["only_job"] is None and housekeeping:
                report_purge = purge_history(cursor, params["job_retention"])
            cursor.execute(query("sweep"), params)
            raw = cursor.fetchone()[0]
        report = json.loads(raw) if isinstance(raw, str) else raw
        report["dry_run"] = dry_run
        if params["only_job"] is None:
            report["purged_changes"] = report_purge
        if dry_run:
            transaction.set_rollback(True, using=using)
        else:
            acted = [*report.get("failed", []), *report.get("resumed", []),
                     *report.get("cancelled", [])]
            for job in Job.objects.using(using).filter(pk__in=acted):
                emit(job, "cleanup", using=using)
    return report


#: A job retention no job reaches (seconds): a sweep without housekeeping deletes none.
KEEP_FOREVER = 100 * 365 * 86400


def purge_history(cursor: Any, job_retention: float) -> int:
    """Before the sweep deletes old jobs: delete the change logs past CHANGE_RETENTION
    (at most PURGE_BATCH jobs' each run). Returns the number of log rows deleted."""
    retention = min(pgbulk_settings.CHANGE_RETENTION * 86400, job_retention)
    cursor.execute(query("change_log_purge"), {"retention": retention, "batch": PURGE_BATCH})
    return cursor.rowcount


def sweep_job(job_id: Any, *, using: str = "default") -> dict[str, Any]:
    """Sweep one job now (a reader found its worker lost): resume, fail or cancel it."""
    return sweep(using=using, only_job=str(job_id))
