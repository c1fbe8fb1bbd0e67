"""Norm-based layer metrics from the eigenvalues λ = σ² of WᵀW.

Sources: Martin, Peng & Mahoney (Nat. Commun. 12, 4122, 2021), "Predicting trends in
the quality of state-of-the-art neural networks without access to training or testing
data" (log norms, alpha-weighted, log alpha-norm); Roy & Vetterli (2007) for the
effective-rank entropy; WeightWatcher 0.7.7 ``apply_norm_metrics`` and
``RMT_Util.matrix_entropy``/``matrix_rank`` for conventions.

    log_norm          = log10 Σλ           (= log10 ‖W‖_F²)
    log_spectral_norm = log10 λ_max        (= log10 ‖W‖₂²)
    stable_rank       = Σλ / λ_max
    alpha_weighted    = α · log10 λ_max
    log_alpha_norm    = log10 Σ λ^α
    entropy           = −Σ pᵢ ln pᵢ / ln r,  pᵢ = λᵢ/Σλ (+1e-10), r = numerical rank
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

# WeightWatcher adds this to p and to the rank before taking logs.
ENTROPY_EPS = 1e-10


def numerical_rank(evals: FloatArray, N: int) -> int:
    """Number of eigenvalues above λ_max·N·eps.

    WeightWatcher counts singular values above σ_max·N·eps (``numpy.linalg.matrix_rank``).
    Eigenvalues of the Gram WᵀW carry absolute round-off ≈ eps·λ_max, so an exactly
    zero singular value shows up as |λ| ≲ N·eps·λ_max; the threshold is set there.
    The two rules agree on any matrix with condition number below 1/√(N·eps) ≈ 10⁷.
    """
    ev = np.asarray(evals, dtype=np.float64)
    tol = float(np.max(ev)) * N * np.finfo(np.float64).eps
    return int(np.count_nonzero(ev > tol))


def matrix_entropy(evals: FloatArray, N: int) -> float:
    """Normalised spectral entropy −Σ p ln p / ln(rank), in [0, 1] (1 = flat spectrum).

    A rank-1 spectrum has entropy 0. (WeightWatcher returns ≈206 there: −Σ p ln p ≈ 2e-8
    from the 1e-10 added to every p, divided by ln(1 + 1e-10); the only case we differ.)
    """
    ev = np.clip(np.asarray(evals, dtype=np.float64), 0.0, None)
    rank = numerical_rank(ev, N)
    if rank <= 1:
        return 0.0
    p = ev / np.sum(ev) + ENTROPY_EPS
    return float(-np.sum(p * np.log(p)) / np.log(rank + ENTROPY_EPS))


@dataclass(frozen=True)
class NormMetrics:
    """Scale-dependent summaries of a spectrum (see the module docstring)."""

    norm: float
    log_norm: float
    spectral_norm: float
    log_spectral_norm: float
    stable_rank: float
    matrix_rank: int
    entropy: float


def norm_metrics(evals: FloatArray, N: int) -> NormMetrics:
    """Compute :class:`NormMetrics` of a spectrum; ``N`` is the larger matrix dimension."""
    ev = np.clip(np.asarray(evals, dtype=np.float64), 0.0, None)
    total = float(np.sum(ev))
    lam_max = float(np.max(ev))
    return NormMetrics(
        norm=total,
        log_norm=float(np.log10(total)),
        spectral_norm=lam_max,
        log_spectral_norm=float(np.log10(lam_max)),
        stable_rank=total / lam_max,
        matrix_rank=numerical_rank(ev, N),
        entropy=matrix_entropy(ev, N),
    )


def alpha_weighted(alpha: float, lam_max: float) -> float:
    """α · log10 λ_max (Martin, Peng & Mahoney 2021)."""
    return float(alpha * np.log10(lam_max))


def log_alpha_norm(evals: FloatArray, alpha: float) -> float:
    """log10 Σ λᵢ^α, evaluated in log space so large α does not overflow."""
    ev = np.asarray(evals, dtype=np.float64)
    ev = ev[ev > 0]
    logs = alpha * np.log10(ev)
    top = float(np.max(logs))
    return top + float(np.log10(np.sum(10.0 ** (logs - top))))
