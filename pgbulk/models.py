"""pgbulk's tables: the job history, the reservations (conflict locks) and live progress.

The bottom layer: nothing of pgbulk is imported here. ``Job.progress()`` and
``Job.cancel()`` are a façade over ``pgbulk.progress`` and ``pgbulk.cancel``, which
build on these models and are imported when called; neither reaches the executor
(``tests/unit/test_layers.py`` keeps it so).
"""

from __future__ import annotations

import json
import time
import uuid
from decimal import Decimal
from typing import Any

import pgtrigger
from django.apps import apps
from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Status(models.TextChoices):
    QUEUED = "queued", _("Queued")
    RUNNING = "running", _("Running")
    SUCCEEDED = "succeeded", _("Succeeded")
    FAILED = "failed", _("Failed")
    CANCELLED = "cancelled", _("Cancelled")


TERMINAL = frozenset({Status.SUCCEEDED, Status.FAILED, Status.CANCELLED})


class Job(models.Model):
    """One bulk operation (or custom job task); the table is also the history."""

    Status = Status

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    kind = models.CharField(max_length=20)  # update, delete, or "task"
    task_name = models.CharField(max_length=200)
    model = models.CharField(max_length=200, blank=True)  # app_label.ModelName
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    run_mode = models.CharField(max_length=5, default="async")  # async or sync
    params = models.JSONField(default=dict, blank=True)
    total = models.BigIntegerField(default=0)
    done = models.BigIntegerField(default=0)
    failed_count = models.BigIntegerField(default=0)
    # Records an undo left alone because they changed since the job it undoes.
    skipped_count = models.BigIntegerField(default=0, db_default=0)
    errors = models.JSONField(default=list, blank=True)
    message = models.TextField(blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="pgbulk_jobs",
    )
    procrastinate_job_id = models.BigIntegerField(null=True, blank=True)
    # The run token: raised by the sweep each time it resumes or fails the job, so a
    # runner of an earlier attempt can no longer commit anything (fencing).
    attempt = models.IntegerField(default=0, db_default=0)
    # Times the sweep resumed the job after losing its worker (MAX_RESUMES caps them).
    resumes = models.IntegerField(default=0, db_default=0)
    # The attempt a worker shutdown stopped (set by its runner): resuming it is no loss.
    shutdown_attempt = models.IntegerField(null=True, blank=True)
    attempt_started_at = models.DateTimeField(null=True, blank=True)  # current attempt's claim
    cancel_requested = models.BooleanField(default=False)
    cancelled_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
        related_name="+",
    )
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # The update job this one undoes (its change log's before-values are put back).
    undo_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="undos",
    )
    # The job's change log: "" none (not an update, or RECORD_CHANGES off), "kept",
    # or "expired" (the sweep deleted it after CHANGE_RETENTION days).
    change_log = models.CharField(max_length=10, blank=True, default="", db_default="")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="pgbulk_job_status_idx"),
            models.Index(fields=["procrastinate_job_id"], name="pgbulk_job_task_idx"),
            models.Index(fields=["finished_at"], name="pgbulk_job_change_log_idx",
                         condition=models.Q(change_log="kept")),  # the sweep's purge
        ]
        triggers = [
            # The status state machine, enforced by the database: terminal states are final.
            pgtrigger.FSM(
                name="pgbulk_job_status_fsm",
                field="status",
                transitions=[
                    ("queued", "running"), ("queued", "cancelled"), ("queued", "failed"),
                    ("running", "succeeded"), ("running", "failed"), ("running", "cancelled"),
                    ("running", "queued"),  # a chunked job of a dead worker, re-queued to resume
                ],
            )
        ]

    def __str__(self) -> str:
        """ "update of Books (succeeded)" (pgbulk.describe.summary says what it did)."""
        try:
            name = str(apps.get_model(self.model)._meta.verbose_name_plural)
        except (LookupError, ValueError):
            name = self.model or self.task_name
        return f"{self.kind} of {name} ({self.get_status_display().lower()})"

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL

    def progress(self) -> dict[str, Any]:
        """Current status and progress as a dict (re-reads the job; live figures)."""
        from pgbulk import progress

        self.refresh_from_db()
        return progress.snapshot(self)

    def cancel(self, by: Any = None) -> bool:
        """Ask the job to stop; True if it was still queued or running.

        ``by`` is the user asking (recorded with the time as ``cancelled_by``/``cancelled_at``).
        """
        from pgbulk.cancel import cancel

        return cancel(self, by=by)

    cancel.alters_data = True  # type: ignore[attr-defined]

    def wait(self, timeout: float = 60.0, interval: float = 0.1) -> Job:
        """Poll until the job is terminal; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            self.refresh_from_db()
            if self.is_terminal:
                return self
            if time.monotonic() >= deadline:
                raise TimeoutError(f"job {self.id} still {self.status} after {timeout}s")
            time.sleep(interval)

    wait.alters_data = True  # type: ignore[attr-defined]


class Reservation(models.Model):
    """Records reserved by a job: the conflict lock (no two exclusive ones overlap).

    Integer keys are held as spans: ``span`` consecutive keys from ``key_lo``
    (at most ``pgbulk.locks.MAX_SPAN``); other keys one row each (``object_pk``).
    ``seq`` is the ordinal of the row's first record among the job's records.
    """

    pk = models.CompositePrimaryKey("job", "seq")
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="reservations", db_index=False,
        db_constraint=False,  # no per-row FK check on 100k-row reservations
    )  # the primary key (job, seq) indexes it; released with the job
    seq = models.BigIntegerField()  # walk order of the job's target records
    model = models.CharField(max_length=200)
    object_pk = models.TextField()  # the (first) key as text
    key_lo = models.BigIntegerField(null=True, blank=True)  # integer keys: the first
    span = models.IntegerField(default=1, db_default=1)  # how many consecutive keys
    is_target = models.BooleanField(default=True)  # False: registered descendant
    exclusive = models.BooleanField(default=True)  # False: conflict checking off
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["model", "object_pk"],
                condition=models.Q(exclusive=True, key_lo__isnull=True),
                name="pgbulk_reservation_record_uniq",
            )
        ]
        indexes = [  # spans of a model around a key (overlap checks, who holds a record)
            models.Index(fields=["model", "key_lo"], name="pgbulk_reservation_span_idx",
                         condition=models.Q(key_lo__isnull=False)),
        ]

    def __str__(self) -> str:
        keys = (self.object_pk if self.key_lo is None or self.span == 1
                else f"{self.key_lo}..{self.key_lo + self.span - 1}")
        return f"{self.model} {keys} held by job {self.job_id}"


class JobError(models.Model):
    """One record a job could not change (uncapped; the job row keeps a capped summary)."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="record_errors")
    object_pk = models.TextField()
    record = models.TextField(blank=True)  # str() of the record when it failed
    field = models.CharField(max_length=200, blank=True)
    message = models.TextField()
    # Not a failure: an undo left the record alone (it changed since the undone job).
    skipped = models.BooleanField(default=False, db_default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        db_table = "pgbulk_job_error"
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.record or self.object_pk}: {self.message}"


class ExactNumbers(json.JSONDecoder):
    """Reads JSON numbers with a fraction as Decimal: a logged numeric(30, 10) comes back
    with every digit (a float kept 17 and made the rest up)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **{**kwargs, "parse_float": Decimal})


class Change(models.Model):
    """One record changed by an update job: its changed fields before and after.

    Written in the transaction that changed the record, so the log and the data
    agree. ``before``/``after`` map attnames (``author_id``) to the values as
    PostgreSQL's ``to_jsonb`` writes them, and many-to-many names to the sorted
    keys of the related objects. Undo puts ``before`` back.
    """

    pk = models.CompositePrimaryKey("job", "object_pk")
    job = models.ForeignKey(
        Job, on_delete=models.CASCADE, related_name="changes", db_index=False,
        db_constraint=False,  # no per-row FK check on 100k-row logs; the sweep purges
    )  # the primary key (job, object_pk) indexes it
    object_pk = models.TextField()  # the record's key as text
    before = models.JSONField(decoder=ExactNumbers)
    after = models.JSONField(null=True, decoder=ExactNumbers)

    class Meta:
        db_table = "pgbulk_change"

    def __str__(self) -> str:
        return f"{self.object_pk} changed by job {self.job_id}"


class Progress(models.Model):
    """Live progress of a job: UNLOGGED (cheap writes; emptied after a crash)."""

    job_id = models.UUIDField(primary_key=True)
    total = models.BigIntegerField(default=0)
    done = models.BigIntegerField(default=0)
    failed_count = models.BigIntegerField(default=0)
    message = models.TextField(blank=True)
    started_at = models.DateTimeField(null=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"job {self.job_id}: {self.done}/{self.total}"
