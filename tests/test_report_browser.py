"""The report in a real browser: Debian's headless Chromium through Selenium (``make browser`` installs both).

One generated night (three assets, GPS, two nights' changes, a review queue, hostile file names)
is rendered and opened once; the test fails on any console error, broken image or broken link,
checks that the first screen answers the three questions, that sorting and filtering change the
visible rows, that hostile names stay inert text, and saves a screenshot and a print to PDF under
``test_artifacts/`` (ignored by git) for a person to look at.
"""

from __future__ import annotations

import base64
import re
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest
from conftest import REPO

from corrosion.inference import report, report_browser, report_data, report_sample

try:  # selenium is a developer pin; without it the fixture skips, saying so
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
except ImportError:
    By = Select = None

ARTIFACTS = REPO / "test_artifacts"


@contextmanager
def chromium_on(path: Path, profile: Path) -> Iterator:
    """The report at ``path`` open in headless Chromium (skips when there is none), alert() recorded."""
    found = report_browser.find_browser()
    if isinstance(found, str):
        pytest.skip(found)
    driver = report_browser.open_chromium(profile, *found)
    try:
        # any alert() the page runs is recorded instead of shown (a name that executes would land here)
        driver.execute_cdp_cmd(
            "Page.addScriptToEvaluateOnNewDocument",
            {"source": "window.__alerts=[];window.alert=function(m){window.__alerts.push(String(m));};"},
        )
        driver.get(path.as_uri())
        yield driver
    finally:
        driver.quit()


def assert_sound(driver, path: Path) -> None:
    """No console error, no alert, every image loaded (the lazy ones once scrolled past), no broken link."""
    total = driver.execute_script("return document.body.scrollHeight")
    for y in range(0, total + 900, 900):
        driver.execute_script("window.scrollTo(0, arguments[0])", y)
        time.sleep(0.05)  # the observer's callbacks run between frames
    deadline = time.monotonic() + 10
    while driver.execute_script("return document.querySelectorAll('img[data-thumb]').length"):
        assert time.monotonic() < deadline, "thumbnails scrolled past were never loaded"
        time.sleep(0.1)
    broken = driver.execute_script(
        "return [...document.images].filter(i => !i.complete || i.naturalWidth === 0).map(i => i.alt || i.src.slice(0, 60));"
    )
    assert broken == [], f"broken images: {broken}"
    hrefs = driver.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'));")
    for href in set(hrefs):
        if href.startswith("#"):
            assert driver.find_elements(By.ID, href[1:]), f"link to missing #{href[1:]}"
        else:
            assert not urlparse(href).scheme, f"link leaves the page's folder: {href}"
            assert (path.parent / unquote(href)).is_file(), f"broken link: {href}"
    assert driver.execute_script("return window.__alerts") == []
    severe = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    assert severe == [], severe


def assert_first_screen_answers(driver) -> None:
    """The three answers are on the screen the page opens on."""
    height = driver.execute_script("return window.innerHeight")
    for answer in ("answer-worst", "answer-changes", "answer-review"):
        box = driver.find_element(By.ID, answer)
        assert box.is_displayed() and box.location["y"] + 40 < height, f"{answer} is not on the first screen"


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    out = tmp_path_factory.mktemp("report")
    sample = report_sample.generate(500, out, hostile=True)
    path = out / "index.html"
    models = {"classifier": "classifier-20250601", "regions": "segmenter-20250601"}
    text = report.render_report(
        "harbour", sample.stats, sample.entries, str(path), models, "2025-06-12 23:00 UTC",
        rows=sample.rows, changes=sample.changes, review=sample.review,
    )  # fmt: skip
    path.write_text(text, encoding="utf-8")
    with chromium_on(path, out / "profile") as driver:
        yield driver, path, sample


def _visible_rows(driver) -> list[list[str]]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#photo-table tbody tr')]"
        ".map(tr => [...tr.children].map(td => td.textContent));"
    )


def test_report_in_chromium(page):
    driver, path, sample = page
    ARTIFACTS.mkdir(exist_ok=True)

    # the first screen answers the three questions
    assert_first_screen_answers(driver)
    worst = driver.find_element(By.CSS_SELECTOR, "#answer-worst li").text
    assert "bridge-north" in worst and "girder-east" in worst  # the zone the sample made worst
    changes = driver.find_element(By.ID, "answer-changes").text
    assert "1 zone worse" in changes and "4 new rust photos" in changes and "2 photos missing tonight" in changes
    first_review = driver.find_element(By.CSS_SELECTOR, "#answer-review li").text
    assert first_review.startswith(Path(sample.review[0]["image_uri"]).name)
    assert re.search(r"near_threshold|severe|disagreement|weak_regions", first_review)
    driver.save_screenshot(str(ARTIFACTS / "report.png"))

    # sorting: the default (worst grade first), then P(rust) high to low, then low to high
    rows = _visible_rows(driver)
    assert len(rows) == 100 and driver.find_element(By.ID, "photo-count").text == "500 of 500 photos"
    grades = [int(r[4]) for r in rows]
    assert grades == sorted(grades)
    driver.find_element(By.CSS_SELECTOR, '#photo-table th[data-key="p"] button').click()
    by_p = [float(r[5]) for r in _visible_rows(driver)]
    assert by_p == sorted(by_p, reverse=True) and [r[1] for r in _visible_rows(driver)] != [r[1] for r in rows]
    driver.find_element(By.CSS_SELECTOR, '#photo-table th[data-key="p"] button').click()
    by_p_up = [float(r[5]) for r in _visible_rows(driver)]
    assert by_p_up == sorted(by_p_up) and by_p_up[0] < by_p[0]
    driver.find_element(By.ID, "page-next").click()
    assert float(_visible_rows(driver)[0][5]) >= by_p_up[-1] and "page 2 of 5" in driver.page_source

    # filtering: an asset, then the review queue only, then a search
    Select(driver.find_element(By.ID, "f-asset")).select_by_value("tank-7")
    tank = _visible_rows(driver)
    n_tank = sum(r["asset"] == "tank-7" for r in sample.rows)
    assert {r[2] for r in tank} == {"tank-7"} and driver.find_element(By.ID, "photo-count").text.startswith(
        f"{n_tank} of 500"
    )
    Select(driver.find_element(By.ID, "f-asset")).select_by_value("")
    driver.find_element(By.ID, "f-review").click()
    assert len(_visible_rows(driver)) == len(sample.review) and all(r[8] for r in _visible_rows(driver))
    driver.find_element(By.ID, "f-review").click()
    # the zone table's "photos" link filters the table to that zone
    driver.find_element(By.CSS_SELECTOR, '#zone-table a[data-filter-zone="girder-east"]').click()
    assert {(r[2], r[3]) for r in _visible_rows(driver)} == {("bridge-north", "girder-east")}
    Select(driver.find_element(By.ID, "f-asset")).select_by_value("")
    Select(driver.find_element(By.ID, "f-zone")).select_by_value("")

    # hostile names: found by search, shown as the very text, nothing run, no element injected
    for uri in [report_data.text(r["image_uri"]) for r in sample.rows[: len(report_sample.HOSTILE_NAMES)]]:
        search = driver.find_element(By.ID, "f-search")
        search.clear()
        search.send_keys(report_data.photo_name(uri))
        cells = driver.execute_script(
            "return [...document.querySelectorAll('#photo-table tbody tr')].map(tr => tr.getAttribute('data-uri'));"
        )
        assert uri in cells, (uri, cells)
        assert report_data.photo_name(uri) in [r[1] for r in _visible_rows(driver)]
    assert driver.execute_script("return window.__alerts") == []
    assert len(driver.find_elements(By.TAG_NAME, "script")) == 4  # colours, rows, thumbnails, the page's own
    assert driver.execute_script("return document.querySelectorAll('img[src=x], img[onerror]').length") == 0
    assert "<img src=x onerror=alert(2)>.jpg" in driver.find_element(By.ID, "gallery").text
    driver.find_element(By.ID, "f-search").clear()

    # lazy thumbnails: none of the gallery's is loaded before it is scrolled to, all are after
    assert driver.execute_script("return document.querySelectorAll('#gallery img[data-thumb]').length") > 0
    hrefs = driver.execute_script("return [...document.querySelectorAll('a[href]')].map(a => a.getAttribute('href'));")
    assert any(h.startswith("previews/") for h in hrefs)
    assert_sound(driver, path)
    preview = driver.execute_script(
        "return document.querySelector('#review a[href^=\"previews/\"]').getAttribute('href')"
    )
    driver.get((path.parent / preview).as_uri())
    assert driver.execute_script("return document.images[0].naturalWidth") > 0  # the preview itself opens
    driver.back()

    # the print view: a short survey summary, without the full table or the gallery
    pdf = base64.b64decode(driver.print_page())
    (ARTIFACTS / "report.pdf").write_bytes(pdf)
    pages = len(re.findall(rb"/Type\s*/Page[^s]", pdf))
    assert pdf.startswith(b"%PDF") and 1 <= pages <= 3, f"print view has {pages} pages"
    assert [e for e in driver.get_log("browser") if e["level"] == "SEVERE"] == []
