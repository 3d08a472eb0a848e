"""pgbulk settings: ``settings.PGBULK`` over documented defaults, typed, read on each access.

``pgbulk_settings.CHUNK_SIZE`` is an ``int`` and ``pgbulk_settings.CONFLICT_TTL`` a
``float`` whatever the project wrote (``"500"`` from an environment variable, say): the
one accessor converts, so no module casts. A value that cannot be read is an
ImproperlyConfigured error (and the system check ``pgbulk.E005``).
"""

from __future__ import annotations

import functools
import json
import warnings
from typing import Any, get_type_hints

from django.conf import settings as django_settings
from django.core.exceptions import ImproperlyConfigured

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
    # Seconds finished jobs stay in the dashboard's "Active and recent" list.
    "ACTIVE_LIST_PERIOD": 86400,
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
    # Update jobs log each changed record's fields before and after (preview, undo).
    "RECORD_CHANGES": True,
    # Days a finished job's change log is kept (then the job can no longer be undone).
    "CHANGE_RETENTION": 30,
    # Fields left out of the change log, per model: {"app_label.Model": ["field", ...]}.
    "CHANGE_LOG_EXCLUDE": {},
    # Per-record errors kept on a job (the count of failures is never capped).
    "MAX_RECORDED_ERRORS": 1000,
    # Records a preview validates in memory (a random sample of the selection).
    "PREVIEW_SAMPLE_SIZE": 100,
}

#: Old names, still read when the new one is not set (a DeprecationWarning, and the
#: system check ``pgbulk.W002``): ``{old: new}``.
RENAMED: dict[str, str] = {"CLEANUP_GRACE_PERIOD": "ACTIVE_LIST_PERIOD"}

#: Not a setting: seconds a Procrastinate worker's heartbeat may be stale before the
#: worker counts as gone (a task it fetched but never started is queued again; the
#: live-worker probe of ``validate_async_system()``). The SQL functions' defaults
#: repeat it (tests/unit/test_sql_defaults.py keeps them equal).
HEARTBEAT_TIMEOUT = 60

_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}


class Settings:
    """Typed attribute access to one pgbulk setting, e.g. ``pgbulk_settings.CHUNK_SIZE``."""

    ASYNC_ENABLED: bool
    QUEUE: str
    CHUNK_SIZE: int
    PARALLELISM: int
    QUERYSET_CHUNK_SIZE: int
    PROGRESS_TTL: float  # seconds
    CONFLICT_TTL: float  # seconds
    ACTIVE_LIST_PERIOD: float  # seconds
    MAX_TASK_DURATION: float  # seconds
    CLEANUP_SCHEDULE_INTERVAL: float  # seconds
    MAX_RESUMES: int
    SYNC_START_TIMEOUT: float  # seconds
    JOB_RETENTION: float  # days
    ASYNC_MANAGER_DEFAULT: str
    MAX_RECORDED_ERRORS: int
    RECORD_CHANGES: bool
    CHANGE_RETENTION: float  # days
    CHANGE_LOG_EXCLUDE: dict  # {"app_label.Model": [field names]}
    PREVIEW_SAMPLE_SIZE: int

    def __getattr__(self, name: str) -> Any:
        name = RENAMED.get(name, name)
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown pgbulk setting {name!r}")
        return convert(name, raw(name))

    @staticmethod
    def user_settings() -> dict[str, Any]:
        return getattr(django_settings, "PGBULK", {}) or {}


def raw(name: str) -> Any:
    """What the project set for ``name`` (or its old name), else the default."""
    user = Settings.user_settings()
    if name in user:
        return user[name]
    for old, new in RENAMED.items():
        if new == name and old in user:
            warnings.warn(f"PGBULK[{old!r}] is deprecated: rename it to {new!r}.",
                          DeprecationWarning, stacklevel=3)
            return user[old]
    return DEFAULTS[name]


@functools.cache
def setting_types() -> dict[str, type]:
    return get_type_hints(Settings)


def convert(name: str, value: Any, *, key: str | None = None) -> Any:
    """``value`` as the type of setting ``name`` (written as ``key``, its old name
    maybe); ImproperlyConfigured if it is not one."""
    kind = setting_types()[name]
    try:
        return _converters[kind](value)
    except (TypeError, ValueError):
        raise ImproperlyConfigured(
            f"PGBULK[{key or name!r}] must be {_described[kind]}, not {value!r}.") from None


def _to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if isinstance(value, str | int) and text in _TRUE | _FALSE:
        return text in _TRUE
    raise ValueError(value)


def _to_int(value: Any) -> int:
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(value)
    return int(value)


def _to_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError(value)
    return float(value)


def _to_str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(value)
    return value


def _to_field_lists(value: Any) -> dict[str, list[str]]:
    """``{"app_label.Model": ["field", ...]}`` (JSON text too, from an environment variable)."""
    if isinstance(value, str):
        value = json.loads(value or "{}")
    if not isinstance(value, dict) or not all(
            isinstance(names, list | tuple) and all(isinstance(n, str) for n in names)
            for names in value.values()):
        raise TypeError(value)
    return {str(label): list(names) for label, names in value.items()}


_converters: dict[type, Any] = {bool: _to_bool, int: _to_int, float: _to_float, str: _to_str,
                                dict: _to_field_lists}
_described = {bool: "True or False", int: "a whole number", float: "a number", str: "a string",
              dict: 'a dict of field name lists, {"app_label.Model": ["field", ...]}'}

pgbulk_settings = Settings()
