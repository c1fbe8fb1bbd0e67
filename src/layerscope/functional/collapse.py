"""The collapse signature of the phase detector: a correlation trap that is large and still
growing while the model's weights grow to new highs (Prakash & Martin 2025, arXiv
2506.04434, for the traps at generalization collapse; docs/grokking.md for why the weight
norm is what separates a collapse from the weight-decay control), and when the history
allows judging it at all.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from layerscope.functional._time_windows import (
    comparison_index,
    window_median,
    window_starts,
)
from layerscope.functional.phase_rules import PhaseRules

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def model_log_norm(log_norms: Sequence[Sequence[float]] | FloatArray) -> FloatArray:
    """log10 Σ_l ‖W_l‖_F² per step from the layers' ``log_norm`` = log10 ‖W_l‖_F².

    ``log_norms[layer][t]``; the squared L2 norm of Golechha 2024 (arXiv 2405.12755) on a
    log scale. NaN where any layer lacks a value.
    """
    x = np.asarray(log_norms, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"log_norms must be a 2-D array [layers, steps], got shape {x.shape}")
    top = np.max(x, axis=0)
    with np.errstate(invalid="ignore"):
        total = top + np.log10(np.sum(10.0 ** (x - top), axis=0))
    return np.asarray(total, dtype=np.float64)


def readiness(
    steps: IntArray, trap_scale: FloatArray, model_norm: FloatArray, rules: PhaseRules
) -> list[str | None]:
    """Per scan: why the collapse rule cannot judge it, or ``None`` when it can.

    It can when the scan has a trap scale and a model norm, and an earlier scan exists at
    a step in [s/(growth·sparse), s/growth] (a known state to compare with).
    """
    comp = comparison_index(steps, rules.growth)
    out: list[str | None] = []
    for t, c in enumerate(comp):
        s = int(steps[t])
        lo, hi = s / (rules.growth * rules.sparse), s / rules.growth
        need = f"a scan between steps {lo:,.0f} and {hi:,.0f}"
        if not np.isfinite(trap_scale[t]):
            out.append("no correlation-trap metrics at this scan (scan with metrics='all')")
        elif not np.isfinite(model_norm[t]):
            out.append("no weight norm (log_norm) for every layer at this scan")
        elif c < 0:
            out.append(
                f"{t + 1} scan(s) over steps {int(steps[0]):,}–{s:,}; the collapse rule "
                f"compares step {s:,} with {need}, and none is that early yet"
            )
        elif steps[c] * rules.growth * rules.sparse < s:
            out.append(
                f"scans too sparse: the last scan before step {s:,} at or below half of it is "
                f"at {int(steps[c]):,}; the collapse rule needs {need}"
            )
        else:
            out.append(None)
    return out


def collapse_signature(
    steps: IntArray, trap_scale: FloatArray, model_norm: FloatArray, rules: PhaseRules
) -> list[str | None]:
    """Per scan: why it shows the collapse signature, or ``None``.

    With m(·) the median over the smoothing window, t0 the comparison scan (the last at a
    step ≤ s/``growth``; see :func:`readiness`), the signature *starts* when

        m(trap)(t) ≥ ``trap_scale``  and  m(trap)(t) ≥ ``trap_growth`` · m(trap)(t0)
        and  m(norm)(t) − m(norm)(t0) > ``norm_growth``
        and  m(norm)(t) ≥ max_{τ ≤ t0} m(norm)(τ)     (if ``norm_new_high``)

    and *lasts* while m(trap)(t) ≥ ``trap_scale`` and m(norm)(t) − m(norm)(t0) >
    ``norm_growth`` (a Schmitt trigger). A scan the rule cannot judge ends it.

    A correlation trap (structure that survives shuffling) that is large *and still
    growing while the model's weights grow to new highs*. Neither part alone separates
    the runs of docs/grokking.md: with weight decay the traps grow large (and α falls
    below 2) for a while after grokking, but the weight norm stays below its initial
    value and no collapse follows; without it the norm grows throughout and the traps
    with it.
    """
    starts_at = window_starts(steps, rules.smooth, 1)
    trap = window_median(trap_scale, starts_at)
    norm = window_median(model_norm, starts_at)
    peaks = np.fmax.accumulate(norm)  # running maximum, NaN ignored
    comp = comparison_index(steps, rules.growth)
    ready = readiness(steps, trap_scale, model_norm, rules)
    out: list[str | None] = []
    active = False
    for t, c in enumerate(comp):
        if ready[t] is not None or not np.all(np.isfinite([trap[c], norm[c]])):
            active = False
            out.append(None)
            continue
        rose = norm[t] - norm[c]
        lasts = trap[t] >= rules.trap_scale and rose > rules.norm_growth
        peak = float(peaks[c]) if rules.norm_new_high else -np.inf
        starts = lasts and trap[t] >= rules.trap_growth * trap[c] and norm[t] >= peak
        active = lasts and (active or starts)
        out.append(
            f"trap scale {trap[t]:.2f} (from {trap[c]:.2f} at step {int(steps[c]):,}) while the "
            f"model's log10 weight norm² rose {rose:+.3f}"
            if active
            else None
        )
    return out


__all__ = ["collapse_signature", "model_log_norm", "readiness"]
