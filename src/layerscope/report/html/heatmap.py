"""A layer × step heat map of alpha: one PNG pixel per (layer, step) inside an SVG frame.

A raster keeps 1,000 layers × hundreds of steps at a few bytes per cell; the axes,
alerts and phases stay SVG on the same step scale as the other charts. Columns follow
the step axis: with unevenly spaced steps each pixel column shows the latest scanned
step at or before its position.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from layerscope.report.html.charts import StepMarks, phase_class
from layerscope.report.html.page import json_block
from layerscope.report.html.svg import Plot, axes, esc, num, png, svg, vline

# (alpha, RGB) stops: dark red (over-trained) -> green (healthy) -> grey (random-like).
STOPS: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (1.0, (140, 0, 30)),
    (2.0, (244, 109, 67)),
    (2.5, (166, 217, 106)),
    (4.0, (26, 152, 80)),
    (6.0, (166, 217, 106)),
    (6.5, (254, 224, 139)),
    (10.0, (150, 150, 150)),
)
MISSING = (255, 255, 255)
# Hover values are embedded up to this many cells (beyond: colours only).
HOVER_CELLS = 60_000
MAX_COLUMNS = 600


def colour(alpha: float) -> tuple[int, int, int]:
    """Colour of an alpha value (piecewise linear between ``STOPS``; white if missing)."""
    if not math.isfinite(alpha):
        return MISSING
    if alpha <= STOPS[0][0]:
        return STOPS[0][1]
    for (a0, c0), (a1, c1) in itertools.pairwise(STOPS):
        if alpha <= a1:
            t = (alpha - a0) / (a1 - a0)
            r, g, b = (round(x + t * (y - x)) for x, y in zip(c0, c1, strict=True))
            return (r, g, b)
    return STOPS[-1][1]


def columns(steps: Sequence[float]) -> tuple[list[int], float]:
    """Which step each pixel column shows, and half a column's width in steps."""
    if len(steps) == 1:
        return [0], 0.5
    gaps = np.diff(np.asarray(steps, dtype=np.float64))
    if np.allclose(gaps, gaps[0], rtol=0.01):
        return list(range(len(steps))), float(gaps[0]) / 2
    count = min(MAX_COLUMNS, 4 * len(steps))
    centres = np.linspace(steps[0], steps[-1], count)
    index = np.searchsorted(np.asarray(steps), centres, side="right") - 1
    return [int(i) for i in index], (steps[-1] - steps[0]) / (count - 1) / 2


def _legend(x: float, y: float) -> str:
    cells = []
    for k in range(60):
        alpha = 1.0 + k * 9.0 / 59
        r, g, b = colour(alpha)
        cells.append(
            f'<rect x="{num(x + k * 3)}" y="{num(y)}" width="3" height="10" '
            f'fill="rgb({r},{g},{b})"/>'
        )
    labels = "".join(
        f'<text class="tick" x="{num(x + (a - 1.0) / 9.0 * 177)}" y="{num(y + 22)}" '
        f'text-anchor="middle">{a:g}</text>'
        for a in (1, 2, 4, 6, 10)
    )
    return f'<g class="legend">{"".join(cells)}{labels}</g>'


def _phase_strip(plot: Plot, start: float, end: float, label: str) -> str:
    """A phase as a strip above the map (a band over it would tint the colours)."""
    x0, x1 = plot.x(start), plot.x(end)
    return (
        f'<rect class="{phase_class(label)}" x="{num(x0)}" y="{num(plot.top - 8)}" '
        f'width="{num(max(x1 - x0, 1))}" height="6"><title>{esc(label)}</title></rect>'
    )


def _hover(
    names: Sequence[str], steps: Sequence[float], values: NDArray[np.float64], plot: Plot
) -> str:
    """The grid's values and geometry for the page's hover text (small grids only)."""
    if len(names) * len(steps) > HOVER_CELLS:
        return ""
    grid = [[None if not math.isfinite(v) else round(float(v), 3) for v in row] for row in values]
    geometry = {"px": [plot.left, plot.right, plot.top, plot.bottom], "xr": [plot.x.lo, plot.x.hi]}
    return json_block(
        "heat-data", {"names": list(names), "steps": list(steps), "a": grid, **geometry}
    )


def heatmap(
    names: Sequence[str],
    steps: Sequence[float],
    values: NDArray[np.float64],
    xr: tuple[float, float],
    marks: StepMarks,
) -> str:
    """The heat map (rows = ``names``, columns = ``steps``) with a colour bar, plus the
    values for hover when the grid is small enough."""
    cols, half = columns(steps)
    rows = [[colour(float(values[r, c])) for c in cols] for r in range(len(names))]
    height = min(max(3 * len(names), 160), 640)
    xr = (min(xr[0], steps[0] - half), max(xr[1], steps[-1] + half))
    plot = Plot.make(900, height + 70, xr, (len(names) - 0.5, -0.5), margin=(12, 12, 60, 60))
    x0, x1 = plot.x(steps[0] - half), plot.x(steps[-1] + half)
    every = max(1, math.ceil(len(names) / 8))
    body = [
        axes(plot, "step", "layer (depth order)", yticks=range(0, len(names), every)),
        f'<image class="heat" x="{num(x0)}" y="{num(plot.top)}" width="{num(x1 - x0)}" '
        f'height="{num(plot.bottom - plot.top)}" preserveAspectRatio="none" '
        f'style="image-rendering:pixelated" href="{png(rows)}"/>',
    ]
    body += [_phase_strip(plot, a, b, n) for a, b, n in marks.phases]
    body += [vline(plot, s, "alert", "", f"alert at step {s:g}: {m}") for s, m in marks.alerts]
    body.append(_legend(plot.left, plot.height - 26))
    body.append(
        f'<text class="tick" x="{num(plot.left + 190)}" y="{num(plot.height - 17)}">alpha: '
        "&lt; 2 over-trained (red), 2–6 healthy (green), &gt; 6 random-like (grey)</text>"
    )
    hover = _hover(names, steps, values, plot)
    scale_note = (
        f'<p class="note" id="heat-info">{esc(f"{len(names)} layers × {len(steps)} steps")}</p>'
    )
    return svg(plot, body, "alpha per layer over steps", "chart heat") + scale_note + hover


__all__ = ["colour", "columns", "heatmap"]
