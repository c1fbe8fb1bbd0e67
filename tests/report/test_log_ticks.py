"""Log-axis ticks of the HTML charts: at least two on any range, labelled in one style."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

import layerscope
from layerscope.report.html import compare_html
from layerscope.report.html.svg import Scale, log_tick_labels


@pytest.mark.parametrize(
    ("ticks", "texts"),
    [
        ([0.01, 0.1, 1.0, 10.0], ["0.01", "0.1", "1", "10"]),
        ([0.05, 0.2, 300.0], ["0.05", "0.2", "300"]),
        ([1e-3, 1e-2, 0.1], ["10⁻³", "10⁻²", "10⁻¹"]),  # one style per axis
        ([2e-4, 5e-4], ["2×10⁻⁴", "5×10⁻⁴"]),
        ([1.0, 1e4, 2.5e5], ["10⁰", "10⁴", "2.5×10⁵"]),
        ([1.2e-3, 1.4e-3], ["1.2×10⁻³", "1.4×10⁻³"]),
    ],
)
def test_log_tick_labels(ticks: list[float], texts: list[str]) -> None:
    assert log_tick_labels(ticks) == texts


def test_every_log_range_gets_two_ticks_inside_it() -> None:
    rng = np.random.default_rng(0)
    for _ in range(2000):
        lo = 10.0 ** rng.uniform(-9, 4)
        hi = lo * 10.0 ** rng.uniform(0.01, 8)
        ticks = Scale(lo, hi, 0, 100, log=True).ticks()
        assert len(ticks) >= 2, (lo, hi)
        assert all(lo <= t <= hi for t in ticks) and ticks == sorted(set(ticks))
        assert len(ticks) <= 10
        labels = log_tick_labels(ticks)
        assert len(set(labels)) == len(labels), (lo, hi, labels)  # no two ticks read alike


def test_narrow_range_was_left_without_ticks() -> None:
    # Within [1.2e-3, 1.8e-3] no decade and no 1-2-5 value falls: use round multiples.
    narrow = Scale(1.2e-3, 1.8e-3, 0, 100, log=True).ticks()
    assert narrow == pytest.approx([1.2e-3, 1.4e-3, 1.6e-3, 1.8e-3])
    assert log_tick_labels(narrow)[:2] == ["1.2×10⁻³", "1.4×10⁻³"]
    # One 1-2-5 value inside: the 1…9 multiples instead.
    assert Scale(3e-3, 8e-3, 0, 100, log=True).ticks() == pytest.approx(
        [3e-3, 4e-3, 5e-3, 6e-3, 7e-3, 8e-3]
    )


def test_update_size_chart_reads_in_powers_of_ten() -> None:
    g = torch.Generator().manual_seed(0)
    base = {f"l.{i}.weight": torch.randn(64, 32, generator=g) for i in range(4)}
    tuned = {
        name: w + 10.0 ** (-4 + i) * torch.randn(64, 32, generator=g)
        for i, (name, w) in enumerate(base.items())
    }  # relative updates from about 1e-4 to 1e-1
    page = compare_html(layerscope.compare(base, tuned))
    chart = page[: page.index("relative size of the update")].split("<svg")[-1]
    ticks = re.findall(r'<text class="tick ty"[^>]*>([^<]*)</text>', chart)
    assert ticks[:2] == ["10⁻⁴", "10⁻³"] and ticks[-1] == "10⁻¹"
    assert all(re.fullmatch(r"10⁻[¹²³⁴⁵⁶⁷⁸⁹]", t) for t in ticks), ticks
