"""Benchmark pgbulk against baselines run in the same process; write JSON and a PNG chart.

Cases (targets from the engine issue):
- queryset strategy, 100k books: launch-to-terminal / one raw UPDATE ... = ANY(...)  (<= 2.0)
- save strategy, 10k books, atomic: rows/s / the hand-written full_clean()+save() loop  (>= 1.5)
- launch latency for 10k and 100k selected books                                (<= 0.2 s, <= 1.5 s)
- worker peak RSS on 100k and 1M books                                           (< 200 MB, within 10%)
- one sweep with 1M reservations of 10 live jobs (their locks held), old enough for
  CONFLICT_TTL; baseline: the same sweep over an empty lock table                (<= 0.2 s)

Method: baseline and pgbulk runs alternate, each after a VACUUM (ANALYZE) of the
tables involved, and each side's best run counts; a job's end is the worker's
own ``finished_at``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand
from django.db import connection, transaction
from django.test.utils import override_settings

import pgbulk
from pgbulk.conf import pgbulk_settings
from testproject.library.models import Book

ROOT = Path(__file__).resolve().parents[4]
CASES = ["queryset", "save", "launch", "rss", "sweep"]


def vacuum() -> None:
    """Start every measured run from the same table state (no dead rows left by the last)."""
    with connection.cursor() as cursor:
        cursor.execute("VACUUM (ANALYZE) library_book, library_book_genres, pgbulk_reservation")


def best_of(runs: int, measure) -> float:
    times = []
    for _ in range(runs):
        vacuum()
        times.append(measure())
    return min(times)


def best_of_pair(runs: int, baseline, candidate) -> tuple[float, float]:
    """Best of ``runs`` for each, interleaved so neither side gets the fresher tables."""
    base, cand = [], []
    for _ in range(runs):
        vacuum()
        base.append(baseline())
        vacuum()
        cand.append(candidate())
    return min(base), min(cand)


class Worker:
    """A worker subprocess whose peak RSS can be read from /proc."""

    def __init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(ROOT / "manage.py"), "procrastinate", "worker",
             "--queues", "pgbulk", "--concurrency", "1"],
            cwd=ROOT, env={**os.environ, "DJANGO_DEBUG": "0"},
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


class Command(BaseCommand):
    help = "Run pgbulk's benchmarks; write benchmarks/results.json and benchmarks/results.png."

    def add_arguments(self, parser):
        parser.add_argument("--million", action="store_true",
                            help="also measure worker RSS on 1M books (seeds 1M books)")
        parser.add_argument("--runs", type=int, default=5)
        parser.add_argument("--out", default=str(ROOT / "benchmarks"))
        parser.add_argument("--case", action="append", choices=CASES,
                            help="run only this case (repeatable); prints, writes no files")

    def handle(self, *args, million: bool, runs: int, out: str, case: list[str] | None,
               **options):
        if settings.DEBUG:
            self.stderr.write("run with DJANGO_DEBUG=0 (./dev bench does)")
            sys.exit(2)
        needed = 1_000_000 if million else 100_000
        if Book.objects.count() < needed:
            call_command("seed_library", books=needed)
        results: dict = {"runs": runs, "chunk_size": pgbulk_settings.CHUNK_SIZE,
                         "queryset_chunk_size": pgbulk_settings.QUERYSET_CHUNK_SIZE}
        cases = case or CASES
        with override_settings(PGBULK={**settings.PGBULK, "ASYNC_ENABLED": True}):
            worker = Worker()
            try:
                if "queryset" in cases:
                    results["queryset_100k"] = self.queryset_case(runs)
                if "save" in cases:
                    results["save_10k"] = self.save_case(runs)
                if "launch" in cases:
                    results["launch_latency"] = self.launch_case(runs)
            finally:
                worker.stop()
            if "rss" in cases:
                results["worker_rss_mb"] = self.rss_case(million)
            if "sweep" in cases:
                results["sweep_1m_live"] = self.sweep_case(runs)
        if case:
            self.stdout.write(json.dumps(results, indent=2))
            return
        out_dir = Path(out)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "results.json").write_text(json.dumps(results, indent=2) + "\n")
        from testproject.library.benchmark_chart import draw

        draw(results, out_dir / "results.png")
        self.stdout.write(json.dumps(results, indent=2))

    def ids(self, count: int) -> list[int]:
        return list(Book.objects.order_by("pk").values_list("pk", flat=True)[:count])

    def queryset_case(self, runs: int) -> dict:
        ids = self.ids(100_000)

        def raw_update() -> float:
            with transaction.atomic(), connection.cursor() as cursor:
                start = time.perf_counter()
                cursor.execute("UPDATE library_book SET status = 'archived', in_print = false "
                               "WHERE id = ANY(%s)", [ids])
                return time.perf_counter() - start

        books = Book.objects.filter(pk__lte=ids[-1])
        values = iter([{"status": s, "in_print": False} for s in ("draft", "archived") * runs])
        baseline, pgbulk_time = best_of_pair(
            runs, raw_update, lambda: run_job(books, next(values), strategy="queryset"))
        return {"rows": len(ids), "raw_update_s": round(baseline, 3),
                "pgbulk_s": round(pgbulk_time, 3), "ratio": round(pgbulk_time / baseline, 2),
                "target_ratio_max": 2.0}

    def save_case(self, runs: int) -> dict:
        """The loop a developer would write by hand, against an atomic save-strategy job:
        both change ``status`` on the same 10k books, selected as the list view does."""
        ids = self.ids(10_000)
        books = Book.objects.select_related("author").prefetch_related("genres").filter(
            pk__lte=ids[-1])
        statuses = iter(["published", "draft"] * runs)

        def hand_loop() -> float:
            value = next(statuses)
            start = time.perf_counter()
            with transaction.atomic():
                for book in books:
                    book.status = value
                    book.full_clean()
                    book.save()
            return time.perf_counter() - start

        baseline, pgbulk_time = best_of_pair(
            runs, hand_loop, lambda: run_job(books, {"status": next(statuses)}, strategy="save"))
        return {"rows": len(ids), "hand_loop_rows_per_s": round(len(ids) / baseline),
                "pgbulk_rows_per_s": round(len(ids) / pgbulk_time),
                "ratio": round(baseline / pgbulk_time, 2), "target_ratio_min": 1.5}

    def launch_case(self, runs: int) -> dict:
        figures = {}
        with override_settings(PGBULK={**settings.PGBULK, "ASYNC_ENABLED": True,
                                       "QUEUE": "benchmark-held"}):
            for count, target in ((10_000, 0.2), (100_000, 1.5)):
                books = Book.objects.filter(pk__lte=self.ids(count)[-1])

                def launch(books=books) -> float:
                    start = time.perf_counter()
                    job = pgbulk.bulk_update(books, {"price": 1}, run="async")
                    elapsed = time.perf_counter() - start
                    job.cancel()
                    return elapsed

                figures[f"{count}"] = {"seconds": round(best_of(runs, launch), 3),
                                       "target_max_s": target}
        return figures

    def rss_case(self, million: bool) -> dict:
        figures = {}
        sizes = [100_000, 1_000_000] if million else [100_000]
        for count in sizes:
            worker = Worker()
            try:
                books = Book.objects.filter(pk__lte=self.ids(count)[-1])
                run_job(books, {"price": 3}, strategy="queryset", atomic=False)
                figures[f"{count}"] = round(worker.peak_rss_mb(), 1)
            finally:
                worker.stop()
        figures["target_max_mb"] = 200
        return figures

    def sweep_case(self, runs: int) -> dict:
        """The sweep over 1M reservations of 10 live jobs (an hour old: past CONFLICT_TTL)."""
        import psycopg

        from pgbulk.models import Job
        from pgbulk.sweep import sweep

        def one_sweep() -> float:
            start = time.perf_counter()
            report = sweep(max_task_duration=10**7)  # long jobs, not stuck ones
            elapsed = time.perf_counter() - start
            if report["failed"] or report["resumed"] or report["released"]:
                raise RuntimeError(f"the sweep touched live jobs: {report}")
            return elapsed

        empty = best_of(runs, one_sweep)
        jobs = [Job.objects.create(kind="update", task_name="pgbulk.tasks.bulk_update_task",
                                   model="library.Book", status="running", total=100_000)
                for _ in range(10)]
        dsn = connection.get_connection_params()
        holder = psycopg.connect(**{k: v for k, v in dsn.items() if k != "cursor_factory"},
                                 autocommit=True)
        try:
            for job in jobs:  # what their runners hold: the jobs are alive
                holder.execute("SELECT pg_advisory_lock(pgbulk_job_lock_key(%s))", [job.id])
            with connection.cursor() as cursor:
                cursor.execute(
                    "INSERT INTO pgbulk_reservation (job_id, seq, model, object_pk, is_target,"
                    " exclusive, created_at) SELECT j, n, 'bench.Row', j::text || ':' || n,"
                    " true, true, now() - interval '2 hours' FROM unnest(%s::uuid[]) AS j,"
                    " generate_series(1, 100000) AS n", [[job.id for job in jobs]])
                cursor.execute("UPDATE pgbulk_job SET started_at = now() - interval '2 hours',"
                               " attempt_started_at = now() - interval '2 hours'"
                               " WHERE id = ANY(%s)", [[job.id for job in jobs]])
            loaded = best_of(runs, one_sweep)
        finally:
            holder.close()
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM pgbulk_reservation WHERE job_id = ANY(%s)",
                               [[job.id for job in jobs]])
            Job.objects.filter(pk__in=[job.pk for job in jobs]).delete()
        return {"reservations": 1_000_000, "live_jobs": len(jobs),
                "empty_table_s": round(empty, 4), "seconds": round(loaded, 4),
                "ratio": round(loaded / empty, 2), "target_max_s": 0.2}
