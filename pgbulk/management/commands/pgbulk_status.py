"""Show active jobs, reservations per job, stale jobs and worker heartbeats."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand
from django.db import connection

SECTIONS = {
    "active_jobs": "SELECT id, kind, model, status, done, total, percent, alive, worker_id, "
                   "running_for FROM pgbulk_active_jobs ORDER BY created_at",
    "locks": "SELECT job_id, status, model, targets, descendants FROM pgbulk_lock_summary "
             "ORDER BY job_id, model",
    "stale_jobs": "SELECT id, status, model, reason FROM pgbulk_stale_jobs",
    "workers": "SELECT id, last_heartbeat, now() - last_heartbeat AS age "
               "FROM procrastinate_workers ORDER BY id",
}


def read_status() -> dict[str, list[dict]]:
    status = {}
    with connection.cursor() as cursor:
        for name, sql in SECTIONS.items():
            cursor.execute(sql)
            columns = [c.name for c in cursor.description]
            status[name] = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return status


class Command(BaseCommand):
    help = "Active pgbulk jobs with progress, reservations per job, stale jobs, worker heartbeats."

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true")

    def handle(self, *args, json: bool, **options):
        status = read_status()
        if json:
            self.stdout.write(_dumps(status))
            return
        for name, rows in status.items():
            self.stdout.write(self.style.MIGRATE_HEADING(f"{name.replace('_', ' ')}: {len(rows)}"))
            for row in rows:
                self.stdout.write("  " + "  ".join(f"{k}={v}" for k, v in row.items()))


def _dumps(status: dict) -> str:
    return json.dumps(status, indent=2, default=str)
