"""Random-matrix theory on eigenvalue spectra: Marchenko-Pastur fit, spikes, traps.

Sources: Marchenko & Pastur (1967), "Distribution of eigenvalues for some sets of
random matrices"; Martin & Mahoney (JMLR 2021) for MP fits of layer ESDs;
Prakash & Martin (2025, arXiv 2506.04434) for correlation traps; WeightWatcher
0.7.7 ``RMT_Util.py`` (``mp_fit``, ``fit_density_with_range``, ``resid_mp``) for
the conventions we match.

Marchenko-Pastur law for an N×M matrix (Q = N/M ≥ 1) with i.i.d. entries of
variance σ² (eigenvalues of WᵀW scaled so their mean is 1):

    λ± = σ² (1 ± 1/√Q)²
    ρ(λ) = Q / (2π σ² λ) · √((λ⁺ − λ)(λ − λ⁻))   on [λ⁻, λ⁺]

For Q = 1 the fit is done on singular values s = √λ with the quarter-circle law
ρ(s) = √(4 − s²) / (π σ²), as WeightWatcher does.

σ is chosen to minimise the squared distance between ρ and a linear-kernel density
estimate (bandwidth 0.1) of the rescaled spectrum on a 1000-point grid, over a grid
of σ ∈ [0.05 s₀, 2 s₀) (step 0.01 s₀, s₀ = √λ_max /(1 + 1/√Q)) refined by
Nelder-Mead — WeightWatcher's objective. Unlike WeightWatcher we estimate the
density once (it does not depend on σ) and evaluate all σ at once, which makes the
fit cheap.

Spikes are eigenvalues above λ⁺ + √TW with the Tracy-Widom scale
TW = Q^(−1/2) (λ⁺)^(2/3) M^(−2/3) (WeightWatcher's threshold).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy import optimize

FloatArray = NDArray[np.float64]

KDE_BANDWIDTH = 0.1
KDE_GRID = 1000
DENSITY_FLOOR = 0.01
PENALTY = 1000.0


def mp_edges(Q: float, sigma: float) -> tuple[float, float]:
    """Marchenko-Pastur bulk edges λ⁻, λ⁺ = σ²(1 ∓ 1/√Q)² (σ is the entry std)."""
    r = 1.0 / np.sqrt(Q)
    return float((sigma * (1.0 - r)) ** 2), float((sigma * (1.0 + r)) ** 2)


def mp_density(x: FloatArray, Q: float, sigma: float) -> FloatArray:
    """MP density ρ(λ) = Q/(2πσ²λ) √((λ⁺−λ)(λ−λ⁻)) on [λ⁻, λ⁺], 0 elsewhere."""
    lo, hi = mp_edges(Q, sigma)
    with np.errstate(divide="ignore", invalid="ignore"):
        val = Q / (2.0 * np.pi * sigma * sigma * x) * np.sqrt((hi - x) * (x - lo))
    return np.asarray(np.nan_to_num(val), dtype=np.float64)


def quarter_circle_density(s: FloatArray, sigma: float) -> FloatArray:
    """Quarter-circle density of singular values for Q = 1: √(4 − s²)/(πσ²) (WeightWatcher form)."""
    with np.errstate(invalid="ignore"):
        val = np.sqrt(4.0 - s * s) / (np.pi * sigma * sigma)
    return np.asarray(np.nan_to_num(val), dtype=np.float64)


def linear_kde(data: FloatArray, grid: FloatArray, bandwidth: float) -> FloatArray:
    """Density estimate with the linear (triangular) kernel, exact.

    f(x) = 1/(n h) Σᵢ max(0, 1 − |x − xᵢ|/h), the normalisation of scikit-learn's
    ``KernelDensity(kernel="linear")``. With the data sorted and prefix sums of xᵢ,
    each grid point costs O(log n): Σ (h − |x − xᵢ|) over the window splits into
    a left part (xᵢ ≤ x) and a right part (xᵢ > x).
    """
    xs = np.sort(np.asarray(data, dtype=np.float64))
    csum = np.concatenate(([0.0], np.cumsum(xs)))
    lo = np.searchsorted(xs, grid - bandwidth, side="right")
    mid = np.searchsorted(xs, grid, side="right")
    hi = np.searchsorted(xs, grid + bandwidth, side="left")
    n_left = mid - lo
    n_right = hi - mid
    s_left = csum[mid] - csum[lo]
    s_right = csum[hi] - csum[mid]
    left = n_left * (bandwidth - grid) + s_left
    right = n_right * (bandwidth + grid) - s_right
    return np.asarray((left + right) / (xs.size * bandwidth * bandwidth), dtype=np.float64)


@dataclass(frozen=True)
class MPFit:
    """Result of :func:`fit_mp` on a spectrum rescaled to mean eigenvalue 1.

    Attributes:
        sigma_mp: fitted σ of the MP law (rescaled units).
        bulk_min, bulk_max: MP edges λ⁻, λ⁺ on the ORIGINAL scale of the eigenvalues.
        num_spikes: eigenvalues above λ⁺ + √TW.
        mp_softrank: λ⁺ / λ_max (rescaled); near 1 = random-like, near 0 = dominated by spikes.
        scale: factor the eigenvalues were multiplied by (M / Σλ).
        threshold: λ⁺ + √TW on the original scale.
    """

    sigma_mp: float
    bulk_min: float
    bulk_max: float
    num_spikes: int
    mp_softrank: float
    scale: float
    threshold: float


def _residuals(
    sigmas: FloatArray, x: FloatArray, y: FloatArray, Q: float, peak: float
) -> FloatArray:
    """Σ (ρ_σ(x) − y)² for each σ, with WeightWatcher's penalty for implausible edges."""
    s = sigmas[:, None]
    if Q == 1.0:
        with np.errstate(invalid="ignore"):
            model = np.nan_to_num(np.sqrt(4.0 - x * x)[None, :] / (np.pi * s * s))
        return np.asarray(np.sum((model - y[None, :]) ** 2, axis=1), dtype=np.float64)
    r = 1.0 / np.sqrt(Q)
    lo, hi = (s * (1.0 - r)) ** 2, (s * (1.0 + r)) ** 2
    # The density is 0 outside (λ⁻, λ⁺); computing it only inside skips NaN cleanup.
    root = np.sqrt(np.maximum((hi - x) * (x - lo), 0.0))
    model = np.divide(
        Q * root, 2.0 * np.pi * s * s * x[None, :], out=np.zeros_like(root), where=root > 0
    )
    res = np.sum((model - y[None, :]) ** 2, axis=1)
    bad = (hi[:, 0] < peak) | (hi[:, 0] > x.max()) | (lo[:, 0] > peak)
    return np.asarray(np.where(bad, PENALTY * PENALTY * x.size, res), dtype=np.float64)


def fit_mp_sigma(rescaled: FloatArray, Q: float) -> float:
    """Fit σ of the MP (Q > 1) or quarter-circle (Q = 1) law to a mean-1 spectrum.

    Objective and search range as in WeightWatcher's ``fit_density_with_range``
    (see the module docstring); the density estimate is computed once.
    """
    lam_max = float(np.max(rescaled))
    s0 = np.sqrt(lam_max) / (1.0 + 1.0 / np.sqrt(Q))
    to_fit = np.sqrt(rescaled) if Q == 1.0 else rescaled
    grid = np.linspace(0.0, float(np.max(to_fit)) + 0.5, KDE_GRID)
    dens = linear_kde(to_fit, grid, KDE_BANDWIDTH)
    keep = dens > DENSITY_FLOOR
    x, y = grid[keep], dens[keep]
    peak = float(x[np.argmax(y)])
    sigmas = np.mgrid[slice(0.05 * s0, 2.0 * s0, 0.01 * s0)].astype(np.float64)
    res = _residuals(sigmas, x, y, Q, peak)
    start = float(sigmas[int(np.argmin(res))])

    def objective(p: FloatArray) -> float:
        return float(_residuals(np.atleast_1d(p).astype(np.float64), x, y, Q, peak)[0])

    best = optimize.fmin(objective, [start], full_output=False, disp=False)
    return float(np.asarray(best).ravel()[0])


def tracy_widom_threshold(bulk_max: float, Q: float, M: int) -> float:
    """λ⁺ + √TW with TW = Q^(−1/2) (λ⁺)^(2/3) M^(−2/3) (WeightWatcher ``mp_fit``)."""
    tw = (1.0 / np.sqrt(Q)) * bulk_max ** (2.0 / 3.0) * float(M) ** (-2.0 / 3.0)
    return float(bulk_max + np.sqrt(tw))


def fit_mp(evals: FloatArray, Q: float, M: int) -> MPFit:
    """Fit the MP law to ``evals`` and count spikes above the Tracy-Widom edge.

    Args:
        evals: eigenvalues of WᵀW (pooled over conv slices), any order, non-negative.
        Q: aspect ratio N/M ≥ 1 of the layer's matrices.
        M: the smaller dimension of a single matrix (for the TW scale).
    """
    ev = np.asarray(evals, dtype=np.float64)
    scale = ev.size / float(np.sum(ev))
    rescaled = ev * scale
    sigma = fit_mp_sigma(rescaled, Q)
    bulk_min, bulk_max = mp_edges(Q, sigma)
    threshold = tracy_widom_threshold(bulk_max, Q, M)
    return MPFit(
        sigma_mp=sigma,
        bulk_min=bulk_min / scale,
        bulk_max=bulk_max / scale,
        num_spikes=int(np.count_nonzero(rescaled > threshold)),
        mp_softrank=bulk_max / float(np.max(rescaled)),
        scale=scale,
        threshold=threshold / scale,
    )


def jensen_shannon_distance(p: FloatArray, q: FloatArray) -> float:
    """√JSD between p and q, each normalised to sum 1 (natural log).

    WeightWatcher's ``rand_distance`` applies this to the two sorted eigenvalue
    vectors of W and of its element-shuffled copy (equal length), which is what
    :func:`rand_distance` passes here.
    """
    p = np.asarray(p, dtype=np.float64) / np.sum(p)
    q = np.asarray(q, dtype=np.float64) / np.sum(q)
    m = 0.5 * (p + q)

    def kl(a: FloatArray) -> float:
        mask = a > 0
        return float(np.sum(a[mask] * np.log(a[mask] / m[mask])))

    return float(np.sqrt(0.5 * (kl(p) + kl(q))))


def rand_distance(evals: FloatArray, shuffled_evals: FloatArray) -> float:
    """Jensen-Shannon distance between the sorted ESDs of W and of element-shuffled W."""
    return jensen_shannon_distance(np.sort(evals), np.sort(shuffled_evals))
