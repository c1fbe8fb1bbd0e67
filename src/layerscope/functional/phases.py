"""Training phases from metric trajectories: labels per observation, with hysteresis.

Sources: Martin & Mahoney (JMLR 2021) for the HTSR bands (α > 6 near-random, 2 ≤ α ≤ 6
well trained, α < 2 over-fit); Prakash & Martin (2025, arXiv 2506.04434) for the
phases of grokking and generalization collapse (pre-grokking, grokking, anti-grokking);
SCIENCE.md §5 for why α < 2 and trap counts alone raise false alarms.

Labels, for a layer at observation t (medians over the last ``window`` observations
damp the fragile tail fit, so every label uses only observations ≤ t):

* ``over-fitting`` (collapse warning): see :func:`collapse_evidence`;
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
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

UNDER = "under-trained"
LEARNING = "learning"
CONVERGED = "converged"
OVERFIT = "over-fitting"
PHASES = (UNDER, LEARNING, CONVERGED, OVERFIT)


@dataclass(frozen=True)
class PhaseRules:
    """Thresholds of the phase labels (defaults validated on the grokking runs, docs/grokking.md).

    Attributes:
        alpha_over, alpha_under: HTSR band [2, 6].
        window: observations per median (and per trend comparison).
        settle: most change of the windowed median α for ``converged``.
        trap_scale: least trap scale (λ_max^shuffled − λ⁺)/λ⁺ of the collapse signature.
        trap_growth: least growth factor of the windowed trap scale over ``growth_window``
            observations.
        growth_window: observations between the two trap-scale medians compared.
        norm_growth: least rise of the windowed log10 spectral norm over
            ``growth_window`` observations (the weights keep growing).
        persist: observations a new label must last before it is reported (k ≥ 1).
    """

    alpha_over: float = 2.0
    alpha_under: float = 6.0
    window: int = 5
    settle: float = 0.3
    trap_scale: float = 1.0
    trap_growth: float = 1.5
    growth_window: int = 10
    norm_growth: float = 0.0
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
        alpha: power-law α; trap_scale: (λ_max^shuffled − λ⁺)/λ⁺ (``traps`` group);
        log_spectral_norm: log10 λ_max (``norms`` group).
    """

    steps: NDArray[np.int64]
    alpha: FloatArray
    trap_scale: FloatArray
    log_spectral_norm: FloatArray

    def __post_init__(self) -> None:
        n = self.steps.shape[0]
        for name in ("alpha", "trap_scale", "log_spectral_norm"):
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
        log_spectral_norm: Sequence[float] | FloatArray | None = None,
    ) -> LayerTrajectory:
        """Build from sequences; a missing metric is all NaN."""
        s = np.asarray(steps, dtype=np.int64)

        def arr(values: Sequence[float] | FloatArray | None) -> FloatArray:
            if values is None:
                return np.full(s.shape, np.nan)
            return np.asarray(values, dtype=np.float64)

        return cls(s, arr(alpha), arr(trap_scale), arr(log_spectral_norm))


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


def _median(values: FloatArray, end: int, window: int) -> float:
    """Median of the finite values among ``values[end - window + 1 : end + 1]`` (NaN if none)."""
    chunk = values[max(0, end - window + 1) : end + 1]
    chunk = chunk[np.isfinite(chunk)]
    return float(np.median(chunk)) if chunk.size else float("nan")


def collapse_evidence(traj: LayerTrajectory, t: int, rules: PhaseRules) -> str | None:
    """Why observation ``t`` shows the collapse signature, or ``None``.

    With medians over ``window`` observations, now (``t``) and ``growth_window``
    observations earlier (``t0``):

        trap scale ≥ ``trap_scale``  and  trap scale(t) ≥ ``trap_growth`` · trap scale(t0)
        and  log10 λ_max(t) − log10 λ_max(t0) > ``norm_growth``

    A trap that is large *and still growing while the layer's spectral norm grows*:
    structure that survives shuffling (a few large entries, a mean shift) being
    amplified. A large but steady trap, or one that grows while weight decay shrinks
    the norm, is not the signature (SCIENCE.md §5: the WD = 0.01 control has traps).
    """
    t0 = t - rules.growth_window
    if t0 < rules.window - 1:
        return None
    w = rules.window
    scale, scale0 = _median(traj.trap_scale, t, w), _median(traj.trap_scale, t0, w)
    norm, norm0 = _median(traj.log_spectral_norm, t, w), _median(traj.log_spectral_norm, t0, w)
    if not (np.isfinite(scale) and np.isfinite(scale0) and np.isfinite(norm - norm0)):
        return None
    if scale < rules.trap_scale or scale < rules.trap_growth * scale0:
        return None
    if norm - norm0 <= rules.norm_growth:
        return None
    return (
        f"trap scale {scale:.2f} (from {scale0:.2f}) while log10 spectral norm "
        f"rose {norm - norm0:+.3f}"
    )


def raw_layer_phases(traj: LayerTrajectory, rules: PhaseRules) -> tuple[list[str], list[str]]:
    """Instantaneous labels and reasons at every observation (causal: uses t' ≤ t only)."""
    labels: list[str] = []
    reasons: list[str] = []
    w = rules.window
    for t in range(traj.steps.shape[0]):
        alpha = _median(traj.alpha, t, w)
        before = _median(traj.alpha, t - w, w) if t >= w else float("nan")
        collapse = collapse_evidence(traj, t, rules)
        if collapse is not None:
            label, why = OVERFIT, collapse
        elif not np.isfinite(alpha):
            label, why = LEARNING, "no alpha yet"
        elif alpha > rules.alpha_under:
            label, why = UNDER, f"median alpha {alpha:.2f} > {rules.alpha_under:g}"
        elif alpha >= rules.alpha_over and abs(alpha - before) <= rules.settle:
            label, why = CONVERGED, f"median alpha {alpha:.2f} steady (was {before:.2f})"
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


def layer_phases(traj: LayerTrajectory, rules: PhaseRules | None = None) -> PhaseTrack:
    """Raw and reported (hysteresis) phase labels of one layer over its observations."""
    rules = rules or PhaseRules()
    raw, reasons = raw_layer_phases(traj, rules)
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
    "collapse_evidence",
    "debounce",
    "layer_phases",
    "model_label",
    "model_phases",
    "raw_layer_phases",
]
