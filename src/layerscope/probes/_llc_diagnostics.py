"""Convergence diagnostics of SGLD draws: pure functions on numpy arrays (no torch).

Inputs are per-draw LLC traces ``x[c, t] = nβ·(L_b(w_t) − L_b(w*))`` after burn-in,
one row per chain. Sources: the split-chain R-hat of Gelman et al., *Bayesian Data
Analysis* 3rd ed. §11.4, with the 1.2 threshold of Brooks & Gelman (1998); the half-run
comparison is Geweke's (1992) idea, tested across chains instead of with a spectral
variance: SGLD loss traces are autocorrelated over hundreds of steps, so within-chain
variance estimates from a few hundred draws are too small and flag healthy runs (a
batch-means Geweke z reached −6 on runs within 3 % of the closed form).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Thresholds:
    """Where a diagnostic turns into a warning (the values and their reasons in docs/llc.md).

    Attributes:
        drift: |relative change of the LLC between the halves of the draws| that, with
            |z| above ``z``, calls the trace non-stationary.
        z: |t| of the half-difference across chains (see :func:`half_drift`).
        r_hat: split-R-hat above which chains disagree (Brooks & Gelman 1998: 1.2).
        negative_fraction: share of draws below the baseline that flags w* as no minimum.
        low_acceptance: MALA acceptance below which the step size is called too large.
        high_acceptance: MALA acceptance above which it is called too small.
        free_travel: travel above which a rising LLC counts as not yet equilibrated
            even when the across-chain z is small (few chains).
    """

    drift: float = 0.15
    z: float = 3.0
    r_hat: float = 1.2
    negative_fraction: float = 0.4
    low_acceptance: float = 0.45
    high_acceptance: float = 0.9
    free_travel: float = 0.9


@dataclass(frozen=True)
class Drift:
    """How much the per-draw LLC changed between the first and second half of the draws.

    Attributes:
        relative: (mean of the second half − mean of the first) / |mean of all|, pooled
            over chains (positive: still rising).
        z: that half-difference over its standard error across chains, mean(d_c) /
            (sd(d_c)/√C) with d_c each chain's half-difference (NaN for one chain).
        per_chain: each chain's relative half-difference.
    """

    relative: float
    z: float
    per_chain: tuple[float, ...]


def half_drift(x: np.ndarray) -> Drift:
    """:class:`Drift` of traces ``x`` (C, T) (NaN where undefined)."""
    nan = float("nan")
    half = x.shape[1] // 2
    if half < 1 or x.shape[0] == 0:
        return Drift(nan, nan, tuple(nan for _ in range(x.shape[0])))
    diffs = x[:, half:].mean(axis=1) - x[:, :half].mean(axis=1)
    chain_means = np.abs(x.mean(axis=1))
    with np.errstate(divide="ignore", invalid="ignore"):
        per_chain = tuple(float(v) for v in diffs / chain_means)
    scale = abs(float(x.mean()))
    relative = float(diffs.mean() / scale) if scale > 0 else nan
    if x.shape[0] < 2:
        return Drift(relative, nan, per_chain)
    se = float(diffs.std(ddof=1)) / math.sqrt(x.shape[0])
    z = float(diffs.mean() / se) if se > 0 else nan
    return Drift(relative, z, per_chain)


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
        drift: relative change of the LLC between the halves of the draws (pooled).
        stationarity_z: that change over its standard error across chains.
        chain_drift: each chain's relative half-difference.
        r_hat: split-R-hat of the per-draw LLC traces (≥ 2 chains; else NaN).
        between_var, within_var: its between- and within-half-chain variances.
        negative_fraction: share of draws whose loss is below the baseline L_b(w*).
        acceptance: mean minibatch MALA acceptance of the moves after burn-in
            (approximate: exact MALA needs full-data losses).
        travel: RMS distance from w* relative to a free random walk's,
            √(mean ‖w_t − w*‖² / (ε·d·mean t)): 1 when no direction is confined yet.
            Informational only: flat directions (many in singular models) diffuse
            freely, so a high value does not by itself mean the step is too small.
        diverged_chains: chains whose loss or weights became NaN/inf.
    """

    drift: float
    stationarity_z: float
    chain_drift: tuple[float, ...]
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
    drift = half_drift(good)
    return LLCDiagnostics(
        drift=drift.relative,
        stationarity_z=drift.z,
        chain_drift=tuple(half_drift(row[None, :]).relative for row in draws),
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
    significant = not abs(d.stationarity_z) <= t.z  # NaN (one chain) counts
    if d.drift > t.drift and (significant or d.travel > t.free_travel):
        out.append(
            f"LLC still rising after burn-in ({d.drift:+.0%} between the halves of the "
            "draws): step_size too small or burnin too short; the LLC is underestimated"
        )
    if d.drift < -t.drift and significant:
        out.append(
            f"LLC falling after burn-in ({d.drift:+.0%} between the halves of the draws): "
            "the chains find lower loss than w*, which may not be a local minimum"
        )
    if d.acceptance > t.high_acceptance:
        out.append(
            f"acceptance {d.acceptance:.2f} > {t.high_acceptance}: steps are tiny, "
            "step_size is probably too small to explore in num_draws steps"
        )
    if d.r_hat > t.r_hat:
        out.append(f"chains disagree (R-hat {d.r_hat:.2f} > {t.r_hat}): run longer")
    if d.negative_fraction > t.negative_fraction:
        out.append(
            f"{d.negative_fraction:.0%} of draws have a loss below L(w*): the chains barely "
            "moved (step_size too small) or w* is not a local minimum"
        )
    return tuple(out)
