"""Benchmark case: one sweep over 1M reservations of live jobs, against an empty table."""

from __future__ import annotations

import time

import psycopg
from django.db import connection

from pgbulk.models import Job
from pgbulk.sweep import sweep
from testproject.library.bench import best_of


def one_sweep() -> float:
    start = time.perf_counter()
    report = sweep(max_task_duration=10**7)  # long jobs, not stuck ones
    elapsed = time.perf_counter() - start
    if report["failed"] or report["resumed"] or report["released"]:
        raise RuntimeError(f"the sweep touched live jobs: {report}")
    return elapsed


def sweep_with_live_reservations(runs: int, jobs: int = 10, per_job: int = 100_000) -> dict:
    """Reservations an hour old (past CONFLICT_TTL) of jobs whose runners hold their locks."""
    empty = best_of(runs, one_sweep)
    live = [Job.objects.create(kind="update", task_name="pgbulk.tasks.bulk_update_task",
                               model="library.Book", status="running", total=per_job)
            for _ in range(jobs)]
    ids = [job.id for job in live]
    params = connection.get_connection_params()
    holder = psycopg.connect(**{k: v for k, v in params.items() if k != "cursor_factory"},
                             autocommit=True)
    try:
        for job_id in ids:  # what their runners hold: the jobs are alive
            holder.execute("SELECT pg_advisory_lock(pgbulk_job_lock_key(%s))", [job_id])
        with connection.cursor() as cursor:
            cursor.execute(
                "INSERT INTO pgbulk_reservation (job_id, seq, model, object_pk, is_target,"
                " exclusive, created_at) SELECT j, n, 'bench.Row', j::text || ':' || n,"
                " true, true, now() - interval '2 hours' FROM unnest(%s::uuid[]) AS j,"
                " generate_series(1, %s) AS n", [ids, per_job])
            cursor.execute("UPDATE pgbulk_job SET started_at = now() - interval '2 hours',"
                           " attempt_started_at = now() - interval '2 hours'"
                           " WHERE id = ANY(%s)", [ids])
        loaded = best_of(runs, one_sweep)
    finally:
        holder.close()
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM pgbulk_reservation WHERE job_id = ANY(%s)", [ids])
        Job.objects.filter(pk__in=ids).delete()
    return {"reservations": jobs * per_job, "live_jobs": jobs, "empty_table": empty,
            "loaded": loaded, "ratio": round(loaded["best_s"] / empty["best_s"], 2),
            "target_max_s": 0.2}
