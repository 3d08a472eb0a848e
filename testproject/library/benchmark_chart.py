"""Draw the benchmark results as a PNG bar chart (Pillow, from the 'bench' extra)."""

from __future__ import annotations

from pathlib import Path

RATIOS = [  # (results key, label, higher is better)
    ("queryset_100k", "queryset 100k: time / raw UPDATE", False),
    ("queryset_1m", "queryset 1M: time / raw UPDATE", False),
    ("save_10k", "save 10k: rows/s / hand loop", True),
    ("fanout_10k", "2 workers: rows/s / 1 worker", True),
]


def bars(results: dict) -> list[tuple[str, float, float, bool]]:
    """(label, measured, target, higher_is_better) per case present in ``results``."""
    rows = []
    for key, label, higher in RATIOS:
        if key in results:
            case = results[key]
            target = case.get("target_ratio_min", case.get("target_ratio_max"))
            rows.append((label, case["ratio"], target, higher))
    for count, figure in results.get("launch_latency", {}).items():
        seconds = figure.get("best_s", figure.get("seconds"))
        rows.append((f"launch {int(count):,} (s)", seconds, figure["target_max_s"], False))
    if "launch_http_1m" in results:
        case = results["launch_http_1m"]
        rows.append(("launch 1M over HTTP (s)", case["best_s"], case["target_max_s"], False))
    for count, mb in results.get("worker_rss_mb", {}).items():
        if count.isdigit():
            rows.append((f"worker RSS {int(count):,} (100 MB)", mb / 100, 2.0, False))
    for key, label in (("preview_100k", "preview 100k, Python (s)"),
                       ("preview_http_100k", "preview 100k, list view (s)")):
        if key in results:
            rows.append((label, results[key]["best_s"], results[key]["target_max_s"], False))
    if "sweep_1m_live" in results:
        case = results["sweep_1m_live"]
        rows.append(("sweep, 1M live reservations (s)", case["loaded"]["best_s"],
                     case["target_max_s"], False))
    return rows


RATES = [  # (results key, label, baseline rows/s key, pgbulk rows/s key)
    ("queryset_100k", "queryset 100k", "raw_update_rows_per_s", "pgbulk_rows_per_s"),
    ("queryset_1m", "queryset 1M", "raw_update_rows_per_s", "pgbulk_rows_per_s"),
    ("save_10k", "save 10k", "hand_loop_rows_per_s", "pgbulk_rows_per_s"),
    ("fanout_10k", "save 10k chunked", "parallel_1_rows_per_s", "parallel_2_rows_per_s"),
]


def rates(results: dict) -> list[tuple[str, int, int]]:
    """(label, baseline rows/s, pgbulk rows/s) per case present in ``results``."""
    return [(label, results[key][base], results[key][ours])
            for key, label, base, ours in RATES if key in results and base in results[key]]


def draw(results: dict, path: Path) -> None:
    from PIL import Image, ImageDraw

    rows, speeds = bars(results), rates(results)
    width, row_h, left = 900, 46, 330
    height = 100 + row_h * len(rows) + 2 * row_h * len(speeds)
    image = Image.new("RGB", (width, height), "white")
    pen = ImageDraw.Draw(image)
    pen.text((10, 10), "pgbulk benchmarks (bar: measured, line: target)", fill="black")
    scale = (width - left - 40) / max(max(m, t) for _, m, t, _ in rows)
    for n, (label, measured, target, higher) in enumerate(rows):
        y = 45 + n * row_h
        ok = measured >= target if higher else measured <= target
        pen.text((10, y + 8), label, fill="black")
        pen.rectangle((left, y, left + measured * scale, y + 26),
                      fill="#2da44e" if ok else "#cf222e")
        pen.line((left + target * scale, y - 3, left + target * scale, y + 29),
                 fill="black", width=2)
        pen.text((left + measured * scale + 6, y + 8), f"{measured:g}", fill="black")
    top = 60 + row_h * len(rows)
    pen.text((10, top), "rows/s (grey: baseline in the same run; green: pgbulk; "
             "fan-out: 1 runner vs 2)", fill="black")
    for n, (label, base, ours) in enumerate(speeds):
        y = top + 30 + n * 2 * row_h
        unit = (width - left - 120) / max(base, ours)
        pen.text((10, y + 14), label, fill="black")
        for k, (value, colour) in enumerate(((base, "#8c959f"), (ours, "#2da44e"))):
            pen.rectangle((left, y + k * 24, left + value * unit, y + k * 24 + 20), fill=colour)
            pen.text((left + value * unit + 6, y + k * 24 + 4), f"{value:,}", fill="black")
    image.save(path)
