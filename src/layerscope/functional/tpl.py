"""Truncated power-law (TPL) tail fit, as WeightWatcher ``fit="TPL"`` computes it.

Model (Clauset, Shalizi & Newman 2009, SIAM Review 51(4), Table 1): on x ≥ xmin

    p(x) = C · x^(−α) · e^(−Λx),   C = Λ^(1−α) / Γ(1 − α, Λ·xmin),

with Γ(s, z) the upper incomplete gamma function. WeightWatcher 0.7.7 delegates the
fit to the ``powerlaw`` package (Alstott, Bullmore & Plenz 2014, PLoS ONE 9(1)
e85777); with the installed powerlaw 2.0.0 the fit at one candidate xmin is:

* start: α₀ = 1 + n / Σ ln(x/xmin), Λ₀ = 1 / mean(x) over the n tail values;
* minimise −Σ ln p(x) by Nelder-Mead (scipy, ``tol=1e-4``) inside the parameter box
  α ∈ [0, 3], Λ ≥ 0 (outside the open box every density is 1e−307);
* the fit is *valid* when 0 < α < 3, Λ > 0, the optimiser converged and no parameter
  lies within 0.01 of the box (α ∈ (0.01, 2.99), Λ > 0.01);
* D is the KS distance of the fitted CDF 1 − Γ(1−α, Λx)/Γ(1−α, Λ·xmin) to the tail's
  empirical CDF (0, 1/n, …, (n−1)/n).

xmin is the candidate with the smallest D among valid fits (all candidates if none
is valid); candidates are the data values in the xmin range except its largest
(by default every value but the two largest). We run the same optimiser from the
same start on the same objective, so α and Λ agree with WeightWatcher to the
optimiser's tolerance; Γ comes from scipy (checked against mpmath in the tests)
instead of mpmath, which makes the fit ~30x faster.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import scipy.optimize
import scipy.special
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

# powerlaw 2.0.0 Truncated_Power_Law.DEFAULT_PARAMETER_RANGES and fit() conventions.
ALPHA_RANGE = (0.0, 3.0)
NEAR_BOUNDARY = 1e-2
TINY_LIKELIHOOD = 1e-307
OPTIMIZER_TOL = 1e-4


@dataclass(frozen=True)
class CandidateFit:
    """One fitted candidate: exponent, cutoff (``nan`` for a pure power law), KS distance."""

    alpha: float
    Lambda: float
    D: float
    valid: bool


def upper_gamma(s: float, z: FloatArray) -> FloatArray:
    """Γ(s, z) = ∫_z^∞ t^(s−1) e^(−t) dt for real s and z > 0.

    s > 0: Γ(s)·Q(s, z) (scipy ``gammaincc``); s = 0: E₁(z); s < 0 by the recurrence
    Γ(s, z) = (Γ(s+1, z) − z^s e^(−z)) / s (Abramowitz & Stegun 6.5.22).
    """
    z = np.asarray(z, dtype=np.float64)
    if s > 0:
        return np.asarray(scipy.special.gammaincc(s, z) * scipy.special.gamma(s))
    if s == 0:
        return np.asarray(scipy.special.exp1(z))
    with np.errstate(over="ignore", under="ignore"):
        return (upper_gamma(s + 1.0, z) - z**s * np.exp(-z)) / s


def _in_box(alpha: float, Lambda: float) -> bool:
    return ALPHA_RANGE[0] < alpha < ALPHA_RANGE[1] and Lambda > 0.0


def _tail_norm(alpha: float, Lambda: float, x: FloatArray) -> FloatArray:
    """Γ(1−α, Λx)/Λ^(1−α): one minus powerlaw's base CDF, evaluated the same way."""
    with np.errstate(all="ignore"):
        return np.asarray(upper_gamma(1.0 - alpha, Lambda * x) / Lambda ** (1.0 - alpha))


def tpl_nll(params: FloatArray, tail: FloatArray, xmin: float) -> float:
    """−Σ ln p(x) of the truncated power law on ``tail`` (1e−307 outside the box)."""
    alpha, Lambda = float(params[0]), float(params[1])
    if not _in_box(alpha, Lambda):
        return -tail.size * float(np.log(TINY_LIKELIHOOD))
    with np.errstate(all="ignore"):
        C = Lambda ** (1.0 - alpha) / float(upper_gamma(1.0 - alpha, np.asarray(Lambda * xmin)))
        like = tail ** (-alpha) * np.exp(-Lambda * tail) * C
        like[like == 0] = TINY_LIKELIHOOD
        return float(-np.sum(np.log(like)))


def tpl_cdf(alpha: float, Lambda: float, tail: FloatArray, xmin: float) -> FloatArray:
    """Fitted CDF on ``tail``: (F(x) − F(xmin)) / (1 − F(xmin)), F = 1 − Γ(1−α, Λx)/Λ^(1−α)."""
    if not _in_box(alpha, Lambda):
        return np.full(tail.size, TINY_LIKELIHOOD)
    base_xmin = 1.0 - float(_tail_norm(alpha, Lambda, np.asarray(xmin)))
    if base_xmin == 1.0:
        return np.ones(tail.size)
    with np.errstate(all="ignore"):
        base = 1.0 - _tail_norm(alpha, Lambda, tail)
        return np.asarray((base - base_xmin) / (1.0 - base_xmin))


def ks_distance(cdf: FloatArray) -> float:
    """max |F_fit(x_j) − j/n| over the sorted tail (powerlaw's empirical CDF 0, 1/n, …)."""
    ecdf = np.arange(cdf.size, dtype=np.float64) / cdf.size
    diff = cdf - ecdf
    return float(max(np.max(diff), -np.min(diff)))


def nelder_mead(
    objective: Callable[[FloatArray], float],
    x0: list[float],
    bounds: list[tuple[float, float | None]],
) -> tuple[FloatArray, bool]:
    """powerlaw 2.0.0's optimiser: bounded Nelder-Mead, ``tol=1e-4``; (x, converged)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # x0 outside the bounds is clipped, as in powerlaw
        res = scipy.optimize.minimize(
            objective, x0=x0, bounds=bounds, method="Nelder-Mead", tol=OPTIMIZER_TOL
        )
    return np.asarray(res.x, dtype=np.float64), bool(res.success)


def near_boundary(
    values: tuple[float, ...], lows: tuple[float, ...], highs: tuple[float | None, ...]
) -> bool:
    """Whether a parameter lies within 0.01 of its box (powerlaw then flags the fit)."""
    for v, lo, hi in zip(values, lows, highs, strict=True):
        if v - NEAR_BOUNDARY < lo or (hi is not None and v + NEAR_BOUNDARY > hi):
            return True
    return False


def fit_tpl_at(tail: FloatArray, xmin: float) -> CandidateFit:
    """The truncated power law fitted to ``tail`` (sorted, all ≥ ``xmin``)."""
    n = tail.size
    with np.errstate(divide="ignore"):
        alpha0 = 1.0 + n / float(np.sum(np.log(tail / xmin)))
    x0 = [alpha0, 1.0 / float(np.mean(tail))]
    x, converged = nelder_mead(lambda p: tpl_nll(p, tail, xmin), x0, [(0.0, 3.0), (0.0, None)])
    alpha, Lambda = float(x[0]), float(x[1])
    valid = (
        _in_box(alpha, Lambda)
        and converged
        and not near_boundary((alpha, Lambda), (0.0, 0.0), (3.0, None))
    )
    D = ks_distance(tpl_cdf(alpha, Lambda, tail, xmin))
    return CandidateFit(alpha, Lambda, D, valid)


def candidate_indices(x: FloatArray, xmin_range: tuple[float, float] | None) -> NDArray[np.intp]:
    """Indices of the xmin candidates in sorted distinct ``x`` (powerlaw ``find_xmin``).

    Values in [min(range), max(range)) except the largest of them; the default range is
    [x₀, x_max), so every value but the two largest.
    """
    lo, hi = (x[0], x[-1]) if xmin_range is None else (min(xmin_range), max(xmin_range))
    idx = np.flatnonzero((x >= lo) & (x < hi))
    return idx[:-1]


def select(fits: list[CandidateFit]) -> int:
    """Index of the smallest D among valid fits (among all if none is valid)."""
    D = np.array([f.D for f in fits])
    valid = np.array([f.valid for f in fits])
    if valid.any():
        return int(np.argmin(np.where(valid, D, np.inf)))
    return int(np.argmin(D))


@dataclass(frozen=True)
class TPLFit:
    """Result of :func:`fit_truncated_power_law`.

    Attributes:
        alpha: exponent α of x^(−α) e^(−Λx) (in (0, 3) for a valid fit).
        Lambda: exponential cutoff Λ (units of 1/λ).
        xmin: start of the fitted tail.
        D: KS distance at xmin.
        num_pl_spikes: tail size n (values ≥ xmin).
        valid: whether the chosen fit passed powerlaw's validity checks.
    """

    alpha: float
    Lambda: float
    xmin: float
    D: float
    num_pl_spikes: int
    valid: bool


def fit_truncated_power_law(x: FloatArray, xmin_range: tuple[float, float] | None = None) -> TPLFit:
    """Fit a truncated power law to the upper tail of sorted positive ``x``.

    Args:
        x: sorted, positive, distinct values (eigenvalues above the zero threshold).
        xmin_range: restrict xmin candidates to [min, max) of this pair (see
            :func:`candidate_indices`); ``None`` for all.

    Raises:
        ValueError: fewer than two candidates.
    """
    idx = candidate_indices(x, xmin_range)
    if idx.size < 2:
        raise ValueError(
            f"truncated power-law fit needs at least 2 xmin candidates, got {idx.size}"
        )
    fits = [fit_tpl_at(x[k:], float(x[k])) for k in idx]
    best = select(fits)
    k = int(idx[best])
    f = fits[best]
    return TPLFit(f.alpha, f.Lambda, float(x[k]), f.D, int(x.size - k), f.valid)
