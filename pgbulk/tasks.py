"""pgbulk's own tasks: bulk update and bulk delete (two job tasks), and the periodic sweep."""

from __future__ import annotations

from django.db import close_old_connections
from procrastinate.contrib.django import app

from pgbulk import sweep as sweep_module
from pgbulk.conf import pgbulk_settings
from pgbulk.exceptions import RecordFailed
from pgbulk.job_tasks import JobHandle, job_task
from pgbulk.strategies import operation_for
from pgbulk.sweep import sweep_cron


def apply_operation(job: JobHandle) -> None:
    """Walk the reserved records chunk by chunk and update or delete them."""
    operation = operation_for(job.job, job.using)
    operation.tick = job.tick
    operation.owns_transactions = job.runtime.separate
    for rows in job.chunk_rows(operation.chunk_size):
        try:
            changed, errors = operation.apply(rows, per_record=not job.atomic)
        except RecordFailed as failure:  # atomic: the first failing record ends the job
            job.fail_records(failure.entries)
            raise
        job.fail_records(errors)
        job.skip_records(operation.skipped)
        if errors and job.atomic:
            raise RecordFailed(errors)
        job.advance(changed)
    # The job's message is made from its committed counts (all its runners').


@job_task(name="pgbulk.tasks.bulk_update_task")
def bulk_update_task(job: JobHandle) -> None:
    """Apply a bulk update job (see pgbulk.bulk_update)."""
    return apply_operation(job)


@job_task(name="pgbulk.tasks.bulk_delete_task")
def bulk_delete_task(job: JobHandle) -> None:
    """Apply a bulk delete job (see pgbulk.bulk_delete)."""
    return apply_operation(job)


@app.periodic(
    cron=sweep_cron(pgbulk_settings.CLEANUP_SCHEDULE_INTERVAL), periodic_id="pgbulk",
    queue=pgbulk_settings.QUEUE,
)
@app.task(name="pgbulk.tasks.sweep", queue=pgbulk_settings.QUEUE, pass_context=False)
def sweep(timestamp: int) -> None:
    """Periodic safety net: resume or fail jobs of dead workers, release orphaned locks."""
    close_old_connections()
    try:
        sweep_module.sweep()
    finally:
        close_old_connections()

