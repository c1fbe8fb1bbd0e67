"""Eigenvector localization of a layer (WeightWatcher ``vectors=True``).

For the unit eigenvectors v of X = WᵀW (the right singular vectors of W, length M):

    localization ratio   ‖v‖₁ / ‖v‖_∞        (M for a flat vector, 1 for a basis vector)
    participation ratio  ‖v‖₂ / ‖v‖₄         (M^(1/4) flat, 1 localized)
    vector entropy       −Σ pᵢ ln pᵢ over the 100-bin density histogram of |v| − mean|v|,
                         p = (h + 1e−10)/Σ(h + 1e−10)

Localized eigenvectors (few large entries) in the power-law tail are a signature of
heavy-tailed, correlated weights (Martin & Mahoney, JMLR 22(165) 2021, §4; the ratios
follow Bouchaud & co., arXiv:1810.01075). As WeightWatcher 0.7.7
(``apply_analyze_eigenvectors``, ``RMT_Util.discrete_entropy``) we split a layer's
eigenvectors into the *bulk* (eigenvalue < xmin of the power-law fit) and the *tail*
(≥ xmin) and report the mean and variance (ddof 0) of each measure in each part.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

ENTROPY_BINS = 100
# WeightWatcher's EPSILON added to every histogram density before normalising.
ENTROPY_EPS = 1e-10
MEASURES = ("vec_entropy", "loc_ratio", "part_ratio")


def localization_ratio(V: FloatArray) -> FloatArray:
    """‖v‖₁/‖v‖_∞ of every column of ``V``."""
    A = np.abs(V)
    return np.asarray(A.sum(axis=0) / A.max(axis=0))


def participation_ratio(V: FloatArray) -> FloatArray:
    """‖v‖₂/‖v‖₄ of every column of ``V``."""
    sq = np.square(V)
    return np.asarray(np.sqrt(sq.sum(axis=0)) / np.sqrt(np.sqrt(np.square(sq).sum(axis=0))))


def vector_entropy(V: FloatArray) -> FloatArray:
    """Entropy of the 100-bin histogram of |v| − mean|v| for every column of ``V``."""
    out = np.empty(V.shape[1])
    for j in range(V.shape[1]):
        a = np.abs(V[:, j])
        h = np.histogram(a - a.mean(), density=True, bins=ENTROPY_BINS)[0]
        p = (h + ENTROPY_EPS) / np.sqrt(2 * np.pi)
        p = p / p.sum()
        out[j] = -np.sum(p * np.log(p))
    return out


@dataclass(frozen=True)
class Localization:
    """Mean and variance of each measure over the bulk and tail eigenvectors.

    ``stats[f"{part}_{stat}_{measure}"]`` for part in (bulk, tail), stat in (mean, var),
    measure in :data:`MEASURES` (WeightWatcher's column names); NaN for an empty part.
    """

    stats: dict[str, float]


def localization(evals: FloatArray, V: FloatArray, n_tail: int) -> Localization:
    """Bulk/tail localization statistics of eigenvectors ``V`` (columns) with eigenvalues ``evals``.

    Args:
        evals: eigenvalue of each column of ``V``.
        V: unit eigenvectors, one per column (several matrices' vectors may be pooled).
        n_tail: size of the power-law tail (``num_pl_spikes``): the eigenvectors of the
            ``n_tail`` largest eigenvalues are the tail (λ ≥ xmin), the others the bulk.
            By rank rather than by comparing with xmin, because xmin is one of the
            eigenvalues and a second solver may return it a rounding error lower.
    """
    values = {
        "vec_entropy": vector_entropy(V),
        "loc_ratio": localization_ratio(V),
        "part_ratio": participation_ratio(V),
    }
    tail = np.zeros(evals.size, dtype=bool)
    tail[np.argsort(evals, kind="stable")[evals.size - n_tail :]] = True
    stats: dict[str, float] = {}
    for part, mask in (("bulk", ~tail), ("tail", tail)):
        for name in MEASURES:
            data = values[name][mask]
            empty = data.size == 0
            stats[f"{part}_mean_{name}"] = float("nan") if empty else float(np.mean(data))
            stats[f"{part}_var_{name}"] = float("nan") if empty else float(np.var(data))
    return Localization(stats)


def columns() -> tuple[str, ...]:
    """The result columns, in WeightWatcher's order."""
    return tuple(
        f"{part}_{stat}_{name}"
        for name in MEASURES
        for part in ("bulk", "tail")
        for stat in ("mean", "var")
    )
