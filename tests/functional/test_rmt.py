"""Marchenko-Pastur fit, density, KDE, spikes, Jensen-Shannon: closed forms and references."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import integrate
from scipy.spatial.distance import jensenshannon

import _ww
from layerscope.functional import rmt
from reference._compare import assert_close

RATIOS = (1.0, 1.5, 2.0, 4.0, 8.0)


def _gaussian_esd(N: int, M: int, seed: int = 0) -> np.ndarray:
    W = np.random.default_rng([seed, N, M]).standard_normal((N, M))
    return np.linalg.eigvalsh(W.T @ W)


def _planted(N: int, M: int, strengths: list[float], seed: int = 5) -> np.ndarray:
    """ESD of G + Σ θᵢ uᵢ vᵢᵀ, G i.i.d. N(0, 1), orthonormal u, v, θ in BBP units.

    A singular-value spike separates from the bulk iff θ > (N·M)^(1/4) (BBP transition).
    """
    rng = np.random.default_rng(seed)
    U, _ = np.linalg.qr(rng.standard_normal((N, len(strengths))))
    V, _ = np.linalg.qr(rng.standard_normal((M, len(strengths))))
    theta = np.asarray(strengths) * (N * M) ** 0.25
    W = rng.standard_normal((N, M)) + (U * theta) @ V.T
    return np.linalg.eigvalsh(W.T @ W)


@pytest.mark.parametrize("M", [200, 500])
@pytest.mark.parametrize("Q", RATIOS)
def test_gaussian_fit_recovers_sigma_and_edge(Q: float, M: int) -> None:
    N = int(Q * M)
    evals = _gaussian_esd(N, M)
    fit = rmt.fit_mp(evals, N / M, M)
    rescaled = evals * fit.scale
    assert np.mean(rescaled) == pytest.approx(1.0)
    lam_plus = (1.0 + 1.0 / np.sqrt(Q)) ** 2
    assert fit.sigma_mp == pytest.approx(1.0, rel=0.03)
    # λ_max sits at the edge up to Tracy-Widom fluctuations of scale
    # (√N + √M)(1/√N + 1/√M)^(1/3) / N in these units (Johnstone 2001; mean −1.2, sd 1.3).
    tw_scale = (np.sqrt(N) + np.sqrt(M)) * (1 / np.sqrt(N) + 1 / np.sqrt(M)) ** (1 / 3) / N
    assert abs(rescaled.max() - lam_plus) <= 4.0 * tw_scale
    assert rescaled.max() == pytest.approx(lam_plus, rel=0.05)
    assert fit.bulk_max * fit.scale == pytest.approx(lam_plus, rel=0.03)
    assert fit.num_spikes <= 1
    assert fit.mp_softrank == pytest.approx(fit.bulk_max * fit.scale / rescaled.max())
    assert fit.threshold * fit.scale == pytest.approx(
        rmt.tracy_widom_threshold(fit.bulk_max * fit.scale, Q, M)
    )


@pytest.mark.parametrize("Q", [1.0, 2.0, 4.0])
@pytest.mark.parametrize(("strengths", "expected"), [([3.0], 1), ([3.0, 4.0, 5.0], 3)])
def test_planted_spikes_are_counted(Q: float, strengths: list[float], expected: int) -> None:
    M = 300
    N = int(Q * M)
    fit = rmt.fit_mp(_planted(N, M, strengths), N / M, M)
    assert fit.num_spikes == expected
    assert fit.sigma_mp == pytest.approx(1.0, rel=0.05)


@pytest.mark.parametrize("bandwidth", [0.1, 0.37])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_linear_kde_equals_sklearn(bandwidth: float, seed: int) -> None:
    from sklearn.neighbors import KernelDensity

    rng = np.random.default_rng(seed)
    data = np.concatenate([rng.gamma(2.0, 0.5, 400), rng.uniform(0, 0.2, 50), [3.0, 3.0, 7.5]])
    grid = np.sort(
        np.concatenate(
            [
                np.linspace(-0.5, data.max() + 0.5, 1000),
                data[:20] + bandwidth,
                data[:20] - bandwidth,
            ]
        )
    )
    expected = np.exp(
        KernelDensity(kernel="linear", bandwidth=bandwidth)
        .fit(data.reshape(-1, 1))
        .score_samples(grid.reshape(-1, 1))
    )
    assert_close(rmt.linear_kde(data, grid, bandwidth), expected, atol=1e-10, what="linear KDE")


@pytest.mark.parametrize("sigma", [0.3, 1.0, 2.5])
@pytest.mark.parametrize("Q", [*RATIOS, 100.0])
def test_mp_density_closed_form(Q: float, sigma: float) -> None:
    lo, hi = rmt.mp_edges(Q, sigma)
    assert lo == pytest.approx(sigma**2 * (1 - 1 / np.sqrt(Q)) ** 2, abs=1e-15)
    assert hi == pytest.approx(sigma**2 * (1 + 1 / np.sqrt(Q)) ** 2)

    def rho(x: float) -> float:
        return float(rmt.mp_density(np.array([x]), Q, sigma)[0])

    mass, _ = integrate.quad(rho, lo, hi, limit=200)
    mean, _ = integrate.quad(lambda x: x * rho(x), lo, hi, limit=200)
    var, _ = integrate.quad(lambda x: (x - sigma**2) ** 2 * rho(x), lo, hi, limit=200)
    assert mass == pytest.approx(1.0, abs=1e-8)
    assert mean == pytest.approx(sigma**2, rel=1e-8)  # MP moments: σ², σ⁴/Q
    assert var == pytest.approx(sigma**4 / Q, rel=1e-6)
    outside = np.array([lo - 0.1 * hi, hi * 1.001, hi * 2])
    assert np.all(rmt.mp_density(outside[outside > 0], Q, sigma) == 0.0)
    inside = np.linspace(lo, hi, 50)[1:-1]
    assert np.all(rmt.mp_density(inside, Q, sigma) > 0.0)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 1.7])
@pytest.mark.parametrize("Q", [1.0, 1.5, 4.0])
def test_densities_equal_weightwatcher(Q: float, sigma: float) -> None:
    _, rmt_util, _ = _ww.import_ww()
    x = np.linspace(0.0, 8.0, 2001)
    _, expected, _, _ = rmt_util.marchenko_pastur_fun(x, Q, sigma)
    assert_close(rmt.mp_density(x, Q, sigma), expected, rtol=1e-12, atol=1e-14, what="MP")
    s = np.linspace(0.0, 2.5, 1001)
    _, qc = rmt_util.quarter_circle_fun(s, sigma)
    assert_close(rmt.quarter_circle_density(s, sigma), qc, rtol=1e-12, what="quarter circle")


def test_quarter_circle_normalised_at_unit_sigma() -> None:
    mass, _ = integrate.quad(lambda s: rmt.quarter_circle_density(np.array([s]), 1.0)[0], 0, 2)
    assert mass == pytest.approx(1.0, abs=1e-10)


def _fit_spectra() -> list[tuple[str, np.ndarray, float]]:
    rng = np.random.default_rng(42)
    heavy = rng.standard_t(3, (800, 200))
    return [
        ("gauss-Q1", _gaussian_esd(250, 250, 1), 1.0),
        ("gauss-Q2", _gaussian_esd(600, 300, 2), 2.0),
        ("gauss-Q8", _gaussian_esd(800, 100, 3), 8.0),
        ("spiked-Q1", _planted(200, 200, [3.0, 4.0]), 1.0),
        ("spiked-Q1.5", _planted(450, 300, [4.0]), 1.5),
        ("t3-Q4", np.linalg.eigvalsh(heavy.T @ heavy), 4.0),
    ]


@pytest.mark.parametrize(("label", "evals", "Q"), _fit_spectra(), ids=lambda v: str(v)[:12])
def test_fit_mp_sigma_equals_weightwatcher(label: str, evals: np.ndarray, Q: float) -> None:
    _, rmt_util, _ = _ww.import_ww()
    rescaled = evals * (evals.size / np.sum(evals))
    with _ww.cached_kde():
        expected, _ = rmt_util.fit_density_with_range(rescaled, Q, bw=0.1)
    assert rmt.fit_mp_sigma(rescaled, Q) == pytest.approx(expected, abs=1e-6), label


def test_tracy_widom_threshold_closed_form() -> None:
    for Q, M, lam_plus in [(1.0, 100, 4.0), (2.0, 384, 2.9), (8.0, 50, 1.8)]:
        tw = Q**-0.5 * lam_plus ** (2 / 3) * M ** (-2 / 3)
        assert rmt.tracy_widom_threshold(lam_plus, Q, M) == pytest.approx(lam_plus + np.sqrt(tw))


@pytest.mark.parametrize("seed", range(5))
def test_jensen_shannon_equals_scipy_and_weightwatcher(seed: int) -> None:
    _, rmt_util, _ = _ww.import_ww()
    rng = np.random.default_rng(seed)
    p = rng.gamma(1.0, 2.0, 300)
    q = rng.gamma(2.0, 1.0, 300)
    q[:5] = 0.0  # zeros on one side are allowed
    ours = rmt.jensen_shannon_distance(p, q)
    assert ours == pytest.approx(jensenshannon(p, q), abs=1e-12)
    # WeightWatcher forms m = (p + q)/2 before normalising, which is the mixture only when
    # Σp = Σq -- always the case where it is used (shuffling W keeps ‖W‖_F² = Σλ).
    q_same_mass = q * (np.sum(p) / np.sum(q))
    assert rmt.jensen_shannon_distance(p, q_same_mass) == pytest.approx(
        rmt_util.jensen_shannon_distance(p, q_same_mass), abs=1e-12
    )
    assert rmt.jensen_shannon_distance(p, p) == pytest.approx(0.0, abs=1e-12)
    assert rmt.rand_distance(p, q) == pytest.approx(
        jensenshannon(np.sort(p), np.sort(q)), abs=1e-12
    )
