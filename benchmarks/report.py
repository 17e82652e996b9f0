"""The run report at 2,000 images: HTML bytes per page, time to write it, and time for headless
chromium to load the first page (DOMContentLoaded, load). Synthetic records (3 classes, boxes,
2% failed) and small overlay/heatmap PNGs (64x48 and 192x48)."""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from common import write_results

from cam_rt.runtime.batch.io import encode_png
from cam_rt.runtime.batch.report import PAGE_SIZE, write_run_report


def make_run(outdir: Path, count: int) -> None:
    rng = np.random.default_rng(0)
    overlay = encode_png(rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
    heatmap = encode_png(rng.integers(0, 256, (48, 192, 3), dtype=np.uint8))
    lines = []
    for i in range(count):
        name = f"img{i:05d}"
        if i % 50 == 7:
            lines.append({"name": name, "input": f"/in/{name}.jpg", "error": "corrupt image"})
            continue
        (outdir / f"{name}.overlay.png").write_bytes(overlay)
        (outdir / f"{name}.heatmap.png").write_bytes(heatmap)
        classes = [{"id": c, "name": f"class {c}", "probability": 0.5} for c in range(3)]
        lines.append(
            {
                "name": name,
                "input": f"/in/{name}.jpg",
                "size": [48, 64],
                "classes": classes,
                "boxes": [{"class_id": c, "box": [1, 2, 40, 30]} for c in range(3)],
                "outputs": [f"{name}.overlay.png", f"{name}.heatmap.png", f"{name}.maps.npz"],
                "timings": {"explain": 0.01},
            }
        )
    (outdir / "results.jsonl").write_text("".join(json.dumps(r) + "\n" for r in lines))


def chromium_load(page: Path, repeats: int) -> dict[str, float] | None:
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        return None
    if chromium is None or driver_path is None:
        return None
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(driver_path))
    dom, load = [], []
    try:
        for _ in range(repeats):
            driver.get(page.as_uri())
            t = driver.execute_script(
                "const t = performance.getEntriesByType('navigation')[0];"
                "return [t.domContentLoadedEventEnd, t.loadEventEnd];"
            )
            dom.append(float(t[0]))
            load.append(float(t[1]))
    finally:
        driver.quit()
    return {"dom_content_loaded_ms": statistics.median(dom), "load_ms": statistics.median(load)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        outdir = Path(tmp)
        make_run(outdir, args.images)
        times = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            pages = write_run_report(outdir, [("model", "synthetic")])
            times.append(time.perf_counter() - start)
        sizes = [p.stat().st_size for p in pages]
        png = (outdir / "img00000.overlay.png").stat().st_size
        browser = chromium_load(pages[0], args.repeats)
    payload: dict[str, Any] = {
        "images": args.images,
        "page_size": PAGE_SIZE,
        "pages": len(sizes),
        "max_page_bytes": max(sizes),
        "total_bytes": sum(sizes),
        "write_seconds_median": round(statistics.median(times), 4),
        "overlay_png_bytes": png,
        "chromium_first_page": browser,
    }
    table = (
        "| images | pages | max page (KB) | write (s) | chromium DOMContentLoaded (ms) "
        "| load (ms) |\n"
        "| --- | --- | --- | --- | --- | --- |\n"
        f"| {args.images} | {len(sizes)} | {max(sizes) / 1000:.0f} | "
        f"{payload['write_seconds_median']:.3f} | "
        + (
            "n/a | n/a |"
            if browser is None
            else f"{browser['dom_content_loaded_ms']:.0f} | {browser['load_ms']:.0f} |"
        )
    )
    print(table)
    print(write_results("report", payload, table))


if __name__ == "__main__":
    main()
