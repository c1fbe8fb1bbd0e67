"""The training view of a tracked run: model-level metrics and user scalars over steps
(small multiples on one step axis), a layer × step heat map of alpha, phases shaded,
alerts marked and alpha jumps listed. Renders a :class:`~layerscope.track.view.RunView`;
computes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from layerscope.report.html.charts import (
    StepMarks,
    depth_order,
    phase_class,
    step_chart,
    verdict_legend,
)
from layerscope.report.html.heatmap import heatmap
from layerscope.report.html.page import (
    card,
    cards,
    document,
    figure,
    fmt,
    section,
    simple_table,
)
from layerscope.report.html.svg import esc

if TYPE_CHECKING:
    from layerscope.track.view import RunView

# Model-level step columns charted when present (summary means and counts).
STEP_METRICS = (
    ("alpha", "mean alpha"),
    ("alpha_weighted", "mean alpha_weighted"),
    ("count_under_trained", "under-trained layers"),
    ("count_over_trained", "over-trained layers"),
    ("count_traps", "layers with traps"),
    ("num_traps", "mean traps per layer"),
    ("ERG_gap", "mean ERG gap"),
    ("log_norm", "mean log_norm"),
    ("stable_rank", "mean stable rank"),
)


def phase_spans(model: pd.DataFrame) -> list[tuple[float, float, str]]:
    """Spans (start step, end step, label) of consecutive steps with the same model phase,
    from a per-step table with ``step`` and ``phase`` columns."""
    if model.empty:
        return []
    steps = [float(s) for s in model["step"]]
    labels = [str(p) for p in model["phase"]]
    spans: list[tuple[float, float, str]] = []
    start = 0
    for i in range(1, len(steps) + 1):
        if i == len(steps) or labels[i] != labels[start]:
            end = steps[i] if i < len(steps) else steps[-1]
            spans.append((steps[start], end, labels[start]))
            start = i
    return spans


def _phase_note(data: RunView) -> str:
    """The model's current phase and why; a note when no step was labelled."""
    if not len(data.phases.model):
        return "The phase detector labelled no steps of this run."
    return f"Model phase: {data.phases.phase}. {data.phases.reason}"


def _header(data: RunView) -> str:
    ok = data.steps[data.steps["status"] == "ok"] if "status" in data.steps else data.steps
    last = data.steps["step"].max() if len(data.steps) else None
    items = [
        card("steps scanned", str(len(ok))),
        card("steps recorded", str(len(data.steps))),
        card("last step", fmt(last, "g")),
        card("alerts", str(len(data.alerts)), "v-over-trained" if len(data.alerts) else "v-ok"),
        card("layers", str(data.history["name"].nunique() if len(data.history) else 0)),
    ]
    meta = " · ".join(f"{esc(k)}: {esc(v)}" for k, v in list(data.meta.items())[:8])
    return (
        f'<header id="summary"><h1>layerscope run: {esc(data.run)}</h1>'
        f'<p class="meta">{meta}</p>{cards(items)}</header>'
    )


def _numeric(frame: pd.DataFrame, column: str) -> list[float]:
    return [float(v) for v in pd.to_numeric(frame[column], errors="coerce")]


def _step_range(data: RunView) -> tuple[float, float]:
    steps = [float(s) for s in data.steps.get("step", [])]
    steps += [float(s) for s in data.scalars.get("step", [])]
    if not steps:
        return (0.0, 1.0)
    lo, hi = min(steps), max(steps)
    pad = (hi - lo) * 0.03 or 0.5
    return (lo - pad, hi + pad)


def _marks(data: RunView) -> StepMarks:
    alerts = [
        (float(a["step"]), f"{a['level']}: {a['message']}") for _, a in data.alerts.iterrows()
    ]
    return StepMarks(alerts, phase_spans(data.phases.model[["step", "phase"]]))


def _metric_charts(data: RunView, xr: tuple[float, float], marks: StepMarks) -> str:
    ok = data.steps[data.steps["status"] == "ok"] if "status" in data.steps else data.steps
    figures = []
    for column, label in STEP_METRICS:
        if column not in ok or ok[column].isna().all():
            continue
        figures.append(
            figure(step_chart(_numeric(ok, "step"), _numeric(ok, column), label, xr, marks), label)
        )
    if not figures:
        return section(
            "metrics",
            "Model-level metrics over steps",
            '<p class="note">No successful scan recorded yet.</p>',
        )
    note = "Red dashed lines: alerts (hover for the message); shaded spans: detected phases."
    labels = list(dict.fromkeys(str(p) for p in data.phases.model["phase"]))
    key = verdict_legend([], [(f"phase {phase_class(p)}", p) for p in labels]) if labels else ""
    return section(
        "metrics",
        "Model-level metrics over steps",
        f'{key}<div class="charts">{"".join(figures)}</div>',
        note,
    )


def _scalar_charts(data: RunView, xr: tuple[float, float], marks: StepMarks) -> str:
    keys = [c for c in data.scalars.columns if c != "step"]
    if not keys:
        return section("scalars", "User scalars", '<p class="note">No scalars were logged.</p>')
    figures = []
    for key in keys:
        part = data.scalars[["step", key]].dropna()
        figures.append(
            figure(
                step_chart(_numeric(part, "step"), _numeric(part, key), key, xr, marks, "scalar"),
                key,
            )
        )
    return section(
        "scalars",
        "User scalars",
        f'<div class="charts">{"".join(figures)}</div>',
        "Logged with the run (train/test loss, accuracy...), on the same step axis.",
    )


def _heatmap_section(data: RunView, xr: tuple[float, float], marks: StepMarks) -> str:
    hist = data.history.dropna(subset=["alpha"]) if len(data.history) else data.history
    if hist.empty:
        return section(
            "heatmap",
            "Alpha per layer over steps",
            '<p class="note">No per-layer alpha recorded.</p>',
        )
    grid = hist.pivot_table(index="name", columns="step", values="alpha", aggfunc="first")
    names = [str(n) for n in grid.index]
    order = depth_order(names)
    values = grid.to_numpy(dtype=np.float64)[order]
    steps = [float(s) for s in grid.columns]
    body = heatmap([names[i] for i in order], steps, values, xr, marks)
    return section(
        "heatmap",
        "Alpha per layer over steps",
        body,
        "Rows: layers in depth order; columns: scanned steps. Hover for values.",
    )


def _tables(data: RunView) -> str:
    out = []
    if len(data.alerts):
        rows = [
            (
                a["step"],
                a["evidence_step"],
                a["level"],
                a["message"],
                "yes" if a["stored"] else "replayed",
            )
            for _, a in data.alerts.iterrows()
        ]
        head = ("raised at", "evidence from", "level", "message", "stored")
        out.append(section("alerts", f"Alerts ({len(rows)})", simple_table(rows, head)))
    else:
        out.append(section("alerts", "Alerts", '<p class="note">No alerts.</p>'))
    jumps = data.phases.jumps()
    if len(jumps):
        jump_rows = [(r["step"], r["name"], r["alpha"]) for _, r in jumps.iterrows()]
        note = (
            "The tail fit of these layers jumped (alpha more than 2x away from its smoothed "
            "value one scan earlier); the phase labels use the smoothed alpha."
        )
        table = simple_table(jump_rows, ("step", "layer", "alpha"))
        out.append(section("jumps", f"Alpha jumps ({len(jump_rows)})", table, note))
    cols = [
        c
        for c in (
            "step",
            "status",
            "alpha",
            "count_under_trained",
            "count_over_trained",
            "elapsed_s",
            "source",
            "error",
        )
        if c in data.steps
    ]
    steps = [[r.get(c) for c in cols] for r in data.steps.to_dict(orient="records")]
    out.append(section("steps", f"Steps ({len(steps)})", simple_table(steps, cols)))
    return "".join(out)


def _stored(stored: object) -> str:
    return "yes" if stored else "replayed (tracked without the detector)"


def run_body(data: RunView) -> list[str]:
    xr = _step_range(data)
    marks = _marks(data)
    note = f'<p class="note">{esc(_phase_note(data))}</p>'
    return [
        _header(data) + note,
        _metric_charts(data, xr, marks),
        _heatmap_section(data, xr, marks),
        _scalar_charts(data, xr, marks),
        _tables(data),
    ]


def run_html(data: RunView) -> str:
    """The training report of a run (:func:`layerscope.track.view.read_run` reads it)."""
    return document(f"layerscope run: {data.run}", "run", run_body(data))


__all__ = ["phase_spans", "run_html"]
