"""Run pgbulk's safety-net sweep by hand and report what it did."""

from __future__ import annotations

import json

from django.core.management.base import BaseCommand

from pgbulk.sweep import sweep


class Command(BaseCommand):
    help = ("Resume or fail jobs whose worker died, fail jobs whose task vanished, flag stuck "
            "jobs, release orphaned reservations and expire old progress and history.")

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="report, change nothing")
        parser.add_argument("--json", action="store_true", help="print the report as JSON")

    def handle(self, *args, dry_run: bool, json: bool, **options):
        report = sweep(dry_run=dry_run)
        if json:
            self.stdout.write(_json(report))
            return
        if report.get("skipped"):
            self.stdout.write("Another sweep is running; nothing done.")
            return
        verb = "would be" if dry_run else "were"
        self.stdout.write(
            f"{len(report['resumed'])} job(s) {verb} resumed, {len(report['failed'])} failed, "
            f"{len(report['cancelled'])} cancelled, {len(report['flagged'])} flagged as stuck; "
            f"{report['released']} reservation(s) released; {report['deleted_progress']} "
            f"progress row(s), {report['deleted_jobs']} old job(s) and "
            f"{report['purged_changes']} change log row(s) deleted."
        )
        for key in ("resumed", "failed", "cancelled", "flagged"):
            for job_id in report[key]:
                self.stdout.write(f"  {key}: {job_id}")


def _json(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True)
