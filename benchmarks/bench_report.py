"""The survey report's weight and speed in headless Chromium, for a 500- and a 50,000-photo night.

Renders ``corrosion.inference.report_sample`` nights (thumbnails for at most ``report_max_images``
flagged photos, as the pipeline embeds) and measures: render time in Python, the file's size, the
browser's load time (navigation start to the load event, the table's first page drawn), the DOM's
size once loaded, and how long a sort and a filter of the whole table take. Figures are
written to ``bench_out/bench_report.json``; docs/batch-inference.md ("The report") quotes them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from corrosion.inference import report, report_browser, report_sample

MAX_IMAGES = 500  # configs/inference.yaml outputs.report_max_images


def _measure(driver, path: Path, repeats: int) -> dict:
    loads, sorts, filters = [], [], []
    for _ in range(repeats):
        driver.get(path.as_uri())
        loads.append(
            driver.execute_script(
                "const t = performance.getEntriesByType('navigation')[0]; return t.loadEventEnd - t.startTime;"
            )
        )
        sorts.append(
            driver.execute_script(
                "const b = document.querySelector('#photo-table th[data-key=\"p\"] button');"
                "const t = performance.now(); b.click(); return performance.now() - t;"
            )
        )
        filters.append(
            driver.execute_script(
                "const s = document.getElementById('f-search'); s.value = 'girder';"
                "const t = performance.now(); s.dispatchEvent(new Event('input')); return performance.now() - t;"
            )
        )
    info = driver.execute_script(
        "return {nodes: document.getElementsByTagName('*').length, images: document.images.length,"
        " loaded_images: [...document.images].filter(i => i.naturalWidth > 0).length,"
        " rows_in_dom: document.querySelectorAll('#photo-table tbody tr').length};"
    )
    return {
        "load_ms": round(statistics.median(loads)),
        "sort_ms": round(statistics.median(sorts)),
        "filter_ms": round(statistics.median(filters)),
        **info,
    }


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[500, 50_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default="bench_out")
    args = parser.parse_args(argv)
    found = report_browser.find_browser()
    results: dict = {"browser": None if isinstance(found, str) else found[0], "nights": {}}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        driver = None if isinstance(found, str) else report_browser.open_chromium(root / "profile", *found)
        try:
            for n in args.sizes:
                sample = report_sample.generate(n, root / str(n), max_images=MAX_IMAGES)
                path = root / str(n) / "index.html"
                started = time.monotonic()
                text = report.render_report(
                    "bench", sample.stats, sample.entries, str(path), {"classifier": "c"}, "now",
                    rows=sample.rows, changes=sample.changes, review=sample.review,
                )  # fmt: skip
                render_s = time.monotonic() - started
                path.write_text(text, encoding="utf-8")
                night = {"photos": n, "thumbnails": len(sample.entries), "render_s": round(render_s, 2),
                         "bytes": path.stat().st_size}  # fmt: skip
                if driver is not None:
                    night |= _measure(driver, path, args.repeats)
                results["nights"][str(n)] = night
                print(f"{n:>6} photos: " + ", ".join(f"{k} {v}" for k, v in night.items() if k != "photos"), flush=True)
        finally:
            if driver is not None:
                driver.quit()
    if isinstance(found, str):
        print(f"no browser measurements: {found}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_report.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    main()
