"""Power-law tail fit of an eigenvalue spectrum (the HTSR exponent alpha).

Sources: Clauset, Shalizi & Newman (2009), "Power-law distributions in empirical
data", SIAM Review 51(4) for the method (continuous MLE + minimum-KS choice of
xmin); Martin & Mahoney (JMLR 2021), "Implicit self-regularization in deep neural
networks", for its use on layer spectra; WeightWatcher 0.7.7 ``WW_powerlaw.WWFit``
for the conventions we match (candidates, empirical CDF, small-N rule).

For sorted eigenvalues λ₁ ≤ … ≤ λ_N and each candidate xmin = λ_k (k < N) with
tail size n_k = N − k + 1:

    α(xmin) = 1 + n_k / Σ_{j≥k} ln(λ_j / xmin)
    D(xmin) = max_{j≥k} | (j − k)/n_k − (1 − (λ_j / xmin)^(1−α)) |
    σ_α     = (α − 1) / √n_k

xmin is the candidate with the smallest D. With S_k = Σ_{j≥k} ln λ_j (a reversed
cumulative sum), Σ_{j≥k} ln(λ_j/λ_k) = S_k − n_k ln λ_k, so every α costs O(1);
the KS distances are evaluated for all candidates at once in row blocks (above 32,768
eigenvalues by an exact branch and bound, :func:`search_ks`).

Below ``SMALL_N`` eigenvalues WeightWatcher switches to the bias-corrected
α = 1 + (n − 1)/Σ ln(λ/xmin), only considers tails of at least 8 values, and picks
xmin by J = D − 0.868/√n (favouring longer tails); we do the same. WeightWatcher 0.7.7's
``WWFit`` constructor then re-picks xmin by the smallest D, overriding its own J choice;
we keep J (a documented deviation for spectra of fewer than 20 eigenvalues).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

SMALL_N = 20
SMALL_N_MIN_TAIL = 8
SMALL_N_TAIL_BONUS = 0.868
# Eigenvalues at or below this are treated as zero for the fit (WeightWatcher EVALS_THRESH).
EVALS_THRESH = 1e-5
# A tail shorter than this gives an alpha nobody should act on.
TINY_TAIL = 10
# Candidates within this many KS noise units (1/√n) of the best count as near-optimal.
NEAR_OPTIMAL_KS = 0.25
# Elements per block when evaluating the KS distances of all candidates.
_BLOCK_ELEMENTS = 1 << 21
# Above this many xmin candidates the minimum-KS search prunes with bounds (search_ks):
# an exhaustive search is O(N²), 23 s of CPU at N = 10⁵ and growing fourfold per doubling.
# The bounds come from the deviation at SAMPLED_COLUMNS evenly spaced eigenvalues.
EXHAUSTIVE_CANDIDATES = 1 << 15
SAMPLED_COLUMNS = 1024


@dataclass(frozen=True)
class PowerLawFit:
    """Result of :func:`fit_power_law`.

    Attributes:
        alpha: fitted exponent α of p(λ) ∝ λ^(−α) on [xmin, xmax].
        xmin: start of the fitted tail (an eigenvalue).
        xmax: largest eigenvalue.
        D: Kolmogorov-Smirnov distance of the fit at xmin.
        sigma: standard error (α − 1)/√n of α.
        num_pl_spikes: tail size n, eigenvalues ≥ xmin.
        fit_quality: ``good``, or why the fit should not be trusted
            (``tiny-tail``: n < 10; ``flat-ks``: near-optimal xmins give very different α).
        alpha_spread: max − min α over candidates whose D is within 0.25/√n of the
            minimum; large means α is not identified by the data.
    """

    alpha: float
    xmin: float
    xmax: float
    D: float
    sigma: float
    num_pl_spikes: int
    fit_quality: str
    alpha_spread: float


def candidate_alphas(log_x: FloatArray, bias_corrected: bool) -> FloatArray:
    """MLE α for every candidate xmin = x[k], k = 0..N−2, from sorted log-values.

    Args:
        log_x: ln of the sorted (ascending) positive data.
        bias_corrected: use (n − 1) instead of n in the numerator (small samples).

    Returns:
        α_k for k = 0..N−2 (``inf`` where the tail is constant).
    """
    N = log_x.size
    n = np.arange(N, 0, -1, dtype=np.float64)[:-1]
    tail_log_sum = np.cumsum(log_x[::-1])[::-1][:-1]
    denom = tail_log_sum - n * log_x[:-1]
    numer = n - 1.0 if bias_corrected else n
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.asarray(1.0 + numer / denom, dtype=np.float64)


def candidate_ks(log_x: FloatArray, alphas: FloatArray) -> FloatArray:
    """KS distance D_k of the power law (α_k, xmin = x[k]) to the tail x[k:], for all k.

    Uses WeightWatcher's empirical CDF (0, 1/n, …, (n−1)/n). Candidates with α ≤ 1
    are not normalisable and get D = 1. The work is ≈ N²/2 like a loop, in a handful
    of large array operations (:func:`ks_at`).
    """
    return ks_at(log_x, alphas, np.arange(alphas.size))


def ks_at(log_x: FloatArray, alphas: FloatArray, ks: NDArray[np.intp]) -> FloatArray:
    """KS distances D_k (as :func:`candidate_ks`) of the candidates ``ks`` only (ascending).

    Rows are processed in blocks of consecutive entries of ``ks``; a block's columns
    start at its first candidate, so each candidate costs O(N − k).
    """
    N = log_x.size
    D = np.ones(ks.size, dtype=np.float64)
    rows = max(8, min(256, _BLOCK_ELEMENTS // max(N, 1)))
    for start in range(0, ks.size, rows):
        k = ks[start : start + rows]
        a = alphas[k]
        n = (N - k).astype(np.float64)
        first = int(k[0])
        # theo[r, c] = (x_j/x_k)^(1-α_k) for j = first + c; ecdf[r, c] = (j-k)/n_k.
        with np.errstate(over="ignore", invalid="ignore"):
            theo = np.subtract.outer(-log_x[k], -log_x[first:])
            theo *= (1.0 - a)[:, None]
            np.exp(theo, out=theo)
        offs = np.subtract.outer(-k, -np.arange(first, N)).astype(np.float64)
        theo += offs / n[:, None] - 1.0
        np.abs(theo, out=theo)
        theo[offs < 0] = 0.0
        valid = np.isfinite(a) & (a > 1.0)
        D[start : start + rows] = np.where(valid, theo.max(axis=1), 1.0)
    return D


def ks_bounds(
    log_x: FloatArray, alphas: FloatArray, cols: NDArray[np.intp]
) -> tuple[FloatArray, FloatArray]:
    """Lower and upper bounds of every D_k from the deviation at the columns ``cols`` only.

    With e(j) = (j − k)/n_k and F(j) = 1 − (x_j/x_k)^(1−α_k), both non-decreasing in j,
    the deviation g = e − F at the sampled points p₀ = k < p₁ < … < p_m = N − 1
    (``cols`` must hold N − 1) bounds D_k = max_j |g(j)| from both sides:
    LB = maxᵢ |g(pᵢ)|, and between two points g(j) ∈ [e(pᵢ) − F(pᵢ₊₁), e(pᵢ₊₁) − F(pᵢ)],
    so UB = maxᵢ max(e(pᵢ₊₁) − F(pᵢ), F(pᵢ₊₁) − e(pᵢ)). Candidates with α ≤ 1 get 1, 1.
    """
    N, K = log_x.size, alphas.size
    lo, hi = np.ones(K), np.ones(K)
    rows = max(8, min(256, _BLOCK_ELEMENTS // max(cols.size, 1)))
    for start in range(0, K, rows):
        k = np.arange(start, min(K, start + rows))
        a = alphas[k]
        ahead = cols[None, :] >= k[:, None]  # columns at or before k read as the point k
        with np.errstate(over="ignore", invalid="ignore"):
            F = 1.0 - np.exp((1.0 - a)[:, None] * (log_x[cols][None, :] - log_x[k][:, None]))
        F[~ahead] = 0.0
        E = np.where(ahead, (cols[None, :] - k[:, None]) / (N - k)[:, None], 0.0)
        low = np.abs(E - F).max(axis=1)
        up = np.maximum(E[:, 1:] - F[:, :-1], F[:, 1:] - E[:, :-1]).max(axis=1)
        valid = np.isfinite(a) & (a > 1.0)
        lo[k] = np.where(valid, low, 1.0)
        hi[k] = np.where(valid, np.maximum(up, low), 1.0)
    return lo, hi


def search_ks(log_x: FloatArray, alphas: FloatArray) -> FloatArray:
    """KS distances for the minimum-KS search; ``inf`` where a candidate cannot matter.

    Up to ``EXHAUSTIVE_CANDIDATES`` candidates every D_k is computed (O(N²)). Above it
    (spectra of more than 32,768 eigenvalues, e.g. the operator spectrum of a
    convolution) the search is branch and bound, with the same result: bounds
    LB_k ≤ D_k ≤ UB_k from ``SAMPLED_COLUMNS`` eigenvalues (:func:`ks_bounds`), then D_k
    exactly in increasing LB order until the next LB exceeds the best D found (plus
    the near-optimal margin NEAR_OPTIMAL_KS/√n that :func:`_quality` reads); short
    tails, where the sampled columns are sparse, are always computed exactly.
    Candidates never computed get ``inf``: their D exceeds that margin.
    """
    N, K = log_x.size, alphas.size
    if K <= EXHAUSTIVE_CANDIDATES:
        return candidate_ks(log_x, alphas)
    step = -(-N // SAMPLED_COLUMNS)
    cols = np.unique(np.append(np.arange(0, N, step), N - 1)).astype(np.intp)
    lo, hi = ks_bounds(log_x, alphas, cols)
    lo[K - 4 * step :] = -np.inf  # short tails: computed first, exactly
    D = np.full(K, np.inf)
    order = np.argsort(lo, kind="stable")
    bound, done, batch = float(hi.min()), 0, 256
    while done < K and lo[order[done]] <= bound:
        ks = np.sort(order[done : done + batch])
        D[ks] = ks_at(log_x, alphas, ks)
        done += ks.size
        best = int(np.argmin(D))
        bound = float(D[best]) + NEAR_OPTIMAL_KS / np.sqrt(N - best)
        batch *= 2
    return D


def _select_standard(alphas: FloatArray, D: FloatArray) -> int:
    return int(np.argmin(D))


def _select_small_n(alphas: FloatArray, D: FloatArray, N: int) -> int:
    n = N - np.arange(alphas.size)
    ok = (n >= SMALL_N_MIN_TAIL) & np.isfinite(alphas) & (alphas > 1.0)
    J = np.where(ok, D - SMALL_N_TAIL_BONUS / np.sqrt(n), np.inf)
    return int(np.argmin(J)) if np.isfinite(J).any() else 0


def _quality(alphas: FloatArray, D: FloatArray, best: int, n_tail: int) -> tuple[str, float]:
    """Flag fits whose α the data does not pin down.

    Near-optimal candidates are those with D within a quarter of the KS noise scale
    (1/√n) of the minimum; if their α range exceeds max(1, α/2) the KS curve is flat
    and a different, equally good xmin gives a materially different α.
    """
    near = (D[best] + NEAR_OPTIMAL_KS / np.sqrt(n_tail) >= D) & np.isfinite(alphas)
    spread = float(np.ptp(alphas[near])) if near.any() else 0.0
    if n_tail < TINY_TAIL:
        return "tiny-tail", spread
    if spread > max(1.0, 0.5 * float(alphas[best])):
        return "flat-ks", spread
    return "good", spread


def fit_power_law(evals: FloatArray, thresh: float = EVALS_THRESH) -> PowerLawFit:
    """Fit a power law to the upper tail of ``evals`` (see the module docstring).

    Args:
        evals: eigenvalues, any order; values ≤ ``thresh`` are dropped first.
        thresh: zero threshold (WeightWatcher's 1e-5 on the raw eigenvalues).

    Returns:
        The :class:`PowerLawFit` at the chosen xmin: the one of minimum KS distance D,
        or, below ``SMALL_N`` eigenvalues, the one minimising D − 0.868/√n over tails of
        at least ``SMALL_N_MIN_TAIL`` values (WeightWatcher's small-sample rule).

    Raises:
        ValueError: fewer than two eigenvalues above ``thresh``.
    """
    x = np.sort(np.asarray(evals, dtype=np.float64))
    x = x[x > thresh]
    N = x.size
    if N < 2:
        raise ValueError(f"power-law fit needs at least 2 eigenvalues above {thresh}, got {N}")
    log_x = np.log(x)
    small = N < SMALL_N
    alphas = candidate_alphas(log_x, bias_corrected=small)
    D = search_ks(log_x, alphas)
    best = _select_small_n(alphas, D, N) if small else _select_standard(alphas, D)
    n_tail = N - best
    alpha = float(alphas[best])
    quality, spread = _quality(alphas, D, best, n_tail)
    return PowerLawFit(
        alpha=alpha,
        xmin=float(x[best]),
        xmax=float(x[-1]),
        D=float(D[best]),
        sigma=(alpha - 1.0) / float(np.sqrt(n_tail)),
        num_pl_spikes=n_tail,
        fit_quality=quality,
        alpha_spread=spread,
    )


def fit_power_law_median(
    evals: FloatArray, thresh: float = EVALS_THRESH, xmin_pos: int = 2
) -> PowerLawFit:
    """Power-law fit with xmin fixed at the median eigenvalue (no KS search).

    TempBalance's ``pl_fitting='median'`` (Zhou et al., NeurIPS 2023, "Temperature
    Balancing, Layer-wise Weight Analysis, and Neural Network Training"): with the N
    nonzero eigenvalues sorted ascending, k = ⌊N / xmin_pos⌋, xmin = λ_k, n = N − k and
    α = 1 + n / Σ_{j≥k} ln(λ_j / xmin) (the MLE of :func:`candidate_alphas`); D is the KS
    distance at that xmin. The tail always holds about half the spectrum, so α is stable
    where the minimum-KS choice jumps, at the price of fitting part of the bulk.

    Args:
        evals: eigenvalues, any order; values ≤ ``thresh`` are dropped first.
        thresh: zero threshold.
        xmin_pos: the tail starts at rank N / xmin_pos (2 = the median).

    Returns:
        A :class:`PowerLawFit`; ``alpha_spread`` is 0 (no candidates are compared).

    Raises:
        ValueError: fewer than two eigenvalues above ``thresh``, or ``xmin_pos`` < 1.
    """
    if xmin_pos < 1:
        raise ValueError(f"xmin_pos must be >= 1, got {xmin_pos}")
    x = np.sort(np.asarray(evals, dtype=np.float64))
    x = x[x > thresh]
    N = x.size
    if N < 2:
        raise ValueError(f"power-law fit needs at least 2 eigenvalues above {thresh}, got {N}")
    k = min(N // xmin_pos, N - 2)
    log_tail = np.log(x[k:])
    alphas = candidate_alphas(log_tail, bias_corrected=False)[:1]
    D = float(candidate_ks(log_tail, alphas)[0])
    alpha = float(alphas[0])
    n_tail = N - k
    return PowerLawFit(
        alpha=alpha,
        xmin=float(x[k]),
        xmax=float(x[-1]),
        D=D,
        sigma=(alpha - 1.0) / float(np.sqrt(n_tail)),
        num_pl_spikes=n_tail,
        fit_quality="tiny-tail" if n_tail < TINY_TAIL else "good",
        alpha_spread=0.0,
    )
