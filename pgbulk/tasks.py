"""Procrastinate tasks: thin wrappers that run a pgbulk job in the worker."""

from __future__ import annotations

from django.db import close_old_connections
from procrastinate import JobContext
from procrastinate.contrib.django import app

from pgbulk import execute
from pgbulk import sweep as sweep_module
from pgbulk.conf import pgbulk_settings
from pgbulk.exceptions import JobFailed
from pgbulk.models import Status


def run_in_worker(context: JobContext, job_id: str) -> None:
    close_old_connections()
    try:
        job = execute.run(job_id, should_abort=context.should_abort)
    finally:
        close_old_connections()
    if job is not None and job.status == Status.FAILED:
        raise JobFailed(job.message)  # the queue records a failure too, never a success


@app.task(name="pgbulk.tasks.bulk_update_task", queue="pgbulk", pass_context=True)
def bulk_update_task(context: JobContext, job_id: str) -> None:
    """Apply a bulk update job (see pgbulk.bulk_update)."""
    run_in_worker(context, job_id)


@app.task(name="pgbulk.tasks.bulk_delete_task", queue="pgbulk", pass_context=True)
def bulk_delete_task(context: JobContext, job_id: str) -> None:
    """Apply a bulk delete job (see pgbulk.bulk_delete)."""
    run_in_worker(context, job_id)


def sweep_cron(seconds: int) -> str:
    """A cron expression running every ``seconds`` (a seconds field when below a minute)."""
    seconds = max(int(seconds), 1)
    if seconds % 60 == 0:
        return f"*/{min(seconds // 60, 59)} * * * *"
    return f"* * * * * */{min(seconds, 59)}"


@app.periodic(
    cron=sweep_cron(pgbulk_settings.CLEANUP_SCHEDULE_INTERVAL), periodic_id="pgbulk",
    queue=pgbulk_settings.QUEUE,
)
@app.task(name="pgbulk.tasks.sweep", queue="pgbulk", pass_context=False)
def sweep(timestamp: int) -> None:
    """Periodic safety net: resume or fail jobs of dead workers, release orphaned locks."""
    close_old_connections()
    try:
        sweep_module.sweep()
    finally:
        close_old_connections()


TASKS = {task.name: task for task in (bulk_update_task, bulk_delete_task)}


def by_name(name: str):
    return TASKS[name]
