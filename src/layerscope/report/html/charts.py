"""Charts shared by the views: a metric per layer (by depth), a histogram, lines over steps."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from layerscope.metrics import ALPHA_OVER, ALPHA_UNDER
from layerscope.report.html.page import is_missing, verdict_class
from layerscope.report.html.svg import (
    Plot,
    axes,
    dot,
    hband,
    legend,
    padded,
    path,
    svg,
    vband,
    vline,
)

# Alpha axis of the per-layer charts: values above are drawn at the top edge (the
# hover text gives the value).
ALPHA_AXIS_MAX = 12.0
WIDE = 840


def depth_order(names: Sequence[str]) -> list[int]:
    """Row positions sorted by name with numbers compared as numbers, so that
    ``layer.10`` follows ``layer.9`` (sources often list tensors alphabetically)."""

    def key(i: int) -> list[tuple[int, Any]]:
        return [(0, int(t)) if t.isdigit() else (1, t) for t in re.split(r"(\d+)", names[i])]

    return sorted(range(len(names)), key=key)


def _radius(count: int) -> float:
    return 3.2 if count <= 150 else 2.2 if count <= 600 else 1.5


@dataclass
class Series:
    """Points of one per-layer series: (depth position, value, css class, hover text, row)."""

    label: str
    cls: str
    points: list[tuple[int, float, str, str, int]] = field(default_factory=list)


def layer_series(
    rows: Sequence[Mapping[str, Any]], order: Sequence[int], column: str, label: str, cls: str = ""
) -> Series:
    """One series from ``rows`` (records with ``layer_id``, ``name``, ``verdict``);
    ``cls`` empty colours each point by its verdict."""
    series = Series(label, cls or "verdict")
    for pos, i in enumerate(order):
        row = rows[i]
        value: Any = row.get(column)
        if is_missing(value):
            continue
        point_cls = cls or verdict_class(row.get("verdict"))
        text = f"{row.get('name')}: {label} = {float(value):.3g} ({row.get('verdict', '')})"
        series.points.append((pos, float(value), point_cls, text, int(row.get("layer_id", i))))
    return series


def per_layer_chart(
    series: Sequence[Series],
    count: int,
    ylabel: str,
    *,
    band: bool = True,
    ylog: bool = False,
    stripes: Sequence[int] = (),
    rings: Sequence[int] = (),
) -> str:
    """Values by layer (x: depth position) with the healthy alpha band shaded.

    ``stripes``: positions drawn as grey columns (untouched layers); ``rings``: positions
    circled (duplicated matrices).
    """
    values = [v for s in series for _, v, *_ in s.points]
    if ylog:
        positive = [v for v in values if v > 0] or [1.0]
        yr = padded(min(positive), max(positive), 0.08, log=True)
    else:
        top = min(max([ALPHA_UNDER + 1.0, *values]), ALPHA_AXIS_MAX)
        yr = (0.0, top * 1.04)
    plot = Plot.make(WIDE, 280, (-0.5, max(count, 1) - 0.5), yr, ylog=ylog)
    body = [vband(plot, p - 0.5, p + 0.5, "untouched-col", "untouched") for p in stripes]
    if band:
        body.append(hband(plot, ALPHA_OVER, ALPHA_UNDER, "band", "healthy band: alpha in [2, 6]"))
    body.append(axes(plot, "layer (depth order: names with numbers compared as numbers)", ylabel))
    r = _radius(count)
    for s in series:
        for pos, v, cls, text, row in s.points:
            if ylog and v <= 0:  # no place on a log axis (an untouched layer's zero update)
                continue
            shown = v if ylog else min(v, plot.y.hi)
            body.append(dot(plot, pos, shown, cls, text, r, row if s.cls != "base" else None))
    ring_at = {p: v for s in series for p, v, *_ in s.points if v > 0 or not ylog}
    body += [
        dot(plot, p, min(ring_at[p], plot.y.hi), "dup", "duplicated matrix", r + 2.5)
        for p in rings
        if p in ring_at
    ]
    return svg(plot, body, ylabel + " by layer")


def verdict_legend(present: Sequence[str], extra: Sequence[tuple[str, str]] = ()) -> str:
    """An HTML legend of verdict colours (and extra css-class/label pairs)."""
    items = [(verdict_class(v), v) for v in present] + list(extra)
    plot = Plot.make(WIDE, 22, (0, 1), (0, 1), margin=(0, 0, 0, 0))
    return svg(plot, [legend(items, 4, 15)], "legend", "chart legend")


def histogram(values: Sequence[float], label: str, width: float = 0.5) -> str:
    """Counts of ``values`` in bins of ``width`` on [0, ALPHA_AXIS_MAX]; the last bin holds
    everything above. Bars coloured by the alpha band they fall in."""
    nbins = int(ALPHA_AXIS_MAX / width)
    counts = [0] * nbins
    for v in values:
        counts[min(max(int(v / width), 0), nbins - 1)] += 1
    plot = Plot.make(360, 280, (0.0, ALPHA_AXIS_MAX), (0.0, max([*counts, 1]) * 1.1))
    body = [axes(plot, label, "layers")]
    for b, c in enumerate(counts):
        if not c:
            continue
        lo = b * width
        cls = (
            "v-over-trained"
            if lo < ALPHA_OVER
            else "v-ok"
            if lo < ALPHA_UNDER
            else "v-under-trained"
        )
        x0, x1, y = plot.x(lo), plot.x(lo + width), plot.y(c)
        text = f"{lo:g}–{lo + width:g}" if b < nbins - 1 else f"≥ {lo:g}"
        body.append(
            f'<rect class="{cls}" x="{x0:.1f}" y="{y:.1f}" width="{max(x1 - x0 - 1, 1):.1f}" '
            f'height="{plot.bottom - y:.1f}"><title>{label} {text}: {c} layers</title></rect>'
        )
    return svg(plot, body, f"histogram of {label}")


PHASE_CLASSES = {
    "under-trained": "phase-0",
    "learning": "phase-1",
    "converged": "phase-3",
    "over-fitting": "phase-2",
}


def phase_class(label: str) -> str:
    """CSS class of a phase band (known labels get their own colour)."""
    return PHASE_CLASSES.get(label, "phase-x")


@dataclass(frozen=True)
class StepMarks:
    """What every chart over steps shows: alerts (lines) and phases (bands)."""

    alerts: Sequence[tuple[float, str]] = ()
    phases: Sequence[tuple[float, float, str]] = ()


def step_chart(
    steps: Sequence[float],
    values: Sequence[float],
    label: str,
    xr: tuple[float, float],
    marks: StepMarks,
    cls: str = "series",
) -> str:
    """A metric over steps (small multiple): line + points, alerts and phases marked."""
    finite = [v for v in values if not is_missing(v)]
    yr = padded(min(finite), max(finite), 0.08) if finite else (0.0, 1.0)
    plot = Plot.make(440, 190, xr, yr, margin=(10, 12, 32, 52))
    body = [vband(plot, a, b, f"phase {phase_class(name)}", name) for a, b, name in marks.phases]
    body.append(axes(plot, "step", label))
    body += [vline(plot, s, "alert", "", f"alert at step {s:g}: {msg}") for s, msg in marks.alerts]
    body.append(path(plot, steps, values, cls, 0.0))
    if len(steps) <= 200:
        body += [
            dot(plot, s, v, "v-ok" if cls == "scalar" else "base", f"step {s:g}: {v:.4g}", 2.2)
            for s, v in zip(steps, values, strict=True)
            if not is_missing(v)
        ]
    return svg(plot, body, f"{label} over steps")
