"""Pure functions on weight updates ΔW = W_tuned − W_base and on LoRA factors.

* Low-rank spectrum through the r×r core (Hu et al. 2021, LoRA, arXiv 2106.09685):
  with B = Q_B R_B and Aᵀ = Q_A R_A (thin QR), s·B·A = Q_B (s R_B R_Aᵀ) Q_Aᵀ, and Q_B,
  Q_A have orthonormal columns, so the non-zero singular values of ΔW are those of
  the r×r matrix s·R_B R_Aᵀ. Cost O((out + in)·r²) instead of O(out·in·min(out, in)).
* Effective rank (Roy & Vetterli 2007, "The effective rank: a measure of effective
  dimensionality"): erank = exp(−Σ pᵢ ln pᵢ), pᵢ = σᵢ / Σσ over the non-zero singular
  values σᵢ; between 1 and the rank.
* Relative update ‖ΔW‖_F / ‖W_base‖_F and spectral ratio ‖ΔW‖₂ / ‖W_base‖₂ from the
  eigenvalues of the two Gram matrices (‖W‖_F² = Σλ, ‖W‖₂² = λ_max).
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


def lowrank_eigenvalues(B: FloatArray, A: FloatArray, scale: float, M: int) -> FloatArray:
    """Eigenvalues of ΔWᵀΔW for ΔW = scale·B·A (B: out×r, A: r×in), padded to M values.

    Args:
        B: the LoRA factor B (out × r).
        A: the LoRA factor A (r × in).
        scale: s.
        M: min(out, in), the length of the full ESD; the M − r missing eigenvalues are 0.

    Returns:
        M eigenvalues sorted ascending, exactly those of the dense product up to round-off.
    """
    _, RB = np.linalg.qr(np.asarray(B, dtype=np.float64))
    _, RA = np.linalg.qr(np.asarray(A, dtype=np.float64).T)
    sv = np.linalg.svd(scale * (RB @ RA.T), compute_uv=False)
    ev = np.zeros(M, dtype=np.float64)
    k = min(sv.size, M)
    ev[:k] = np.sort(sv**2)[::-1][:k]
    return np.sort(ev)


def effective_rank(evals: FloatArray, tol: float | None = None) -> float:
    """exp(−Σ p ln p) over singular values √λ > tol (Roy & Vetterli 2007)."""
    ev = np.clip(np.asarray(evals, dtype=np.float64), 0.0, None)
    if ev.size == 0 or float(ev.max()) == 0.0:
        return 0.0
    thresh = float(ev.max()) * ev.size * np.finfo(np.float64).eps if tol is None else tol
    sv = np.sqrt(ev[ev > thresh])
    p = sv / sv.sum()
    return float(np.exp(-np.sum(p * np.log(p))))


def spectral_ratio(delta_evals: FloatArray, base_evals: FloatArray) -> float:
    """‖ΔW‖₂ / ‖W_base‖₂ = √(λ_max,Δ / λ_max,base)."""
    return float(np.sqrt(np.max(delta_evals) / np.max(base_evals)))
