"""Rank correlations of a metric with a quality score, with bootstrap intervals.

Used to ask which layer metric tracks test accuracy across a set of models, as in
Martin, Peng & Mahoney (Nat. Commun. 12, 4122, 2021; arXiv:2002.06716), who report
Kendall τ and R² of a linear fit between a model-level metric and the reported accuracy.

    spearman ρ = Pearson correlation of the average ranks (ties share their mean rank)
    kendall τ_b = Σ_{i<j} s_x s_y / √(Σ_{i<j} s_x² · Σ_{i<j} s_y²),  s_x = sign(x_i − x_j)
    R²         = r², r the Pearson correlation (least-squares line y = a + b·x)
    interval   = percentile bootstrap (Efron & Tibshirani 1993, ch. 13): the 2.5 and
                 97.5 percentiles of the statistic over resamples of the (x, y) pairs

Kendall's τ_b is Kendall (1945, Biometrika 33:239) and equals
``scipy.stats.kendalltau(variant="b")``; Spearman equals ``scipy.stats.spearmanr``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

FloatArray = NDArray[np.float64]

# Bootstrap resamples and interval level used unless asked otherwise.
BOOTSTRAP = 1000
LEVEL = 0.95


def average_ranks(x: ArrayLike) -> FloatArray:
    """Ranks 1..n of ``x``; tied values get the mean of the ranks they span."""
    a = np.asarray(x, dtype=np.float64)
    order = np.argsort(a, kind="mergesort")
    inverse = np.empty(a.size, dtype=np.intp)
    inverse[order] = np.arange(a.size)
    s = a[order]
    first = np.concatenate(([True], s[1:] != s[:-1]))
    dense = np.cumsum(first)[inverse]
    bounds = np.concatenate((np.flatnonzero(first), [a.size]))
    ranks: FloatArray = 0.5 * (bounds[dense] + bounds[dense - 1] + 1)
    return ranks


def pearson(x: ArrayLike, y: ArrayLike) -> float:
    """Pearson r = Σ(x−x̄)(y−ȳ) / √(Σ(x−x̄)² Σ(y−ȳ)²); NaN when either is constant."""
    return float(pearson_rows(np.atleast_2d(x), np.atleast_2d(y))[0])


def spearman(x: ArrayLike, y: ArrayLike) -> float:
    """Spearman ρ: Pearson r of the average ranks."""
    return pearson(average_ranks(x), average_ranks(y))


def kendall_tau_b(x: ArrayLike, y: ArrayLike) -> float:
    """Kendall τ_b over all pairs (O(n²) memory; fine for a few thousand models)."""
    return float(kendall_rows(np.atleast_2d(x), np.atleast_2d(y))[0])


def r_squared(x: ArrayLike, y: ArrayLike) -> float:
    """R² of the least-squares line of y on x (= Pearson r²)."""
    return pearson(x, y) ** 2


# Row-wise forms: each row of a (B, n) array is one sample (used by the bootstrap).


def pearson_rows(x: FloatArray, y: FloatArray) -> FloatArray:
    """Pearson r of each row pair; NaN where a row is constant."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    a = a - a.mean(axis=1, keepdims=True)
    b = b - b.mean(axis=1, keepdims=True)
    den = np.sqrt(np.einsum("ij,ij->i", a, a) * np.einsum("ij,ij->i", b, b))
    num = np.einsum("ij,ij->i", a, b)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def ranks_rows(x: FloatArray) -> FloatArray:
    """Average ranks within each row: #{smaller} + (#{equal} + 1) / 2 (by sorting)."""
    ranks: FloatArray = rankdata(np.asarray(x, dtype=np.float64), method="average", axis=1)
    return ranks


def spearman_rows(x: FloatArray, y: FloatArray) -> FloatArray:
    """Spearman ρ of each row pair."""
    return pearson_rows(ranks_rows(x), ranks_rows(y))


def kendall_rows(x: FloatArray, y: FloatArray) -> FloatArray:
    """Kendall τ_b of each row pair (each pair counted twice in sums and norms alike)."""
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    sx = np.sign(a[:, :, None] - a[:, None, :])
    sy = np.sign(b[:, :, None] - b[:, None, :])
    num = np.einsum("ijk,ijk->i", sx, sy)
    den = np.sqrt(np.einsum("ijk,ijk->i", sx, sx) * np.einsum("ijk,ijk->i", sy, sy))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def r_squared_rows(x: FloatArray, y: FloatArray) -> FloatArray:
    """R² of each row pair's least-squares line."""
    return pearson_rows(x, y) ** 2


@dataclass(frozen=True)
class Interval:
    """A point estimate with its percentile-bootstrap interval."""

    value: float
    low: float
    high: float


# Pairwise comparisons per bootstrap chunk (rows x n x n), to bound memory.
_CHUNK_CELLS = 4_000_000
# Largest sample whose Kendall resamples go through the n x n count form (three n x n
# float64 matrices: 96 MB at n = 2000).
_COUNTS_MAX_N = 2000


def kendall_resampled(x: ArrayLike, y: ArrayLike, idx: NDArray[np.integer]) -> FloatArray:
    """Kendall τ_b of every resample ``(x[idx[r]], y[idx[r]])``, from draw counts.

    A resample that draws observation i w_i times has, over its ordered pairs,
    Σ_{k,l} sign(x_k − x_l)·sign(y_k − y_l) = wᵀ P w with P_ij = sign(x_i − x_j)·sign(y_i − y_j)
    (and likewise the two norms of τ_b), so three (resamples × n) × (n × n) products give
    every resample's τ_b: O(n²) per resample in BLAS instead of building its n × n sign
    arrays. Equals :func:`kendall_rows` on ``x[idx]``, ``y[idx]`` (integer sums, exact).
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    rows, n = idx.shape
    offsets = (np.arange(rows)[:, None] * n + idx).ravel()
    w = np.bincount(offsets, minlength=rows * n).reshape(rows, n).astype(np.float64)
    sx = np.sign(a[:, None] - a[None, :])
    sy = np.sign(b[:, None] - b[None, :])
    num, nx, ny = (np.einsum("ri,ri->r", w @ m, w) for m in (sx * sy, sx * sx, sy * sy))
    den = np.sqrt(nx * ny)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def bootstrap(
    stat: Callable[[FloatArray, FloatArray], FloatArray],
    x: ArrayLike,
    y: ArrayLike,
    *,
    resamples: int = BOOTSTRAP,
    level: float = LEVEL,
    seed: int = 0,
) -> Interval:
    """Row-wise ``stat`` on (x, y) with the percentile interval over paired resamples.

    Resamples on which the statistic is undefined (a constant x or y) are dropped; the
    interval is NaN when fewer than half remain or when n < 3.
    """
    a = np.asarray(x, dtype=np.float64)
    b = np.asarray(y, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"x and y must be 1-D of equal length, got {a.shape} and {b.shape}")
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1), got {level}")
    nan = float("nan")
    value = float(stat(a[None], b[None])[0]) if a.size >= 2 else nan
    if a.size < 3 or resamples < 1 or not np.isfinite(value):
        return Interval(value, nan, nan)
    idx = np.random.default_rng(seed).integers(0, a.size, size=(resamples, a.size))
    if stat is kendall_rows and a.size <= _COUNTS_MAX_N:
        draws = kendall_resampled(a, b, idx)  # the same draws, far fewer operations
    else:
        step = max(1, _CHUNK_CELLS // (a.size * a.size))
        chunks = range(0, resamples, step)
        draws = np.concatenate([stat(a[idx[i : i + step]], b[idx[i : i + step]]) for i in chunks])
    draws = draws[np.isfinite(draws)]
    if draws.size < resamples / 2:
        return Interval(value, nan, nan)
    tail = 100.0 * (1.0 - level) / 2.0
    low, high = np.percentile(draws, [tail, 100.0 - tail])
    return Interval(value, float(low), float(high))
