"""Cancelling a job: a queued job ends at once, a running one is asked to stop.

Below the executor: it needs the job row, its reservations, its queued task and its
progress, never the code that runs jobs, so ``Job.cancel()`` reaches no higher than this.
"""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.utils import timezone

from pgbulk import locks, progress
from pgbulk.models import Job, Status
from pgbulk.signals import emit


def cancel(job: Job, by: Any = None) -> bool:
    """Cancel a queued job now, or ask a running one to stop at its next chunk;
    True if it was still queued or running. ``by`` (a user) is recorded."""
    using = job._state.db or "default"
    who = by if getattr(by, "is_authenticated", False) else None
    asked = {"cancel_requested": True, "cancelled_by": who, "cancelled_at": timezone.now()}
    with transaction.atomic(using=using):
        current = Job.objects.using(using).select_for_update().filter(pk=job.pk).first()
        if current is None or current.is_terminal:
            stopped = False
        elif current.status == Status.QUEUED:
            stopped = True
            Job.objects.using(using).filter(pk=job.pk).update(
                status=Status.CANCELLED, finished_at=timezone.now(),
                message=queued_cancel_message(current), attempt=current.attempt + 1, **asked)
            locks.release_job(job.id, using=using)
            cancel_queued_task(current)
            current.refresh_from_db()
            emit(current, "cancel", using=using)
        else:
            stopped = True
            if not current.cancel_requested:
                Job.objects.using(using).filter(pk=job.pk).update(**asked)
    job.refresh_from_db()
    if stopped and job.status == Status.RUNNING:
        progress.snapshot(job)  # a job whose worker is lost ends "cancelled" at once
        job.refresh_from_db()
    return stopped


def queued_cancel_message(job: Job) -> str:
    if not job.done:
        return "Cancelled before it started; nothing was changed."
    return (f"Cancelled while waiting to resume: {job.done:,} of {job.total:,} records were "
            "changed, the rest were not.")


def cancel_queued_task(job: Job) -> None:
    """Cancel the job's Procrastinate task, if it has one (still waiting: it never runs)."""
    if job.procrastinate_job_id is None:
        return
    from procrastinate.contrib.django import app

    app.job_manager.cancel_job_by_id(job.procrastinate_job_id)
