"""pgbulk settings: ``settings.PGBULK`` over documented defaults, read on each access."""

from __future__ import annotations

from typing import Any

from django.conf import settings as django_settings

DEFAULTS: dict[str, Any] = {
    # Master switch: with False every job runs synchronously in the caller.
    "ASYNC_ENABLED": False,
    # Procrastinate queue the bulk tasks are deferred to.
    "QUEUE": "pgbulk",
    # Rows per chunk: one transaction each in chunked mode, one batch in atomic mode.
    "CHUNK_SIZE": 1000,
    # Runners (workers at once) of a chunked job that does not say; atomic jobs use one.
    "PARALLELISM": 1,
    # Rows per chunk of the queryset strategy (one UPDATE each: cheap per row, so larger).
    "QUERYSET_CHUNK_SIZE": 5000,
    # Seconds the progress row of a finished job is kept.
    "PROGRESS_TTL": 7200,
    # Longest a reservation may outlive a job that is not alive (seconds).
    "CONFLICT_TTL": 3600,
    # Seconds finished jobs stay in the dashboard's active list.
    "CLEANUP_GRACE_PERIOD": 86400,
    # A running job past this many seconds is flagged as stuck.
    "MAX_TASK_DURATION": 3600,
    # Seconds between two runs of the periodic sweep (also run by busy workers
    # between chunks, and on a read that finds a job's worker lost).
    "CLEANUP_SCHEDULE_INTERVAL": 30,
    # Times the sweep resumes a chunked job whose worker was lost, before failing it.
    "MAX_RESUMES": 3,
    # Seconds a synchronous job may stay queued, unclaimed, before the sweep fails
    # it (the process that launched it died before running it).
    "SYNC_START_TIMEOUT": 60,
    # Days of finished job history kept.
    "JOB_RETENTION": 30,
    # Dotted path of the AsyncManager class used by default.
    "ASYNC_MANAGER_DEFAULT": "pgbulk.managers.AsyncManager",
    # Per-record errors kept on a job (the count of failures is never capped).
    "MAX_RECORDED_ERRORS": 1000,
}


class Settings:
    """Attribute access to one pgbulk setting, e.g. ``pgbulk_settings.CHUNK_SIZE``."""

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown pgbulk setting {name!r}")
        return self.user_settings().get(name, DEFAULTS[name])

    @staticmethod
    def user_settings() -> dict[str, Any]:
        return getattr(django_settings, "PGBULK", {}) or {}


pgbulk_settings = Settings()
