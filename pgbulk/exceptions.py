"""Errors raised by pgbulk's public API, and the entries they carry (typed here, once)."""

from __future__ import annotations

from typing import TypedDict


class ConflictEntry(TypedDict):
    """Another job holding records of a selection (an item of ``ConflictError.conflicts``)."""

    job_id: str
    user: str | None  # the holder's username; None if the job has no user any more
    count: int  # how many of the selected records it holds


class RecordRef(TypedDict):
    """Which record: its key as text, and ``str()`` of it ("" when unknown)."""

    pk: str
    record: str


class ErrorEntry(RecordRef):
    """A record a job could not change: ``RecordFailed.entries``, ``Job.errors`` items,
    one row of the error table each."""

    field: str | None  # None: the record as a whole
    message: str


class PgbulkError(Exception):
    """Base class of pgbulk's errors."""


class ConflictError(PgbulkError):
    """Records of the selection are reserved by other jobs; nothing was written.

    ``conflicts`` lists ConflictEntry items, largest overlap first.
    """

    def __init__(self, conflicts: list[ConflictEntry], needed: str = "",
                 launching_job: str = "") -> None:
        self.conflicts = conflicts
        parts = [
            f"{c['count']} record(s) held by the job launching it ({c['job_id']}), which "
            "cannot reserve its own records again: change them in its body"
            if launching_job and str(c["job_id"]) == launching_job else
            f"{c['count']} record(s) held by job {c['job_id']}"
            + (f" of {c['user']}" if c.get("user") else "")
            for c in conflicts
        ]
        # ``needed``: what a running job found it needs (register_descendant_conflicts).
        head = f"{needed} this job's records need are held by other jobs: " if needed else ""
        super().__init__("Conflict: " + head + "; ".join(parts))


class BulkValidationError(PgbulkError):
    """The requested change is invalid; nothing was queued or written.

    ``errors`` maps a field name (or ``"__all__"``) to a list of messages.
    """

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__(
            "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in errors.items())
        )


class JobFailed(PgbulkError):
    """Raised by a worker task whose job failed, or that a worker shutdown cut short (the
    sweep resumes that job): the queue records the task failed, never succeeded.

    ``expected``: the job failed because records failed (a business outcome the
    job's errors describe), not because something broke: logged as one line.
    """

    def __init__(self, message: str, *, expected: bool = False) -> None:
        self.expected = expected
        super().__init__(message)


class RecordFailed(Exception):
    """A record could not be changed; carries its ErrorEntry items.

    Not a PgbulkError: it must never be caught as the error of another record.
    """

    def __init__(self, entries: list[ErrorEntry]) -> None:
        self.entries = entries
        first = entries[0]
        where = f"{first['field']}: " if first.get("field") else ""
        name = f" ({first['record']})" if first.get("record") else ""
        super().__init__(f"record {first['pk']}{name}: {where}{first['message']}")


class JobInterrupted(Exception):
    """Control flow: the running job must stop now (never a record's error)."""


class JobCancelled(JobInterrupted):
    """Somebody asked the running job to stop."""


class JobFenced(JobInterrupted):
    """This runner's attempt is no longer current (the sweep took the job over):
    whatever it has not committed is rolled back and it records nothing more."""


class JobShutdown(JobInterrupted):
    """The worker is shutting down and aborted the job: it is left to the sweep."""
