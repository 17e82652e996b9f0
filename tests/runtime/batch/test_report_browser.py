"""The run report in a real browser: Debian's chromium, headless, through chromedriver
(selenium). Skipped, with the reason, where chromium or selenium is missing (``make
browser`` installs them on Debian)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests.onnx_models import channel_model
from tests.runtime.batch.runs import cam_rt, make_images

webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")
CHROMIUM = shutil.which("chromium")
DRIVER = shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    CHROMIUM is None or DRIVER is None,
    reason="chromium and chromium-driver are not installed (make browser, or "
    "apt-get install chromium chromium-driver)",
)


@pytest.fixture
def browser() -> Any:
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu", "--window-size=1200,900"):
        options.add_argument(arg)
    options.add_argument("--allow-file-access-from-files")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(str(DRIVER)))
    yield driver
    driver.quit()


def _check_page(driver: Any, path: Path) -> None:
    driver.get(path.as_uri())
    assert driver.execute_script("return document.readyState") == "complete"
    height = driver.execute_script("return document.body.scrollHeight")
    for y in range(0, int(height) + 900, 600):  # lazy images load as they come into view
        driver.execute_script(f"window.scrollTo(0, {y})")
    driver.execute_script("window.scrollTo(0, 0)")
    pending = driver.execute_async_script(
        "const done = arguments[arguments.length - 1];"
        "Promise.all([...document.images].map(i => i.complete ? 0 :"
        " new Promise(r => { i.onload = i.onerror = r; }))).then(() => done(0));"
    )
    assert pending == 0
    images = driver.execute_script(
        "return [...document.images].map(i => [i.getAttribute('src'), i.naturalWidth])"
    )
    assert images, "the page shows no images"
    for src, width in images:
        assert (path.parent / src).is_file(), src
        assert width > 0, f"{src} did not load"
    errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
    assert errors == []
    shot = path.parent / f"{path.stem}.screenshot.png"
    driver.save_screenshot(str(shot))
    pixels = np.asarray(Image.open(shot).convert("L"), np.float64)
    assert pixels.var() > 100, "the screenshot is blank"


def test_chromium_renders_the_report_and_its_next_page(tmp_path: Path, browser: Any) -> None:
    model = channel_model(tmp_path / "m.onnx", channels=3, offset=0.4, class_names=("a", "b", "c"))
    make_images(tmp_path / "in", 5, size=(40, 56))
    (tmp_path / "in" / "bad.png").write_bytes(b"no")
    out = tmp_path / "out"
    proc = cam_rt("run", model, tmp_path / "in", "-o", out, "--save", "overlay,heatmap", "--report")
    assert proc.returncode == 2, proc.stderr
    _check_page(browser, out / "index.html")
    # a second page: the same records at 2 images a page
    from cam_rt.runtime.batch.report import write_run_report

    pages = write_run_report(out, page_size=2)
    assert len(pages) == 3
    browser.get((out / "index.html").as_uri())
    browser.find_element("css selector", "a[rel=next]").click()
    assert browser.current_url == (out / "report" / "page-2.html").as_uri()
    _check_page(browser, out / "report" / "page-2.html")
