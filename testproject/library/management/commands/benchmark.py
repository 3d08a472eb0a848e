"""Benchmark pgbulk against baselines run in the same process; write JSON and a PNG chart.

Cases (targets from the speed issues):
- queryset strategy, 100k books (and 1M with --million): launch-to-terminal time /
  one raw UPDATE ... WHERE id = ANY(...) of the same rows                  (<= 1.5)
- save strategy, 10k books, atomic: rows/s / the hand-written loop
  (full_clean() + save() per book in one transaction)                      (>= 1.5)
- fan-out: a chunked save-strategy job on 10k books with parallel=2 on two
  workers, rows/s / the same job with parallel=1                           (>= 1.4)
- launch latency for 10k and 100k selected books                           (<= 0.2 s, <= 1.5 s)
- launch of a 1M-book select-all over HTTP through the list view (--million) (<= 3 s)
- worker peak RSS on 100k and 1M books                                     (< 200 MB, within 10%)
- one sweep with 1M reservations of 10 live jobs, against an empty table   (<= 0.2 s)
- the change log's cost, end to end: the queryset strategy on 100k books and the save
  strategy on 10k, log on / log off                                         (<= 1.35, <= 1.10)
- preview of a 100k-book edit, through Python and through the list view    (<= 0.5 s each)

The speed targets above are measured with the change log off (RECORD_CHANGES False);
the change log case measures what turning it on costs.

Method: see testproject/library/bench.py (interleaved best of N, with the spread).
"""

from __future__ import annotations

import json
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
from testproject.library.bench import ROOT, Worker, best_of, pair, rows_per_s, run_job
from testproject.library.models import Book, Genre

CASES = ["queryset", "save", "fanout", "launch", "http", "rss", "sweep", "changelog",
         "preview"]


class Command(BaseCommand):
    help = "Run pgbulk's benchmarks; write benchmarks/results.json and benchmarks/results.png."

    def add_arguments(self, parser):
        parser.add_argument("--million", action="store_true",
                            help="also run the 1M-book cases (seeds 1M books)")
        parser.add_argument("--runs", type=int, default=5)
        parser.add_argument("--out", default=str(ROOT / "benchmarks"))
        parser.add_argument("--case", action="append", choices=CASES,
                            help="run only this case (repeatable); prints, writes no files")
        parser.add_argument("--record", action="store_true",
                            help="with --case: merge the cases' figures into results.json "
                                 "(and redraw the chart)")

    def handle(self, *args, million: bool, runs: int, out: str, case: list[str] | None,
               record: bool, **options):
        if settings.DEBUG:
            self.stderr.write("run with DJANGO_DEBUG=0 (./dev bench does)")
            sys.exit(2)
        needed = 1_000_000 if million else 100_000
        if Book.objects.count() < needed:
            call_command("seed_library", books=needed)
        results: dict = {"runs": runs, "chunk_size": pgbulk_settings.CHUNK_SIZE,
                         "queryset_chunk_size": pgbulk_settings.QUERYSET_CHUNK_SIZE}
        cases = case or CASES
        with override_settings(PGBULK={**settings.PGBULK, "ASYNC_ENABLED": True,
                                       "RECORD_CHANGES": False}):
            results.update(self.worker_cases(cases, runs, million))
            if "fanout" in cases:
                results["fanout_10k"] = self.fanout_case(runs)
            if "http" in cases and million:
                results["launch_http_1m"] = self.http_case(runs)
            if "rss" in cases:
                results["worker_rss_mb"] = self.rss_case(million)
            if "sweep" in cases:
                results["sweep_1m_live"] = self.sweep_case(runs)
            if "preview" in cases:
                results.update(self.preview_cases(runs))
        self.stdout.write(json.dumps(results, indent=2))
        if not case or record:
            self.write(results if not case else self.figures_only(results), Path(out))

    def worker_cases(self, cases: list[str], runs: int, million: bool) -> dict:
        results: dict = {}
        worker = Worker()
        try:
            if "queryset" in cases:
                results["queryset_100k"] = self.queryset_case(runs, 100_000)
                if million:
                    results["queryset_1m"] = self.queryset_case(max(runs // 2, 2), 1_000_000)
            if "save" in cases:
                results["save_10k"] = self.save_case(runs)
            if "launch" in cases:
                results["launch_latency"] = self.launch_case(runs)
            if "changelog" in cases:
                results["change_log_cost"] = self.changelog_case(runs)
        finally:
            worker.stop()
        return results

    def write(self, results: dict, out_dir: Path) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        previous = out_dir / "results.json"
        merged = {**json.loads(previous.read_text()), **results} if previous.exists() else results
        previous.write_text(json.dumps(merged, indent=2) + "\n")
        from testproject.library.benchmark_chart import draw

        draw(merged, out_dir / "results.png")

    def ids(self, count: int) -> list[int]:
        return list(Book.objects.order_by("pk").values_list("pk", flat=True)[:count])

    def queryset_case(self, runs: int, rows: int) -> dict:
        ids = self.ids(rows)

        def raw_update() -> float:
            with transaction.atomic(), connection.cursor() as cursor:
                start = time.perf_counter()
                cursor.execute("UPDATE library_book SET status = 'archived', in_print = false "
                               "WHERE id = ANY(%s)", [ids])
                return time.perf_counter() - start

        books = Book.objects.filter(pk__lte=ids[-1])
        values = iter([{"status": s, "in_print": False} for s in ("draft", "archived") * runs])
        base, job = pair(runs, raw_update,
                         lambda: run_job(books, next(values), strategy="queryset"))
        return {"rows": len(ids), "raw_update": base, "pgbulk": job,
                "raw_update_rows_per_s": rows_per_s(len(ids), base),
                "pgbulk_rows_per_s": rows_per_s(len(ids), job),
                "ratio": round(job["best_s"] / base["best_s"], 2), "target_ratio_max": 1.5}

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

        base, job = pair(runs, hand_loop,
                         lambda: run_job(books, {"status": next(statuses)}, strategy="save"))
        return {"rows": len(ids), "hand_loop": base, "pgbulk": job,
                "hand_loop_rows_per_s": rows_per_s(len(ids), base),
                "pgbulk_rows_per_s": rows_per_s(len(ids), job),
                "ratio": round(base["best_s"] / job["best_s"], 2), "target_ratio_min": 1.5}

    def changelog_case(self, runs: int) -> dict:
        """The same job with the change log on and off: the queryset strategy on 100k
        books, the save strategy (atomic, selected as the list view does) on 10k, and
        the queryset strategy setting a many-to-many field on 20k (its log reads each
        record's related keys before and after)."""
        genres = list(Genre.objects.order_by("pk").values_list("pk", flat=True)[:2])
        with connection.cursor() as cursor:  # each run starts from the same (empty) log,
            cursor.execute("TRUNCATE pgbulk_change")  # not the logs of every earlier run
        cases = (
            ("queryset_100k", "queryset", 100_000, [{"status": s} for s in ("published", "draft")], 1.35),
            ("save_10k", "save", 10_000, [{"status": s} for s in ("published", "draft")], 1.10),
            ("queryset_m2m_20k", "queryset", 20_000,
             [{"genres": {"set": [g]}} for g in genres], 1.35),
        )
        figures = {}
        for name, strategy, rows, changes, target in cases:
            ids = self.ids(rows)
            books = Book.objects.select_related("author").prefetch_related("genres").filter(
                pk__lte=ids[-1])
            values = iter(changes * runs)

            def job(log: bool, strategy=strategy, books=books, values=values) -> float:
                with override_settings(PGBULK={**settings.PGBULK, "RECORD_CHANGES": log}):
                    return run_job(books, next(values), strategy=strategy)

            off, on = pair(runs, lambda job=job: job(False), lambda job=job: job(True))
            figures[name] = {
                "rows": rows, "log_off": off, "log_on": on,
                "ratio": round(on["best_s"] / off["best_s"], 2), "target_ratio_max": target}
        return figures

    def fanout_case(self, runs: int) -> dict:
        """A chunked save-strategy job on two workers: parallel=2 against parallel=1."""
        ids = self.ids(10_000)
        books = Book.objects.select_related("author").prefetch_related("genres").filter(
            pk__lte=ids[-1])
        prices = iter(range(30, 30 + 2 * runs))
        workers = [Worker("bench-fanout"), Worker("bench-fanout")]
        try:
            with override_settings(PGBULK={**settings.PGBULK, "ASYNC_ENABLED": True,
                                           "QUEUE": "bench-fanout"}):
                one, two = pair(runs, *(
                    lambda parallel=parallel: run_job(books, {"price": next(prices)},
                                                      atomic=False, parallel=parallel)
                    for parallel in (1, 2)))
        finally:
            for worker in workers:
                worker.stop()
        return {"rows": len(ids), "workers": 2, "parallel_1": one, "parallel_2": two,
                "parallel_1_rows_per_s": rows_per_s(len(ids), one),
                "parallel_2_rows_per_s": rows_per_s(len(ids), two),
                "ratio": round(one["best_s"] / two["best_s"], 2), "target_ratio_min": 1.4}

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

                figures[f"{count}"] = {**best_of(runs, launch), "target_max_s": target}
        return figures

    def http_case(self, runs: int) -> dict:
        """Select all 1M books in the list view and launch an edit: one HTTP request."""
        from testproject.library.bench_http import ListViewClient

        with ListViewClient(queue="benchmark-held") as client:
            figures = best_of(runs, client.launch_select_all)
        return {"rows": Book.objects.count(), **figures, "target_max_s": 3.0}

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

    def figures_only(self, results: dict) -> dict:
        """A --case run's figures, without the run-wide keys a full run's ``runs`` describes."""
        return {key: value for key, value in results.items()
                if key not in ("runs", "chunk_size", "queryset_chunk_size")}

    def preview_cases(self, runs: int) -> dict:
        """``pgbulk.preview`` of a status change on 100k books: from Python, then as the
        Preview button of the list view (select all, one HTTP request)."""
        from testproject.library.bench_http import ListViewClient

        books = Book.objects.select_related("author").prefetch_related("genres").filter(
            pk__lte=self.ids(100_000)[-1])

        def python() -> float:
            start = time.perf_counter()
            result = pgbulk.preview(books, {"status": "published"})
            elapsed = time.perf_counter() - start
            if result["total"] != 100_000 or result["failures"]["sampled"] != 100:
                raise RuntimeError(f"unexpected preview: {result['total']} records")
            return elapsed

        figures = {"preview_100k": {"rows": books.count(), **best_of(runs, python),
                                    "target_max_s": 0.5}}
        with ListViewClient(queue="benchmark-held") as client:
            figures["preview_http_100k"] = {"rows": Book.objects.count(),
                                            **best_of(runs, client.preview_select_all),
                                            "target_max_s": 0.5}
        return figures

    def sweep_case(self, runs: int) -> dict:
        from testproject.library.bench_sweep import sweep_with_live_reservations

        return sweep_with_live_reservations(runs)
