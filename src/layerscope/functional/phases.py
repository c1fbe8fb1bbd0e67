"""Training phases from metric trajectories, on the training-time axis.

Sources: Martin & Mahoney (JMLR 2021) for the HTSR bands (α > 6 near-random, 2 ≤ α ≤ 6
well trained, α < 2 over-fit); Prakash & Martin (2025, arXiv 2506.04434) for the
phases of grokking and generalization collapse (pre-grokking, grokking, anti-grokking);
docs/grokking.md for why α < 2 and trap counts alone raise false alarms and what
separates the runs instead (docs/science.md states the definitions).

Every rule is defined on the training step, not on the number of scans, so one run gives
the same verdict whether it was scanned 15, 30 or 60 times, log- or linear-spaced
(:mod:`layerscope.functional._time_windows` has the windows). For a layer at scan t
(step s), using scans at steps ≤ s only:

* ``over-fitting`` (collapse warning): :func:`collapse_signature`;
* ``under-trained``: smoothed α > ``alpha_under`` (random-like spectrum);
* ``cannot-judge``: the collapse rule has no usable earlier scan to compare with (the
  history is too short or too sparse) or the scan lacks its metrics; the reason says which;
* ``converged``: smoothed α in [``alpha_over``, ``alpha_under``] and within ``settle`` of
  the smoothed α one smoothing window earlier;
* ``learning``: anything else (α still moving, or heavy-tailed without the signature).

The model's label at t: ``over-fitting`` if any layer is; ``under-trained`` if at least
half the layers are; ``cannot-judge`` if any layer is; ``converged`` if every layer is;
else ``learning``. Hysteresis (:func:`debounce`): a new label is reported once it has held
on at least two scans spanning a factor ``persist`` of training time; it then dates from
the first of them, so an alternating raw label never changes the reported one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from layerscope.functional._time_windows import (
    comparison_index,
    window_median,
    window_starts,
)
from layerscope.functional.collapse import collapse_signature, model_log_norm, readiness
from layerscope.functional.phase_rules import PhaseRules

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

UNDER = "under-trained"
LEARNING = "learning"
CONVERGED = "converged"
OVERFIT = "over-fitting"
UNJUDGED = "cannot-judge"
PHASES = (UNDER, LEARNING, CONVERGED, OVERFIT, UNJUDGED)


@dataclass(frozen=True)
class LayerTrajectory:
    """One layer's metrics at increasing steps (NaN where a metric was not computed).

    Attributes:
        steps: training steps of the scans, strictly increasing, ≥ 0.
        alpha: power-law α; trap_scale: (λ_max^shuffled − λ⁺)/λ⁺ (``traps`` group).
    """

    steps: IntArray
    alpha: FloatArray
    trap_scale: FloatArray

    def __post_init__(self) -> None:
        n = self.steps.shape[0]
        for name in ("alpha", "trap_scale"):
            if getattr(self, name).shape != (n,):
                raise ValueError(
                    f"{name} must have one value per step ({n}), got shape "
                    f"{getattr(self, name).shape}"
                )
        if n > 1 and not np.all(np.diff(self.steps) > 0):
            raise ValueError("steps must be strictly increasing")
        if n and self.steps[0] < 0:
            raise ValueError(f"steps must be >= 0, got {int(self.steps[0])}")

    @classmethod
    def from_arrays(
        cls,
        steps: Sequence[int] | IntArray,
        alpha: Sequence[float] | FloatArray,
        trap_scale: Sequence[float] | FloatArray | None = None,
    ) -> LayerTrajectory:
        """Build from sequences; a missing trap scale is all NaN."""
        s = np.asarray(steps, dtype=np.int64)
        traps = np.full(s.shape, np.nan) if trap_scale is None else trap_scale
        return cls(s, np.asarray(alpha, dtype=np.float64), np.asarray(traps, dtype=np.float64))


@dataclass(frozen=True)
class PhaseTrack:
    """Labels over scans: ``raw`` (instantaneous), ``phase`` (with hysteresis), ``since``
    (step where the reported phase's evidence began), ``confirmed`` (step at which the
    reported phase was first reported), ``reason`` (why the raw label) and ``jump``
    (the tail fit jumped at this scan; layers only)."""

    steps: IntArray
    raw: tuple[str, ...]
    phase: tuple[str, ...]
    since: tuple[int, ...]
    confirmed: tuple[int, ...]
    reason: tuple[str, ...]
    jump: tuple[bool, ...] = ()

    def changes(self) -> list[tuple[int, int, str]]:
        """(step confirmed, step since, phase) of every change of the reported phase."""
        out: list[tuple[int, int, str]] = []
        for i, label in enumerate(self.phase):
            if i == 0 or label != self.phase[i - 1]:
                out.append((int(self.steps[i]), self.since[i], label))
        return out


def alpha_jumps(alpha: FloatArray, smoothed: FloatArray, factor: float) -> list[bool]:
    """Whether α at each scan is more than ``factor`` away from the previous smoothed α
    (a tail fit that jumped between neighbouring checkpoints; the first scan never)."""
    out = [False]
    for t in range(1, alpha.shape[0]):
        a, prev = float(alpha[t]), float(smoothed[t - 1])
        ok = np.isfinite(a) and np.isfinite(prev) and a > 0 and prev > 0
        out.append(bool(ok and abs(np.log(a / prev)) > np.log(factor)))
    return out


def raw_layer_phases(
    traj: LayerTrajectory, rules: PhaseRules, model_norm: FloatArray | None = None
) -> tuple[list[str], list[str], list[bool]]:
    """Instantaneous labels, reasons and α jumps at every scan (causal: scans ≤ t only).

    ``model_norm``: :func:`model_log_norm` at the layer's steps (``None``: unknown, so
    the collapse rule can never judge).
    """
    n = traj.steps.shape[0]
    norm = np.full(n, np.nan) if model_norm is None else np.asarray(model_norm, dtype=float)
    if norm.shape != (n,):
        raise ValueError(f"model_norm must have one value per step ({n}), got {norm.shape}")
    signature = collapse_signature(traj.steps, traj.trap_scale, norm, rules)
    ready = readiness(traj.steps, traj.trap_scale, norm, rules)
    medians = window_median(traj.alpha, window_starts(traj.steps, rules.smooth, rules.alpha_scans))
    earlier = comparison_index(traj.steps, rules.smooth)
    labels: list[str] = []
    reasons: list[str] = []
    for t in range(n):
        alpha = float(medians[t])
        before = float(medians[earlier[t]]) if earlier[t] >= 0 else float("nan")
        label, why = _layer_label(alpha, before, signature[t], ready[t], rules)
        labels.append(label)
        reasons.append(why)
    return labels, reasons, alpha_jumps(traj.alpha, medians, rules.jump)


def _layer_label(
    alpha: float, before: float, collapse: str | None, unready: str | None, rules: PhaseRules
) -> tuple[str, str]:
    """One layer's raw label and reason at one scan, in the module docstring's order."""
    if collapse is not None:
        return OVERFIT, collapse
    if np.isfinite(alpha) and alpha > rules.alpha_under:
        return UNDER, f"smoothed alpha {alpha:.2f} > {rules.alpha_under:g}"
    if unready is not None:
        return UNJUDGED, unready
    if not np.isfinite(alpha):
        return LEARNING, "no alpha yet"
    if alpha >= rules.alpha_over and abs(alpha - before) <= rules.settle:
        return CONVERGED, f"smoothed alpha {alpha:.2f} steady (was {before:.2f})"
    if alpha < rules.alpha_over:
        return LEARNING, (
            f"smoothed alpha {alpha:.2f} < {rules.alpha_over:g}, without the collapse signature"
        )
    return LEARNING, f"smoothed alpha {alpha:.2f} (was {before:.2f})"


def debounce(
    raw: Sequence[str], steps: Sequence[int], persist: float
) -> tuple[list[str], list[int], list[int]]:
    """Reported labels with hysteresis, the step each dates from, and the step it was
    first reported (confirmed).

    The first scan's raw label is reported at once. Afterwards the reported label switches
    to a new value at scan i when the raw labels of scans j..i all equal it, j < i, and
    step_i ≥ ``persist`` · step_j (two scans at least, spanning a factor of training time).
    """
    if not persist >= 1:
        raise ValueError(f"persist must be >= 1, got {persist}")
    phase: list[str] = []
    since: list[int] = []
    confirmed: list[int] = []
    start = 0  # first scan of the current run of equal raw labels
    for i, label in enumerate(raw):
        if i == 0:
            phase.append(label)
            since.append(int(steps[0]))
            confirmed.append(int(steps[0]))
            continue
        if label != raw[i - 1]:
            start = i
        current, first, seen = phase[-1], since[-1], confirmed[-1]
        if label != current and start < i and steps[i] >= persist * steps[start]:
            current, first, seen = label, int(steps[start]), int(steps[i])
        phase.append(current)
        since.append(first)
        confirmed.append(seen)
    return phase, since, confirmed


def layer_phases(
    traj: LayerTrajectory, rules: PhaseRules | None = None, model_norm: FloatArray | None = None
) -> PhaseTrack:
    """Raw and reported (hysteresis) phase labels of one layer over its scans."""
    rules = rules or PhaseRules()
    raw, reasons, jumps = raw_layer_phases(traj, rules, model_norm)
    phase, since, confirmed = debounce(raw, traj.steps.tolist(), rules.persist)
    return PhaseTrack(
        traj.steps,
        tuple(raw),
        tuple(phase),
        tuple(since),
        tuple(confirmed),
        tuple(reasons),
        tuple(jumps),
    )


def model_label(layer_labels: Sequence[str]) -> str:
    """Model label from its layers' labels at one scan (see the module docstring)."""
    if not layer_labels:
        raise ValueError("model_label needs at least one layer label")
    if OVERFIT in layer_labels:
        return OVERFIT
    if 2 * sum(x == UNDER for x in layer_labels) >= len(layer_labels):
        return UNDER
    if UNJUDGED in layer_labels:
        return UNJUDGED
    if all(x == CONVERGED for x in layer_labels):
        return CONVERGED
    return LEARNING


def model_phases(
    steps: Sequence[int] | IntArray,
    layer_raw: Sequence[Sequence[str]],
    rules: PhaseRules | None = None,
) -> PhaseTrack:
    """Model-level labels from the layers' raw labels (``layer_raw[layer][t]``).

    The model's raw label is :func:`model_label` of the layers' raw labels; hysteresis
    is then applied to the model's own sequence. The reason names the layers behind it
    (by index).
    """
    rules = rules or PhaseRules()
    s = np.asarray(steps, dtype=np.int64)
    if any(len(labels) != s.shape[0] for labels in layer_raw):
        raise ValueError("every layer needs one raw label per step")
    raw: list[str] = []
    reasons: list[str] = []
    for t in range(s.shape[0]):
        at_t = [labels[t] for labels in layer_raw]
        label = model_label(at_t)
        raw.append(label)
        idx = [str(i) for i, x in enumerate(at_t) if x == label]
        if idx:
            reasons.append(f"layers {', '.join(idx)}: {label}")
        else:  # e.g. learning, from a mix of converged and under-trained layers
            counts = {x: at_t.count(x) for x in dict.fromkeys(at_t)}
            reasons.append("mixed: " + ", ".join(f"{n} {x}" for x, n in counts.items()))
    phase, since, confirmed = debounce(raw, s.tolist(), rules.persist)
    return PhaseTrack(s, tuple(raw), tuple(phase), tuple(since), tuple(confirmed), tuple(reasons))


__all__ = [
    "CONVERGED",
    "LEARNING",
    "OVERFIT",
    "PHASES",
    "UNDER",
    "UNJUDGED",
    "LayerTrajectory",
    "PhaseRules",
    "PhaseTrack",
    "alpha_jumps",
    "collapse_signature",
    "debounce",
    "layer_phases",
    "model_label",
    "model_log_norm",
    "model_phases",
    "raw_layer_phases",
    "readiness",
]
