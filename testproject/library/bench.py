"""The measuring parts of ``manage.py benchmark``: interleaved best-of-N runs, workers, jobs.

Every case compares pgbulk with a baseline measured in the same run: the two
alternate, each after a VACUUM (ANALYZE) of the tables involved; each side's
best run counts and its spread ((worst - best) / best) is reported beside it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from django.db import connection

import pgbulk

ROOT = Path(__file__).resolve().parents[2]


def vacuum() -> None:
    """Start every measured run from the same table state (no dead rows left by the last)."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) library_book, library_book_genres, pgbulk_reservation, "
                       "pgbulk_change")


def summary(times: list[float]) -> dict:
    best = min(times)
    return {"best_s": round(best, 4), "spread": round((max(times) - best) / best, 2)}


def best_of(runs: int, measure: Callable[[], float]) -> dict:
    times = []
    for _ in range(runs):
        vacuum()
        times.append(measure())
    return summary(times)


def pair(runs: int, baseline: Callable[[], float], candidate: Callable[[], float]) -> tuple:
    """Best of ``runs`` for each, interleaved so neither side gets the fresher tables."""
    base, cand = [], []
    for _ in range(runs):
        vacuum()
        base.append(baseline())
        vacuum()
        cand.append(candidate())
    return summary(base), summary(cand)


class Worker:
    """A worker subprocess whose peak RSS can be read from /proc."""

    def __init__(self, queue: str = "pgbulk", env: dict[str, str] | None = None) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "procrastinate", "worker",
             "--queues", queue, "--concurrency", "1"],
            cwd=ROOT, env={**os.environ, "DJANGO_DEBUG": "0", "PGBULK_QUEUE": queue,
                           **(env or {})},
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        time.sleep(3)

    def peak_rss_mb(self) -> float:
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(30)


def run_job(queryset, values, **options) -> float:
    """Launch-to-terminal seconds of one async job (raises if it did not succeed).

    The end is the worker's own ``finished_at`` (same clock), so the lazy
    polling here neither loads the machine nor adds its interval to the figure.
    """
    start = time.time()
    job = pgbulk.bulk_update(queryset, values, run="async", **options)
    while not job.is_terminal:
        time.sleep(0.2)
        job.refresh_from_db(fields=["status", "message", "finished_at"])
    if job.status != "succeeded":
        raise RuntimeError(f"benchmark job {job.id} {job.status}: {job.message}")
    return job.finished_at.timestamp() - start


def rows_per_s(rows: int, figures: dict) -> int:
    return round(rows / figures["best_s"])
