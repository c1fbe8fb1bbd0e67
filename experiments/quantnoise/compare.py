"""How far a quantized copy's per-layer metrics are from the reference copy's.

* |Δ| per metric: mean and max over the layers both copies fitted.
* Spearman's rank correlation of the per-block means (what an AlphaPruning plan with block
  mapping orders the blocks by): Pearson's correlation of the average ranks (Spearman 1904).
* The largest change of a parameter's planned sparsity (AlphaPruning, Lu et al., NeurIPS
  2024, arXiv 2410.10912) between the two copies' plans.
* Alpha of a fixed tail: α = 1 + n / Σ_{j≤n} ln(λ_j/λ_n) over the n largest eigenvalues
  (Clauset, Shalizi & Newman, SIAM Review 2009, eq. 3.1) — the same tail size in both copies,
  so a change is the tail's shape and not a different xmin choice.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from layerscope.control.plan import PlanOptions, block_of, plan_from_layers
from layerscope.functional.powerlaw import candidate_alphas


def abs_delta(ref: pd.Series, other: pd.Series) -> tuple[float, float, int]:
    """(mean |Δ|, max |Δ|, count) over the index entries finite in both series."""
    a, b = ref.astype(float).align(other.astype(float), join="inner")
    d = (b - a).abs()
    d = d[np.isfinite(d)]
    if d.empty:
        return float("nan"), float("nan"), 0
    return float(d.mean()), float(d.max()), int(d.size)


def spearman(a: NDArray[np.floating], b: NDArray[np.floating]) -> float:
    """Spearman's rho: Pearson's r of the average ranks (ties share their mean rank)."""
    ra = pd.Series(np.asarray(a, dtype=float)).rank().to_numpy()
    rb = pd.Series(np.asarray(b, dtype=float)).rank().to_numpy()
    if ra.size < 2 or np.ptp(ra) == 0 or np.ptp(rb) == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def block_means(layers: pd.DataFrame, metric: str) -> pd.Series:
    """Mean of ``metric`` over each repeated block's matrices (NaN fits left out)."""
    blocks = layers["name"].map(block_of)
    values = pd.to_numeric(layers[metric], errors="coerce")
    return values.groupby(blocks).mean()


def block_spearman(ref: pd.DataFrame, other: pd.DataFrame, metric: str) -> float:
    """Spearman's rho between the two copies' block means of ``metric``."""
    a, b = block_means(ref, metric).align(block_means(other, metric), join="inner")
    return spearman(a.to_numpy(), b.to_numpy())


def plan_change(
    ref: pd.DataFrame, other: pd.DataFrame, metric: str, sparsity: float, eps: float
) -> float:
    """Largest |Δ sparsity| of a parameter between the two copies' block-mapped plans.

    ``metric`` may be any column of the frames: it is copied into ``alpha`` so the plan
    accepts columns that are not scan columns (``alpha_peak``)."""
    opts = PlanOptions(sparsity=sparsity, metric="alpha", eps=eps, mapping="block")
    a = plan_from_layers(ref.assign(alpha=ref[metric]), opts).layers
    b = plan_from_layers(other.assign(alpha=other[metric]), opts).layers
    common = a.keys() & b.keys()
    return max(abs(a[k] - b[k]) for k in common) if common else float("nan")


def tail_alpha(evals: NDArray[np.floating], n: int) -> float:
    """MLE alpha of the ``n`` largest eigenvalues with xmin the n-th largest (the scan's
    candidate formula, without the small-sample correction)."""
    lam = np.sort(np.asarray(evals, dtype=np.float64))
    if n < 2 or lam.size < n or lam[-n] <= 0:
        return float("nan")
    return float(candidate_alphas(np.log(lam[-n:]), bias_corrected=False)[0])
