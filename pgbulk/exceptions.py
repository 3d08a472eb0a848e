"""Errors raised by pgbulk's public API."""

from __future__ import annotations

from typing import Any


class PgbulkError(Exception):
    """Base class of pgbulk's errors."""


class ConflictError(PgbulkError):
    """Records of the selection are reserved by other jobs; nothing was written.

    ``conflicts`` is a list of ``{"job_id", "user", "count"}``, largest overlap first.
    """

    def __init__(self, conflicts: list[dict[str, Any]]) -> None:
        self.conflicts = conflicts
        parts = [
            f"{c['count']} record(s) held by job {c['job_id']}"
            + (f" of {c['user']}" if c.get("user") else "")
            for c in conflicts
        ]
        super().__init__("Conflict: " + "; ".join(parts))


class BulkValidationError(PgbulkError):
    """The requested change is invalid; nothing was queued or written.

    ``errors`` maps a field name (or ``"__all__"``) to a list of messages.
    """

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
        )


class JobCancelled(PgbulkError):
    """Raised inside a running job when somebody asked it to stop."""


class JobFailed(PgbulkError):
    """Raised by a worker task after its job was recorded as failed."""
