"""Golden-structure tests of the HTML report: sections, escaping, views, sizes."""

from __future__ import annotations

import json
import math
import os
import stat
import struct
import time
import zlib
from base64 import b64decode
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import layerscope
from layerscope.gate import check
from layerscope.report.html import compare_html, run_html, scan_html, write_html
from layerscope.report.html.heatmap import colour, columns
from layerscope.report.html.svg import Scale, png
from layerscope.report.html.training_view import phase_spans
from layerscope.results import SAMPLE_POINTS, SAMPLE_TAIL, ScanResult, SpectrumSample
from layerscope.track import RunStore
from layerscope.track.view import read_run

from .conftest import HOSTILE, fake_scan, hostile_state_dict, read_page, synthetic_scan


def _external_refs(html: str) -> list[str]:
    page = read_page(html)
    refs = [a.get("src", "") for _, a in page.tags] + [a.get("href", "") for _, a in page.tags]
    return [r for r in refs if r and not r.startswith(("data:", "#"))]


# ---- samples kept by scan -------------------------------------------------------------


def test_sample_keeps_small_spectra_whole() -> None:
    x = np.random.default_rng(0).uniform(size=300)
    s = SpectrumSample.of(x)
    np.testing.assert_array_equal(s.values, np.sort(x))
    assert s.n == 300 and "index" not in s.to_dict()


def test_sample_of_large_spectrum_keeps_ranks_top_and_tail() -> None:
    x = np.sort(np.random.default_rng(1).lognormal(size=20_000))
    tail_from = float(x[-1500])
    s = SpectrumSample.of(x, tail_from)
    assert s.values.size <= SAMPLE_POINTS + SAMPLE_TAIL
    np.testing.assert_array_equal(s.values, x[s.index])  # every value sits at its rank
    assert np.all(np.diff(s.index) > 0) and s.index[0] == 0 and s.index[-1] == x.size - 1
    assert set(range(x.size - SAMPLE_TAIL, x.size)) <= set(s.index.tolist())  # capped tail
    assert set(range(x.size - 20, x.size)) <= set(s.index.tolist())  # the top is exact
    back = SpectrumSample.from_dict(json.loads(json.dumps(s.to_dict())))
    np.testing.assert_array_equal(back.index, s.index)
    np.testing.assert_allclose(back.values, s.values, rtol=1e-3)  # 4 significant digits


def test_sample_from_dict_rejects_mismatched_parts() -> None:
    with pytest.raises(ValueError, match="ranks"):
        SpectrumSample.from_dict({"n": 10, "values": [1.0, 2.0], "index": [0]})
    with pytest.raises(ValueError, match="ranks"):
        SpectrumSample.from_dict({"n": 3, "values": [1.0, 2.0], "index": [0, 5]})


def test_scan_keeps_samples_matching_its_fit(hostile_scan: ScanResult) -> None:
    ok = hostile_scan.layers[hostile_scan.layers["status"] == "ok"]
    assert set(hostile_scan.samples) == set(ok["name"])
    for _, row in ok.iterrows():
        kept = hostile_scan.samples[row["name"]]
        full = hostile_scan.spectra[row["name"]]
        np.testing.assert_array_equal(kept.evals.values, full[kept.evals.index])
        # Survival function at xmin from the sample = the fitted tail fraction.
        at = np.flatnonzero(kept.evals.values == row["xmin"])[0]
        assert kept.evals.n - kept.evals.index[at] == row["num_pl_spikes"]
        assert kept.shuffled is not None and kept.shuffled.n >= row["num_evals"]


def test_json_roundtrip_and_old_files_without_spectra(
    hostile_scan: ScanResult, tmp_path: Path
) -> None:
    hostile_scan.to_json(tmp_path / "new.json")
    back = ScanResult.from_json(tmp_path / "new.json")
    assert set(back.samples) == set(hostile_scan.samples)
    data = json.loads((tmp_path / "new.json").read_text())
    del data["spectra"]
    (tmp_path / "old.json").write_text(json.dumps(data))
    old = ScanResult.from_json(tmp_path / "old.json")
    assert old.samples == {} and len(old.layers) == len(hostile_scan.layers)
    page = read_page(scan_html(old))
    assert page.json("spectra-data") == {}
    no_keep = layerscope.scan(hostile_state_dict(), metrics="default")
    assert no_keep.samples == {} and "spectra" not in no_keep.to_dict()


def test_malformed_spectra_is_one_value_error(hostile_scan: ScanResult, tmp_path: Path) -> None:
    data = hostile_scan.to_dict()
    data["spectra"] = {"x": {"evals": {"n": 2}}}
    (tmp_path / "bad.json").write_text(json.dumps(data, default=str))
    with pytest.raises(ValueError, match="malformed 'spectra'"):
        ScanResult.from_json(tmp_path / "bad.json")


# ---- scan view ------------------------------------------------------------------------


def test_scan_view_sections_and_counts(hostile_scan: ScanResult) -> None:
    html = scan_html(hostile_scan)
    page = read_page(html)
    assert {"summary", "depth", "layers-section", "layers", "skipped", "spectra-data"} <= page.ids
    rows = [a for t, a in page.tags if t == "tr" and "data-row" in a]
    assert len(rows) == len(hostile_scan.layers)
    ok = hostile_scan.layers[hostile_scan.layers["status"] == "ok"]
    points = page.find("circle", class_="v-ok") + [
        a for t, a in page.tags if t == "circle" and "data-row" in a and a["class"] != "v-ok"
    ]
    assert len([p for p in points if "data-row" in p]) == len(ok)
    spectra = page.json("spectra-data")
    assert isinstance(spectra, dict)
    assert set(spectra) == {str(i) for i in ok["layer_id"]}
    for detail in spectra.values():
        assert '<path class="esd"' in detail and '<path class="fit"' in detail
        assert '<path class="shuf"' in detail and "xmin" in detail
    assert _external_refs(html) == []
    assert html.count("<script") == 2  # the JSON block and the page's own script


def test_hostile_layer_name_is_inert(hostile_scan: ScanResult) -> None:
    html = scan_html(hostile_scan)
    assert HOSTILE not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    page = read_page(html)
    assert [a.get("type", "") for a, _ in page.scripts] == ["application/json", ""]
    for detail in page.json("spectra-data").values():  # type: ignore[union-attr]
        assert "<script" not in detail
    names = {a["data-name"] for a in page.find("tr") if "data-name" in a}
    assert HOSTILE + ".weight" in names  # the attribute holds the name, unescaped by the parser


def test_gate_panel_in_scan_view(hostile_scan: ScanResult) -> None:
    gate = check(hostile_scan.layers, ["failed>0", "mean(alpha)>100"])
    page = read_page(scan_html(hostile_scan, gate))
    assert page.find("div", id="gate", class_="gate fail")


def test_spectrum_fit_line_slope_is_one_minus_alpha(hostile_scan: ScanResult) -> None:
    from layerscope.report.html.spectrum_view import HEIGHT, WIDTH, _ranges, spectrum_svg

    row = hostile_scan.layers[hostile_scan.layers["status"] == "ok"].iloc[0].to_dict()
    kept = hostile_scan.samples[row["name"]]
    svg = spectrum_svg(row, kept)
    d = svg.split('<path class="fit" d="')[1].split('"')[0]
    x0, y0 = (float(v) for v in d[1:].split("l")[0].split())
    dx, dy = (float(v) for v in d.split("l")[1].split())
    (xlo, xhi), (ylo, yhi) = _ranges(kept)
    px_per_dec_x = (WIDTH - 14 - 52) / math.log10(xhi / xlo)
    px_per_dec_y = (HEIGHT - 34 - 14) / math.log10(yhi / ylo)
    slope = (-dy / px_per_dec_y) / (dx / px_per_dec_x)
    assert slope == pytest.approx(1.0 - row["alpha"], rel=0.03)
    want_y0 = (HEIGHT - 34) - math.log10(row["num_pl_spikes"] / kept.evals.n / ylo) * px_per_dec_y
    assert y0 == pytest.approx(want_y0, abs=0.6)  # whole pixels
    assert x0 == pytest.approx(52 + math.log10(row["xmin"] / xlo) * px_per_dec_x, abs=0.6)


# ---- compare view ---------------------------------------------------------------------


def test_compare_view(tmp_path: Path) -> None:
    base = hostile_state_dict(0)
    tuned = {k: v.clone() for k, v in base.items()}
    gen = torch.Generator().manual_seed(5)
    tuned["block.0.dense.weight"] += 0.3 * torch.randn(128, 64, generator=gen)
    tuned["block.1.dense.weight"] = tuned[f"{HOSTILE}.weight"][:80, :40].clone()
    tuned["block.9.dense.weight"] = tuned["block.1.dense.weight"].clone()
    base["block.9.dense.weight"] = base["block.1.dense.weight"].clone() + 1.0
    result = layerscope.compare(base, tuned)
    gate = check(result.layers, ["untouched>0"], result.gate_counts())
    html = compare_html(result, gate)
    page = read_page(html)
    assert {"summary", "depth", "layers", "gate", "duplicated"} <= page.ids
    assert page.find("div", id="gate", class_="gate fail")
    assert html.count('<svg class="chart"') >= 3  # base vs tuned, update alpha, update size
    untouched = (result.layers["verdict"] == "untouched").sum()
    assert untouched >= 1
    stripes = [a for a in page.find("rect", class_="untouched-col") if a["width"] != "10"]
    assert len(stripes) == 3 * untouched  # one per untouched layer in each of the 3 charts
    dup_rows = [a for a in page.find("tr") if a.get("class") == "dup"]
    assert {a["data-name"] for a in dup_rows} == {"block.1.dense.weight", "block.9.dense.weight"}
    assert HOSTILE not in html and _external_refs(html) == []


# ---- training view --------------------------------------------------------------------


@pytest.fixture
def run_store(tmp_path: Path) -> RunStore:
    store = RunStore(tmp_path / "runs.db")
    store.start_run(HOSTILE, {"lr": 0.01})
    for step in range(0, 1000, 100):
        store.log_scan(HOSTILE, step, fake_scan(step, 5))
        store.log_scalars(HOSTILE, step, test_acc=step / 1000, train_loss=1.0 / (1 + step))
    store.log_alert(HOSTILE, 500, "warning", "alpha <b>collapsed</b>")
    return store


def test_training_view(run_store: RunStore) -> None:
    html = run_html(read_run(run_store, HOSTILE))
    page = read_page(html)
    assert {"summary", "metrics", "heatmap", "scalars", "alerts", "steps", "heat-data"} <= page.ids
    images = page.find("image", class_="heat")
    assert len(images) == 1 and images[0]["href"].startswith("data:image/png;base64,")
    heat = page.json("heat-data")
    assert isinstance(heat, dict)
    assert heat["steps"] == [float(s) for s in range(0, 1000, 100)] and len(heat["names"]) == 5
    assert heat["a"][0][0] == pytest.approx(2.0)  # layer 0 at step 0 (fake_scan: 2 + i + s/1000)
    assert "&lt;b&gt;collapsed&lt;/b&gt;" in html and "<b>collapsed" not in html
    assert HOSTILE not in html and _external_refs(html) == []
    alert_lines = [a for a in page.find("g") if a.get("class") == "alert"]
    charts = html.count('<svg class="chart"') + html.count('<svg class="chart heat"')
    assert charts == 4 and len(alert_lines) == charts  # one alert line per chart over steps


def test_views_of_empty_and_failed_results(tmp_path: Path) -> None:
    with RunStore(tmp_path / "r.db") as store:
        store.start_run("empty")
        assert "No successful scan recorded yet" in run_html(read_run(store, "empty"))
        store.log_error("empty", 10, "boom <x>", "ckpt")
        assert "boom &lt;x&gt;" in run_html(read_run(store, "empty"))
    tiny = layerscope.scan({"a.weight": torch.ones(4, 3), "b.weight": torch.zeros(16, 16)})
    page = scan_html(tiny)
    assert "No layer was analysed" in page and "all zeros" in page
    same = layerscope.compare({"a.weight": torch.eye(16)}, {"a.weight": torch.eye(16)})
    assert "untouched" in compare_html(same)


def test_phase_spans_group_consecutive_steps() -> None:
    model = pd.DataFrame({"step": [0, 10, 20, 30, 40], "phase": ["a", "a", "b", "b", "a"]})
    assert phase_spans(model) == [(0.0, 20.0, "a"), (20.0, 40.0, "b"), (40.0, 40.0, "a")]
    assert phase_spans(model.iloc[:0]) == []


# ---- primitives -----------------------------------------------------------------------


def test_png_decodes_to_the_pixels() -> None:
    pixels = [[(255, 0, 0), (0, 255, 0), (0, 0, 255)], [(1, 2, 3), (4, 5, 6), (7, 8, 9)]]
    data = b64decode(png(pixels).split(",", 1)[1])
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, chunks = 8, {}
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        tag, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        (crc,) = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])
        assert crc == zlib.crc32(tag + body)
        chunks[tag] = body
        pos += 12 + length
    assert struct.unpack(">II", chunks[b"IHDR"][:8]) == (3, 2)
    raw = zlib.decompress(chunks[b"IDAT"])
    assert raw == b"\x00" + bytes(range(0)) + bytes([255, 0, 0, 0, 255, 0, 0, 0, 255]) + (
        b"\x00" + bytes(range(1, 10))
    )


def test_scale_ticks_and_colours() -> None:
    assert Scale(0, 10, 0, 100).ticks() == [0, 2, 4, 6, 8, 10]
    assert Scale(10, 0, 0, 100).ticks() == [0, 2, 4, 6, 8, 10]  # reversed axis
    assert Scale(1e-3, 1e2, 0, 100, log=True).ticks() == [1e-3, 1e-2, 1e-1, 1.0, 10.0, 100.0]
    assert Scale(1, 10, 0, 100, log=True)(10) == pytest.approx(100)
    assert colour(float("nan")) == (255, 255, 255)
    assert colour(4.0) == (26, 152, 80) and colour(0.5) == colour(1.0)
    assert columns([0, 10, 20]) == ([0, 1, 2], 5.0)
    cols, _ = columns([0, 10, 100])
    assert cols[0] == 0 and cols[-1] == 2 and cols == sorted(cols)


def test_written_page_has_the_usual_permissions(tmp_path: Path) -> None:
    old = os.umask(0o022)
    try:
        write_html(tmp_path / "a.html", "<p>x</p>")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "a.html").stat().st_mode) == 0o644
    (tmp_path / "a.html").chmod(0o600)
    write_html(tmp_path / "a.html", "<p>y</p>")  # replacing keeps the file's mode
    assert stat.S_IMODE((tmp_path / "a.html").stat().st_mode) == 0o600


# ---- sizes ----------------------------------------------------------------------------


def test_thousand_layer_report_stays_small_and_fast(tmp_path: Path) -> None:
    result = synthetic_scan(1000)
    started = time.perf_counter()
    html = scan_html(result)
    elapsed = time.perf_counter() - started
    write_html(tmp_path / "big.html", html)
    size = (tmp_path / "big.html").stat().st_size
    page = read_page(html)
    assert len([a for a in page.find("tr") if "data-row" in a]) == 1000
    assert len(page.json("spectra-data")) == 1000  # type: ignore[arg-type]
    assert size < 6_000_000, size
    assert elapsed < 30, elapsed
