"""Training phases from metric trajectories: labels per observation, with hysteresis.

Sources: Martin & Mahoney (JMLR 2021) for the HTSR bands (α > 6 near-random, 2 ≤ α ≤ 6
well trained, α < 2 over-fit); Prakash & Martin (2025, arXiv 2506.04434) for the
phases of grokking and generalization collapse (pre-grokking, grokking, anti-grokking);
SCIENCE.md §5 for why α < 2 and trap counts alone raise false alarms.

Labels, for a layer at observation t (medians over the last ``window`` observations
damp the fragile tail fit, so every label uses only observations ≤ t):

* ``over-fitting`` (collapse warning): see :func:`collapse_signature`;
* ``under-trained``: median α > ``alpha_under`` (random-like spectrum);
* ``converged``: median α in [``alpha_over``, ``alpha_under``] and within ``settle`` of
  the median of the window before;
* ``learning``: anything else (α still moving, or heavy-tailed without the collapse
  signature).

The model's label at t: ``over-fitting`` if any layer is; ``under-trained`` if at least
half the layers are; ``converged`` if every layer is; else ``learning``.

Hysteresis: the reported label changes only after the raw label has been the same new
value for ``persist`` consecutive observations (it then dates from the first of them),
so a raw label that alternates never changes the reported one (no flapping).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

UNDER = "under-trained"
LEARNING = "learning"
CONVERGED = "converged"
OVERFIT = "over-fitting"
PHASES = (UNDER, LEARNING, CONVERGED, OVERFIT)


@dataclass(frozen=True)
class PhaseRules:
    """Thresholds of the phase labels.

    The defaults were chosen on the grokking runs of docs/grokking.md (3 seeds per weight
    decay, one scan every 1,000 steps): windows count observations (scans), not
    training steps, so with much denser or sparser scans scale ``window``,
    ``growth_window`` and ``persist`` to match.

    Attributes:
        alpha_over, alpha_under: HTSR band [2, 6].
        window: observations per median (and per trend comparison).
        settle: most change of the windowed median α for ``converged``.
        trap_scale: least trap scale (λ_max^shuffled − λ⁺)/λ⁺ of the collapse signature.
        trap_growth: least growth factor of the windowed trap scale over ``growth_window``
            observations (the trap is still growing).
        growth_window: observations between the two medians compared (long: the
            weight decay control's traps and norms also grow for a while after grokking).
        norm_growth: least rise of the windowed model weight norm, log10 Σ_l ‖W_l‖_F²,
            over ``growth_window`` observations (the weights keep growing).
        norm_new_high: also require the windowed model weight norm to exceed every
            earlier windowed value up to ``growth_window`` observations ago.
        persist: observations a new label must last before it is reported (k ≥ 1).
    """

    alpha_over: float = 2.0
    alpha_under: float = 6.0
    window: int = 5
    settle: float = 0.3
    trap_scale: float = 1.0
    trap_growth: float = 1.1
    growth_window: int = 20
    norm_growth: float = 0.0
    norm_new_high: bool = True
    persist: int = 3

    def __post_init__(self) -> None:
        for name in ("window", "growth_window", "persist"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        if not 0 < self.alpha_over < self.alpha_under:
            raise ValueError(
                f"need 0 < alpha_over < alpha_under, got {self.alpha_over}, {self.alpha_under}"
            )
        for name in ("settle", "trap_scale"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if not self.trap_growth >= 1:
            raise ValueError(f"trap_growth must be >= 1, got {self.trap_growth}")


@dataclass(frozen=True)
class LayerTrajectory:
    """One layer's metrics at increasing steps (NaN where a metric was not computed).

    Attributes:
        steps: observation steps, strictly increasing.
        alpha: power-law α; trap_scale: (λ_max^shuffled − λ⁺)/λ⁺ (``traps`` group).
    """

    steps: NDArray[np.int64]
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

    @classmethod
    def from_arrays(
        cls,
        steps: Sequence[int] | NDArray[np.int64],
        alpha: Sequence[float] | FloatArray,
        trap_scale: Sequence[float] | FloatArray | None = None,
    ) -> LayerTrajectory:
        """Build from sequences; a missing trap scale is all NaN."""
        s = np.asarray(steps, dtype=np.int64)
        traps = np.full(s.shape, np.nan) if trap_scale is None else trap_scale
        return cls(s, np.asarray(alpha, dtype=np.float64), np.asarray(traps, dtype=np.float64))


def model_log_norm(log_norms: Sequence[Sequence[float]] | FloatArray) -> FloatArray:
    """log10 Σ_l ‖W_l‖_F² per step from the layers' ``log_norm`` = log10 ‖W_l‖_F².

    ``log_norms[layer][t]``; the squared L2 norm of Golechha 2024 on a log scale. NaN
    where any layer lacks a value.
    """
    x = np.asarray(log_norms, dtype=np.float64)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"log_norms must be a 2-D array [layers, steps], got shape {x.shape}")
    top = np.max(x, axis=0)
    with np.errstate(invalid="ignore"):
        total = top + np.log10(np.sum(10.0 ** (x - top), axis=0))
    return np.asarray(total, dtype=np.float64)


@dataclass(frozen=True)
class PhaseTrack:
    """Labels over observations: ``raw`` (instantaneous), ``phase`` (with hysteresis),
    ``since`` (step where the reported phase began), ``reason`` (why the raw label)."""

    steps: NDArray[np.int64]
    raw: tuple[str, ...]
    phase: tuple[str, ...]
    since: tuple[int, ...]
    reason: tuple[str, ...]

    def changes(self) -> list[tuple[int, int, str]]:
        """(step confirmed, step since, phase) of every change of the reported phase."""
        out: list[tuple[int, int, str]] = []
        for i, label in enumerate(self.phase):
            if i == 0 or label != self.phase[i - 1]:
                out.append((int(self.steps[i]), self.since[i], label))
        return out


def rolling_median(values: FloatArray, window: int) -> FloatArray:
    """Median of the finite values among the last ``window`` observations, per observation
    (NaN where there are none).

    Vectorised over observations: each window is sorted (NaN sorts last), and the median
    is the mean of the middle pair among its k finite values.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.shape[0] == 0:
        return np.empty(0)
    padded = np.concatenate([np.full(window - 1, np.nan), v])
    padded[~np.isfinite(padded)] = np.nan
    ordered = np.sort(sliding_window_view(padded, window), axis=1)
    k = np.count_nonzero(np.isfinite(ordered), axis=1)
    lo = np.take_along_axis(ordered, np.maximum(k - 1, 0)[:, None] // 2, axis=1)[:, 0]
    hi = np.take_along_axis(ordered, (k // 2)[:, None], axis=1)[:, 0]
    return np.asarray(np.where(k > 0, (lo + hi) / 2.0, np.nan), dtype=np.float64)


def collapse_signature(
    trap_scale: FloatArray, model_norm: FloatArray, rules: PhaseRules
) -> list[str | None]:
    """Per observation: why it shows the collapse signature, or ``None``.

    With medians m(·) over ``window`` observations, now (t) and ``growth_window``
    observations earlier (t0), and ``model_norm`` = :func:`model_log_norm` at the same
    steps, the signature *starts* when

        m(trap)(t) ≥ ``trap_scale``  and  m(trap)(t) ≥ ``trap_growth`` · m(trap)(t0)
        and  m(norm)(t) − m(norm)(t0) > ``norm_growth``
        and  m(norm)(t) ≥ max_{τ ≤ t0} m(norm)(τ)     (if ``norm_new_high``)

    and *lasts* while m(trap)(t) ≥ ``trap_scale`` and m(norm)(t) − m(norm)(t0) >
    ``norm_growth`` (a Schmitt trigger: a trap that stops growing but stays large while
    the weights keep growing keeps the warning on; the weights ceasing to grow, or the
    trap shrinking below the threshold, ends it).

    A correlation trap (structure that survives shuffling: a few large entries, a mean
    shift) that is large *and still growing while the model's weights grow to new
    highs*. Neither part alone separates the runs of SCIENCE.md §5: with weight decay
    0.01 the traps grow large (and α falls below 2) for a while after grokking, and
    the weight norm rises a little, yet stays below its initial value and no collapse
    follows; without weight decay the norm grows throughout and the traps with it
    (docs/grokking.md).
    """
    trap = rolling_median(np.asarray(trap_scale, dtype=np.float64), rules.window)
    norm = rolling_median(np.asarray(model_norm, dtype=np.float64), rules.window)
    peaks = np.fmax.accumulate(norm)  # running maximum, NaN ignored
    out: list[str | None] = []
    active = False
    for t in range(trap.shape[0]):
        t0 = t - rules.growth_window
        if t0 < rules.window - 1 or not np.all(np.isfinite([trap[t], trap[t0], norm[t], norm[t0]])):
            active = False
            out.append(None)
            continue
        rose = norm[t] - norm[t0]
        lasts = trap[t] >= rules.trap_scale and rose > rules.norm_growth
        peak = float(peaks[t0]) if rules.norm_new_high else -np.inf
        starts = lasts and trap[t] >= rules.trap_growth * trap[t0] and norm[t] >= peak
        active = lasts and (active or starts)
        out.append(
            f"trap scale {trap[t]:.2f} (from {trap[t0]:.2f}) while the model's "
            f"log10 weight norm² rose {rose:+.3f}"
            if active
            else None
        )
    return out


def raw_layer_phases(
    traj: LayerTrajectory, rules: PhaseRules, model_norm: FloatArray | None = None
) -> tuple[list[str], list[str]]:
    """Instantaneous labels and reasons at every observation (causal: uses t' ≤ t only).

    ``model_norm``: :func:`model_log_norm` at the layer's steps (``None``: unknown, so
    the collapse signature is never found).
    """
    n = traj.steps.shape[0]
    norm = np.full(n, np.nan) if model_norm is None else np.asarray(model_norm, dtype=float)
    if norm.shape != (n,):
        raise ValueError(f"model_norm must have one value per step ({n}), got {norm.shape}")
    labels: list[str] = []
    reasons: list[str] = []
    w = rules.window
    signature = collapse_signature(traj.trap_scale, norm, rules)
    medians = rolling_median(traj.alpha, w)
    for t in range(n):
        alpha = float(medians[t])
        before = float(medians[t - w]) if t >= w else float("nan")
        collapse = signature[t]
        if collapse is not None:
            label, why = OVERFIT, collapse
        elif not np.isfinite(alpha):
            label, why = LEARNING, "no alpha yet"
        elif alpha > rules.alpha_under:
            label, why = UNDER, f"median alpha {alpha:.2f} > {rules.alpha_under:g}"
        elif alpha >= rules.alpha_over and abs(alpha - before) <= rules.settle:
            label, why = CONVERGED, f"median alpha {alpha:.2f} steady (was {before:.2f})"
        elif alpha < rules.alpha_over:
            label = LEARNING
            why = f"median alpha {alpha:.2f} < {rules.alpha_over:g}, without the collapse signature"
        else:
            label, why = LEARNING, f"median alpha {alpha:.2f} (was {before:.2f})"
        labels.append(label)
        reasons.append(why)
    return labels, reasons


def debounce(raw: Sequence[str], steps: Sequence[int], persist: int) -> tuple[list[str], list[int]]:
    """Reported labels with hysteresis, and the step each reported label dates from.

    The first observation's raw label is reported at once; afterwards the reported label
    switches to a new value only when the last ``persist`` raw labels all equal it.
    """
    if persist < 1:
        raise ValueError(f"persist must be a positive integer, got {persist}")
    phase: list[str] = []
    since: list[int] = []
    for i, label in enumerate(raw):
        if i == 0:
            phase.append(label)
            since.append(int(steps[0]))
            continue
        current, start = phase[-1], since[-1]
        run = raw[max(0, i - persist + 1) : i + 1]
        if label != current and len(run) == persist and all(x == label for x in run):
            current, start = label, int(steps[i - persist + 1])
        phase.append(current)
        since.append(start)
    return phase, since


def layer_phases(
    traj: LayerTrajectory, rules: PhaseRules | None = None, model_norm: FloatArray | None = None
) -> PhaseTrack:
    """Raw and reported (hysteresis) phase labels of one layer over its observations."""
    rules = rules or PhaseRules()
    raw, reasons = raw_layer_phases(traj, rules, model_norm)
    phase, since = debounce(raw, traj.steps.tolist(), rules.persist)
    return PhaseTrack(traj.steps, tuple(raw), tuple(phase), tuple(since), tuple(reasons))


def model_label(layer_labels: Sequence[str]) -> str:
    """Model label from its layers' labels at one observation (see the module docstring)."""
    if not layer_labels:
        raise ValueError("model_label needs at least one layer label")
    if OVERFIT in layer_labels:
        return OVERFIT
    if 2 * sum(x == UNDER for x in layer_labels) >= len(layer_labels):
        return UNDER
    if all(x == CONVERGED for x in layer_labels):
        return CONVERGED
    return LEARNING


def model_phases(
    steps: Sequence[int] | NDArray[np.int64],
    layer_raw: Sequence[Sequence[str]],
    rules: PhaseRules | None = None,
) -> PhaseTrack:
    """Model-level labels from the layers' raw labels (``layer_raw[layer][t]``).

    The model's raw label is :func:`model_label` of the layers' raw labels; hysteresis
    is then applied to the model's own sequence. The reason names the layers behind it.
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
        reasons.append(f"layers {', '.join(idx)}: {label}")
    phase, since = debounce(raw, s.tolist(), rules.persist)
    return PhaseTrack(s, tuple(raw), tuple(phase), tuple(since), tuple(reasons))


__all__ = [
    "CONVERGED",
    "LEARNING",
    "OVERFIT",
    "PHASES",
    "UNDER",
    "LayerTrajectory",
    "PhaseRules",
    "PhaseTrack",
    "collapse_signature",
    "debounce",
    "layer_phases",
    "model_label",
    "model_log_norm",
    "model_phases",
    "raw_layer_phases",
    "rolling_median",
]
