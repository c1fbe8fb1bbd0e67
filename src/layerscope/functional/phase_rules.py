"""The thresholds and time windows of the phase detector (:mod:`layerscope.functional.phases`).

Every window is a factor of the training step, never a count of scans (docs/grokking.md
explains and measures each rule).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PhaseRules:
    """Thresholds and time windows of the phase labels (factors of the training step).

    The defaults were chosen on the lr 5×10⁻³ grokking runs of docs/grokking.md (3 seeds
    per weight decay) and checked at several checkpoint cadences there.

    Attributes:
        alpha_over, alpha_under: HTSR band [2, 6].
        smooth: medians over the scans at steps in [s/smooth, s] ...
        alpha_scans: ... and, for α, over at least the last ``alpha_scans`` scans, so one
            jumping tail fit never decides a label.
        settle: most change of the smoothed α for ``converged``.
        trap_scale: least trap scale (λ_max^shuffled − λ⁺)/λ⁺ of the collapse signature.
        trap_growth: least growth factor of the smoothed trap scale since the comparison
            scan (the trap is still growing).
        growth: the comparison scan is the last one at a step ≤ s/growth.
        sparse: the comparison scan must be at a step ≥ s/(growth·sparse); an older one
            is too far back to say whether anything is growing *now* (``cannot-judge``).
        norm_growth: least rise of the smoothed model weight norm log10 Σ_l ‖W_l‖_F²
            since the comparison scan (the weights keep growing).
        norm_new_high: also require it to exceed every smoothed value up to the
            comparison scan.
        persist: a new label is reported once it has held on ≥ 2 scans whose steps span
            at least this factor.
        jump: an α more than this factor away from the previous smoothed α is flagged as
            a jump of the tail fit.
    """

    alpha_over: float = 2.0
    alpha_under: float = 6.0
    smooth: float = 1.25
    alpha_scans: int = 3
    settle: float = 0.3
    trap_scale: float = 1.0
    trap_growth: float = 1.1
    growth: float = 2.0
    sparse: float = 4.0
    norm_growth: float = 0.0
    norm_new_high: bool = True
    persist: float = 1.1
    jump: float = 2.0

    def __post_init__(self) -> None:
        if not isinstance(self.alpha_scans, int) or self.alpha_scans < 1:
            raise ValueError(f"alpha_scans must be a positive integer, got {self.alpha_scans!r}")
        if not 0 < self.alpha_over < self.alpha_under:
            raise ValueError(
                f"need 0 < alpha_over < alpha_under, got {self.alpha_over}, {self.alpha_under}"
            )
        for name in ("settle", "trap_scale"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("smooth", "trap_growth", "sparse", "persist"):
            if not getattr(self, name) >= 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("growth", "jump"):
            if not getattr(self, name) > 1:
                raise ValueError(f"{name} must be > 1, got {getattr(self, name)}")


__all__ = ["PhaseRules"]
