"""One layer's spectrum as a log-log survival plot, drawn from the kept samples.

The plot shows P(λ ≥ x) (the empirical complementary CDF, exact at every kept point:
``SpectrumSample`` keeps each value's rank) of the layer's eigenvalues and of its
element-shuffled copy, with what the scan fitted, read from the result row:

* the power-law tail: a straight line of slope 1 − α through (xmin, n_tail / n), which is
  P(λ ≥ x) = (n_tail / n)·(x / xmin)^(1−α) for x ≥ xmin (Clauset, Shalizi & Newman 2009,
  the form whose exponent the scan estimated);
* xmin, and the Marchenko-Pastur bulk [λ⁻, λ⁺] with its edge λ⁺ (``bulk_min``, ``bulk_max``);
* the shuffled matrix's MP edge (``rand_bulk_max``) and its ``num_traps`` largest
  eigenvalues (the correlation traps) as red dots.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

from layerscope.report.html.charts import verdict_legend
from layerscope.report.html.page import fmt, is_missing
from layerscope.report.html.svg import Plot, axes, dot, esc, path, svg, vband, vline
from layerscope.results import LayerSamples, SpectrumSample

WIDTH, HEIGHT = 560, 300
# Eigenvalues below λ_max times this are left off the log axis (numerical zeros).
X_FLOOR = 1e-9


def _points(sample: SpectrumSample) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Every kept positive value and its survival probability P(λ ≥ value)."""
    positive = sample.values > 0
    return sample.values[positive], (sample.n - sample.index[positive]) / float(sample.n)


def _value(row: Mapping[str, Any], key: str) -> float | None:
    v = row.get(key)
    if is_missing(v) or not isinstance(v, int | float | np.number):
        return None
    return float(v)


def _ranges(samples: LayerSamples) -> tuple[tuple[float, float], tuple[float, float]]:
    both = [samples.evals] + ([samples.shuffled] if samples.shuffled is not None else [])
    top = max(float(s.values.max()) for s in both if s.values.size)
    positive = [float(s.values[s.values > 0].min()) for s in both if (s.values > 0).any()]
    lo = max(min(positive), top * X_FLOOR)
    ymin = 1.0 / max(s.n for s in both)
    return (lo / 1.5, top * 1.5), (ymin / 1.5, 1.2)


def _fit_marks(plot: Plot, row: Mapping[str, Any], n: int) -> list[str]:
    """The fitted tail line and xmin, from the row's alpha, xmin, xmax and tail size."""
    alpha, xmin = _value(row, "alpha"), _value(row, "xmin")
    xmax, tail = _value(row, "xmax"), _value(row, "num_pl_spikes")
    if alpha is None or xmin is None or xmax is None or tail is None or xmin <= 0:
        return []
    y0 = tail / n
    line = path(plot, [xmin, xmax], [y0, y0 * (xmax / xmin) ** (1.0 - alpha)], "fit", 0.0)
    mark = vline(plot, xmin, "xmin", "xmin", f"xmin = {xmin:.4g}")
    return [line, mark]


def _mp_marks(plot: Plot, row: Mapping[str, Any]) -> list[str]:
    lo, hi = _value(row, "bulk_min"), _value(row, "bulk_max")
    out = []
    if hi is not None and hi > 0:
        bottom = lo if lo is not None and lo > 0 else plot.x.lo
        out.append(vband(plot, bottom, hi, "bulk", f"MP bulk [{bottom:.4g}, {hi:.4g}]"))
        out.append(vline(plot, hi, "edge", "λ+", f"MP bulk edge λ+ = {hi:.4g}", 1))
    rand = _value(row, "rand_bulk_max")
    if rand is not None and rand > 0:
        out.append(vline(plot, rand, "redge", "", f"shuffled MP edge = {rand:.4g}"))
    return out


def _traps(plot: Plot, samples: LayerSamples, row: Mapping[str, Any]) -> list[str]:
    count = _value(row, "num_traps")
    shuffled = samples.shuffled
    if shuffled is None or count is None or count < 1:
        return []
    k = int(count)
    top = shuffled.index >= shuffled.n - k
    return [
        dot(plot, v, (shuffled.n - i) / shuffled.n, "trap", f"trap: shuffled λ = {v:.4g}", 3.5)
        for i, v in zip(shuffled.index[top].tolist(), shuffled.values[top].tolist(), strict=True)
    ]


def spectrum_svg(row: Mapping[str, Any], samples: LayerSamples) -> str:
    """The log-log survival plot of one layer (see the module docstring)."""
    xr, yr = _ranges(samples)
    plot = Plot.make(WIDTH, HEIGHT, xr, yr, xlog=True, ylog=True, margin=(14, 14, 34, 52))
    body = [*_mp_marks(plot, row), axes(plot, "eigenvalue λ of WᵀW", "P(λ ≥ x)")]
    body.append(path(plot, *_points(samples.evals), "esd"))
    if samples.shuffled is not None:
        body.append(path(plot, *_points(samples.shuffled), "shuf"))
    body += _fit_marks(plot, row, samples.evals.n)
    body += _traps(plot, samples, row)
    return svg(plot, body, f"spectrum of {row.get('name', '')}", "chart spectrum")


def _caption(row: Mapping[str, Any]) -> str:
    alpha, sigma = fmt(row.get("alpha")), fmt(row.get("sigma"), ".2g")
    parts = [
        f"α = {alpha} ± {sigma}",
        f"xmin = {fmt(row.get('xmin'), '.4g')}",
        f"tail n = {fmt(row.get('num_pl_spikes'))}",
        f"D = {fmt(row.get('D'), '.3f')}",
        f"fit: {row.get('fit_quality', '—')}",
        f"MP edge λ+ = {fmt(row.get('bulk_max'), '.4g')}",
        f"spikes = {fmt(row.get('num_spikes'))}",
    ]
    if not is_missing(row.get("num_traps")):
        parts.append(f"traps = {fmt(row.get('num_traps'))}")
    return " · ".join(parts)


def layer_detail(row: Mapping[str, Any], samples: LayerSamples) -> str:
    """The detail shown when a layer's row is opened: name, reason, fit summary, plot."""
    reason = row.get("reason")
    why = "" if is_missing(reason) else f"<br>{esc(reason)}"
    return (
        f'<div class="spectrum-detail"><p><b>{esc(row.get("name", ""))}</b>{why}<br>'
        f'<span class="note">{esc(_caption(row))}</span></p>'
        f"{spectrum_svg(row, samples)}</div>"
    )


def spectrum_key() -> str:
    """The legend of every spectrum plot, shown once above the table."""
    items = [("esd", "ESD of WᵀW"), ("fit", "power-law fit from xmin"), ("bulk", "MP bulk")]
    items += [("shuf", "shuffled W"), ("trap", "trap")]
    return (
        verdict_legend([], items)
        + '<p class="note">Each spectrum is the log-log survival function P(λ ≥ x): the '
        "eigenvalues of WᵀW (blue), of the element-shuffled W (orange, dashed; its MP edge "
        "dashed orange), the fitted power law from xmin (red line, slope 1 − α), the "
        "Marchenko-Pastur bulk up to its edge λ+ (shaded), correlation traps (red dots).</p>"
    )


def _drawable(sample: SpectrumSample) -> bool:
    values = sample.values
    return bool(values.size and np.isfinite(values).all() and (values > 0).any())


def details(
    rows: Sequence[Mapping[str, Any]], samples: Mapping[str, LayerSamples]
) -> dict[str, str]:
    """Detail HTML per ``layer_id`` for every row whose spectrum was kept."""
    out: dict[str, str] = {}
    for row in rows:
        kept = samples.get(str(row.get("name")))
        if kept is not None and _drawable(kept.evals):
            out[str(row.get("layer_id"))] = layer_detail(row, kept)
    return out
