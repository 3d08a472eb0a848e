"""Lifecycle events of jobs, sent after the transaction that caused them commits."""

from __future__ import annotations

import copy
import logging

from django.db import transaction
from django.dispatch import Signal
from django.utils.module_loading import import_string

from pgbulk.conf import pgbulk_settings

logger = logging.getLogger("pgbulk")

#: ``job_event.send(sender=Job, job=job, event=...)``; events: create, progress,
#: complete, fail, cancel, cleanup.
job_event = Signal()

EVENTS = ("create", "progress", "complete", "fail", "cancel", "cleanup")


def emit(job, event: str, *, using: str = "default") -> None:
    """Send ``event`` for ``job`` (signal and manager hook) once the transaction commits."""
    assert event in EVENTS, event
    snapshot = copy.copy(job)  # listeners see the job as it was when the event happened
    transaction.on_commit(lambda: _deliver(snapshot, event), using=using)


def _deliver(job, event: str) -> None:
    """Every listener hears the event, whatever another one raises; a listener
    never changes a job's outcome."""
    from pgbulk.models import Job

    for receiver, result in job_event.send_robust(sender=Job, job=job, event=event):
        if isinstance(result, Exception):
            logger.error("pgbulk: listener %r failed for %s of job %s", receiver, event, job.id,
                         exc_info=result)
    try:
        manager_path = job.params.get("manager") or pgbulk_settings.ASYNC_MANAGER_DEFAULT
        import_string(manager_path)().on_event(job, event)
    except Exception:
        logger.exception("pgbulk: the manager's hook failed for %s of job %s", event, job.id)
