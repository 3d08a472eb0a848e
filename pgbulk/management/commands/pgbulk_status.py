"""Show active jobs, reservations per job, stale jobs and worker heartbeats."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand
from django.db import connection

from pgbulk.conf import pgbulk_settings
from pgbulk.sqlfiles import query

#: Section name: its named query in sql/queries.sql.
SECTIONS = {"active_jobs": "status_active_jobs", "locks": "status_locks",
            "stale_jobs": "status_stale_jobs", "workers": "status_workers"}


def read_status() -> dict[str, list[dict]]:
    ages = {"max_task_duration": pgbulk_settings.MAX_TASK_DURATION,
            "sync_start_timeout": pgbulk_settings.SYNC_START_TIMEOUT}
    status = {}
    with connection.cursor() as cursor:
        for name, query_name in SECTIONS.items():
            cursor.execute(query(query_name), ages if name == "stale_jobs" else None)
            columns = [c.name for c in cursor.description]
            status[name] = [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]
    return status


class Command(BaseCommand):
    help = ("Active pgbulk jobs with progress, reservations per job, stale jobs (by the "
            "project's MAX_TASK_DURATION and SYNC_START_TIMEOUT), worker heartbeats.")

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
