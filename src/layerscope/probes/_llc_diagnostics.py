"""Convergence diagnostics of SGLD draws: pure functions on numpy arrays (no torch).

Inputs are per-draw LLC traces ``x[c, t] = nβ·(L_b(w_t) − L_b(w*))`` after burn-in,
one row per chain. Sources: Geweke (1992) for the stationarity z, Gelman & Rubin (1992)
with the split-chain form of Gelman et al., *Bayesian Data Analysis* 3rd ed. §11.4, for
R-hat; batch means (Flegal & Jones 2010) for the variance of an autocorrelated mean.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Thresholds:
    """Where a diagnostic turns into a warning (the values and their reasons in docs/llc.md).

    Attributes:
        z: |Geweke z| above which the trace is called non-stationary.
        r_hat: split-R-hat above which chains disagree (BDA3's classic 1.1).
        negative_fraction: share of draws below the baseline that flags w* as no minimum.
        low_acceptance: MALA acceptance below which the step size is called too large.
        free_travel: travel (distance from w* relative to a free random walk's) above
            which the loss has not yet confined the chains: the step size is too small.
    """

    z: float = 3.0
    r_hat: float = 1.1
    negative_fraction: float = 0.4
    low_acceptance: float = 0.45
    free_travel: float = 0.8


def batch_means_var(x: np.ndarray) -> float:
    """Variance of the mean of an autocorrelated series by non-overlapping batch means.

    With ``k = ⌊√len⌋`` batches of ``m = ⌊len/k⌋`` values: Var(x̄) ≈ Var(batch means)/k.
    """
    n = len(x)
    k = max(math.isqrt(n), 2)
    m = n // k
    if m < 1:
        return float("nan")
    means = x[: k * m].reshape(k, m).mean(axis=1)
    return float(means.var(ddof=1) / k)


def geweke_z(x: np.ndarray, first: float = 0.1, last: float = 0.5) -> float:
    """Geweke's z: (mean of the first 10% − mean of the last 50%) / its standard error.

    Each segment's variance of the mean comes from batch means. Positive z: the trace
    fell over the run; negative: it rose (still climbing to equilibrium). NaN for fewer
    than 20 values or a constant trace.
    """
    n = len(x)
    if n < 20 or not np.all(np.isfinite(x)):
        return float("nan")
    a, b = x[: max(int(first * n), 4)], x[n - max(int(last * n), 4) :]
    se = math.sqrt(batch_means_var(a) + batch_means_var(b))
    if not se > 0:
        return float("nan")
    return float((a.mean() - b.mean()) / se)


@dataclass(frozen=True)
class ChainAgreement:
    """Split-chain Gelman-Rubin statistics of ``(C, T)`` traces.

    Attributes:
        r_hat: √(var⁺/W) with var⁺ = (m−1)/m·W + B/m over 2C half-chains of length m.
        between: B/m, the variance of the half-chain means.
        within: W, the mean variance within half-chains.
    """

    r_hat: float
    between: float
    within: float


def split_r_hat(x: np.ndarray) -> ChainAgreement:
    """Split-R-hat of traces ``x`` (C, T) (BDA3 §11.4); NaN for fewer than 4 draws."""
    m = x.shape[1] // 2
    if m < 2 or x.shape[0] == 0 or not np.all(np.isfinite(x)):
        nan = float("nan")
        return ChainAgreement(nan, nan, nan)
    halves = np.concatenate([x[:, :m], x[:, m : 2 * m]], axis=0)
    between = float(halves.mean(axis=1).var(ddof=1))
    within = float(halves.var(axis=1, ddof=1).mean())
    if within <= 0:
        return ChainAgreement(float("nan"), between, within)
    var_plus = (m - 1) / m * within + between
    return ChainAgreement(math.sqrt(var_plus / within), between, within)


@dataclass(frozen=True)
class LLCDiagnostics:
    """Whether to trust an LLC estimate (what each value means: docs/llc.md).

    Attributes:
        stationarity_z: Geweke z of the chain-averaged per-draw LLC trace after burn-in.
        chain_z: the same z for each chain.
        r_hat: split-R-hat of the per-draw LLC traces (≥ 2 chains; else NaN).
        between_var, within_var: its between- and within-half-chain variances.
        negative_fraction: share of draws whose loss is below the baseline L_b(w*).
        acceptance: mean minibatch MALA acceptance of the moves after burn-in
            (approximate: exact MALA needs full-data losses).
        travel: RMS distance from w* relative to a free random walk's (near 1: the loss
            has not yet confined the chains): √(mean ‖w_t − w*‖² / (ε·d·mean t)).
        diverged_chains: chains whose loss or weights became NaN/inf.
    """

    stationarity_z: float
    chain_z: tuple[float, ...]
    r_hat: float
    between_var: float
    within_var: float
    negative_fraction: float
    acceptance: float
    travel: float
    diverged_chains: int


def diagnose(
    draws: np.ndarray,
    sq_dist: np.ndarray,
    log_accept: np.ndarray,
    free_walk_sq: float,
) -> LLCDiagnostics:
    """Diagnostics of per-draw LLC values ``draws`` (C, T) after burn-in.

    ``sq_dist`` (C, T) are ‖w_t − w*‖² at the same draws, ``log_accept`` the MALA
    log-acceptances of the moves between them and ``free_walk_sq`` the mean squared
    distance a free random walk would have at those draws (ε·d·mean t).
    """
    finite = np.all(np.isfinite(draws), axis=1) & np.all(np.isfinite(sq_dist), axis=1)
    good = draws[finite]
    agreement = split_r_hat(good)
    accept = np.minimum(1.0, np.exp(np.minimum(log_accept[finite], 0.0)))
    nan = float("nan")
    return LLCDiagnostics(
        stationarity_z=geweke_z(good.mean(axis=0)) if len(good) else nan,
        chain_z=tuple(geweke_z(row) for row in draws),
        r_hat=agreement.r_hat,
        between_var=agreement.between,
        within_var=agreement.within,
        negative_fraction=float(np.mean(good < 0)) if good.size else nan,
        acceptance=float(accept.mean()) if accept.size else nan,
        travel=(
            float(math.sqrt(np.mean(sq_dist[finite]) / free_walk_sq))
            if good.size and free_walk_sq > 0
            else nan
        ),
        diverged_chains=int(np.sum(~finite)),
    )


def warnings_for(d: LLCDiagnostics, num_chains: int, t: Thresholds) -> tuple[str, ...]:
    """Plain-language warnings for the diagnostics that crossed a threshold."""
    out = []
    if d.diverged_chains:
        out.append(
            f"{d.diverged_chains} of {num_chains} chains diverged (NaN/inf loss): "
            "step_size is too large (or localization too weak)"
        )
    if d.acceptance < t.low_acceptance:
        out.append(
            f"acceptance {d.acceptance:.2f} < {t.low_acceptance}: step_size is probably too "
            "large and the LLC overestimated (minibatch MALA estimate, approximate)"
        )
    if d.travel > t.free_travel:
        out.append(
            f"chains still diffuse freely (travel {d.travel:.2f} > {t.free_travel}): the "
            "step size is too small for the loss to act; the LLC is underestimated"
        )
    if d.stationarity_z < -t.z:
        out.append(
            f"loss still rising after burn-in (Geweke z {d.stationarity_z:.1f}): increase "
            "burnin or step_size; the LLC is underestimated"
        )
    if d.stationarity_z > t.z:
        out.append(
            f"loss falling after burn-in (Geweke z {d.stationarity_z:.1f}): the chains find "
            "lower loss than w*, which may not be a local minimum (train longer)"
        )
    if d.r_hat > t.r_hat:
        out.append(f"chains disagree (R-hat {d.r_hat:.2f} > {t.r_hat}): run longer")
    if d.negative_fraction > t.negative_fraction:
        out.append(
            f"{d.negative_fraction:.0%} of draws have a loss below L(w*): the chains barely "
            "moved (step_size too small) or w* is not a local minimum"
        )
    return tuple(out)
