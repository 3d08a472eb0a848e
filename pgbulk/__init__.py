"""pgbulk: background bulk edits and deletes for Django, with PostgreSQL as the only service.

The public API is re-exported here (imported lazily, so ``pgbulk`` can sit in
INSTALLED_APPS): ``pgbulk.bulk_update``, ``pgbulk.bulk_delete``, ``pgbulk.preview``, ``pgbulk.ConflictError``...
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_EXPORTS = {
    "bulk_update": "pgbulk.launch",
    "bulk_delete": "pgbulk.launch",
    "preview": "pgbulk.previews",
    "undo": "pgbulk.undoing",
    "ConflictError": "pgbulk.exceptions",
    "BulkValidationError": "pgbulk.exceptions",
    "PgbulkError": "pgbulk.exceptions",
    "current_job": "pgbulk.runtime",
    "skip_nested_async": "pgbulk.runtime",
    "register_descendant_conflicts": "pgbulk.runtime",
    "job_task": "pgbulk.job_tasks",
    "JobHandle": "pgbulk.job_tasks",
    "AsyncManager": "pgbulk.managers",
}

__all__ = [
    "AsyncManager",
    "BulkValidationError",
    "ConflictError",
    "JobHandle",
    "PgbulkError",
    "__version__",
    "bulk_delete",
    "bulk_update",
    "current_job",
    "job_task",
    "preview",
    "register_descendant_conflicts",
    "skip_nested_async",
    "undo",
]

if TYPE_CHECKING:
    from pgbulk.exceptions import BulkValidationError, ConflictError, PgbulkError
    from pgbulk.job_tasks import JobHandle, job_task
    from pgbulk.launch import bulk_delete, bulk_update
    from pgbulk.managers import AsyncManager
    from pgbulk.previews import preview
    from pgbulk.runtime import current_job, register_descendant_conflicts, skip_nested_async
    from pgbulk.undoing import undo


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'pgbulk' has no attribute {name!r}")
