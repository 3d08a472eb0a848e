"""Draw the benchmark results as a PNG bar chart (Pillow, from the 'bench' extra)."""

from __future__ import annotations

from pathlib import Path


def bars(results: dict) -> list[tuple[str, float, float, bool]]:
    """(label, measured, target, higher_is_better) per case."""
    rows = [
        ("queryset 100k: time / raw UPDATE", results["queryset_100k"]["ratio"], 2.0, False),
        ("save 10k: rows/s / plain loop", results["save_10k"]["ratio"], 0.8, True),
    ]
    for count, figure in results["launch_latency"].items():
        rows.append((f"launch {int(count):,} (s)", figure["seconds"], figure["target_max_s"],
                     False))
    for count, mb in results["worker_rss_mb"].items():
        if count.isdigit():
            rows.append((f"worker RSS {int(count):,} (100 MB)", mb / 100, 2.0, False))
    return rows


def draw(results: dict, path: Path) -> None:
    from PIL import Image, ImageDraw

    rows = bars(results)
    width, row_h, left = 900, 46, 330
    image = Image.new("RGB", (width, 60 + row_h * len(rows)), "white")
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
    image.save(path)
