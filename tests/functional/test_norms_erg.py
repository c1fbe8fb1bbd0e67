"""Norm metrics against numpy on the matrix; detX/ERG against WeightWatcher and a naive loop."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.special import logsumexp

import _ww
from layerscope import metrics
from layerscope.functional import erg, norms
from reference._compare import assert_close


def _matrices() -> list[tuple[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    lowrank = rng.standard_normal((120, 10)) @ rng.standard_normal((10, 50))
    return [
        ("gauss-tall", rng.standard_normal((300, 100))),
        ("t3-square", rng.standard_t(3, (150, 150))),
        ("pareto-wide", np.sign(rng.standard_normal((80, 240))) * rng.pareto(2.0, (80, 240))),
        ("rank10", lowrank),  # rank-deficient: 40 zero singular values
        ("tiny-scale", 1e-3 * rng.standard_normal((64, 32))),
    ]


MATRICES = _matrices()


@pytest.mark.parametrize(("label", "W"), MATRICES, ids=[m[0] for m in MATRICES])
def test_norm_metrics_equal_numpy_on_the_matrix(label: str, W: np.ndarray) -> None:
    _, rmt_util, _ = _ww.import_ww()
    N = max(W.shape)
    sv = np.linalg.svd(W, compute_uv=False)
    nm = norms.norm_metrics(sv**2, N)
    fro2 = np.linalg.norm(W, "fro") ** 2
    spec2 = np.linalg.norm(W, 2) ** 2
    assert nm.log_norm == pytest.approx(np.log10(fro2), abs=1e-12)
    assert nm.log_spectral_norm == pytest.approx(np.log10(spec2), abs=1e-12)
    assert nm.norm == pytest.approx(fro2, rel=1e-12)
    assert nm.spectral_norm == pytest.approx(spec2, rel=1e-12)
    assert nm.stable_rank == pytest.approx(fro2 / spec2, rel=1e-12)
    assert nm.matrix_rank == np.linalg.matrix_rank(W)
    assert nm.entropy == pytest.approx(rmt_util.matrix_entropy(sv, N), abs=1e-12)
    assert 0.0 < nm.entropy <= 1.0 + 1e-9


def test_entropy_closed_forms() -> None:
    """A flat spectrum has entropy 1; rank 2 with equal values too; a dominant value → 0."""
    assert norms.matrix_entropy(np.ones(50), 100) == pytest.approx(1.0, abs=1e-6)
    assert norms.matrix_entropy(np.array([0.0] * 8 + [2.0, 2.0]), 10) == pytest.approx(
        1.0, abs=1e-6
    )
    assert norms.matrix_entropy(np.array([1e-6] * 9 + [1.0]), 10) < 1e-3


def test_entropy_of_rank_one_spectrum_is_in_unit_interval() -> None:
    # WeightWatcher gives ≈206 here (documented difference); a rank-1 spectrum has entropy 0.
    assert norms.matrix_entropy(np.array([0.0] * 9 + [4.0]), 10) == 0.0


@pytest.mark.parametrize("alpha", [1.5, 2.0, 4.0, 12.0, 150.0])
def test_alpha_weighted_and_log_alpha_norm(alpha: float) -> None:
    evals = np.random.default_rng(1).pareto(1.5, 400) * 1e3 + 1e-3
    assert norms.alpha_weighted(alpha, evals.max()) == pytest.approx(alpha * np.log10(evals.max()))
    # log10 Σ λ^α in log space (λ^150 overflows float64); WeightWatcher's direct sum for small α.
    expected = logsumexp(alpha * np.log(evals)) / np.log(10.0)
    assert norms.log_alpha_norm(evals, alpha) == pytest.approx(expected, rel=1e-12)
    if alpha <= 12:
        assert norms.log_alpha_norm(evals, alpha) == pytest.approx(
            np.log10(np.sum(evals**alpha)), rel=1e-12
        )


def _random_spectra() -> list[np.ndarray]:
    """~100 spectra: MP-like, heavy-tailed, spiked, tiny, rank-deficient, tied values."""
    rng = np.random.default_rng(123)
    out = []
    for i in range(100):
        kind = i % 5
        M = int(rng.integers(2, 400))
        if kind == 0:
            W = rng.standard_normal((M + int(rng.integers(0, 300)), M))
            ev = np.linalg.svd(W, compute_uv=False) ** 2
        elif kind == 1:
            ev = rng.pareto(rng.uniform(0.5, 4.0), M) * 10.0 ** rng.uniform(-3, 3)
        elif kind == 2:
            ev = np.concatenate(
                [rng.uniform(0.1, 1.0, M), rng.uniform(5, 50, int(rng.integers(1, 6)))]
            )
        elif kind == 3:
            ev = np.concatenate([np.zeros(int(rng.integers(1, 20))), rng.gamma(0.5, 2.0, M)])
        else:
            ev = np.round(rng.gamma(2.0, 1.0, M), 1) + 0.1
        out.append(np.sort(ev))
    return out


def test_detx_equals_weightwatcher_on_100_spectra() -> None:
    _, rmt_util, _ = _ww.import_ww()
    for i, ev in enumerate(_random_spectra()):
        ours = erg.detx(ev)
        rescaled, _ = rmt_util.rescale_eigenvalues(ev)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore", under="ignore"):
            num, idx = rmt_util.detX_constraint(rescaled, rescale=False)
        assert ours.detX_num == num, (i, ev.size)
        assert ours.detX_val == ev[idx], i
        assert ours.detX_val_unrescaled == pytest.approx(rescaled[idx], rel=1e-12), i


def _naive_detx(evals: np.ndarray) -> tuple[int, float]:
    """Walk down from the largest rescaled eigenvalue, multiplying, until the product < 1."""
    ev = np.sort(evals)
    M = ev.size
    scaled = ev * (M / math.fsum(ev))
    log_product = 0.0
    for k in range(M - 1, 0, -1):
        log_product += math.log(scaled[k]) if scaled[k] > 0 else -math.inf
        if log_product < 0.0:
            return M - k, float(ev[k])
    return M, float(ev[1])


@pytest.mark.parametrize("index", range(0, 100, 7))
def test_erg_definition_naive_loop(index: int) -> None:
    ev = _random_spectra()[index]
    num, val = _naive_detx(ev)
    d = erg.detx(ev)
    assert (d.detX_num, d.detX_val) == (num, val)
    # ERG_gap = detX_num − num_pl_spikes, through the registry.
    spectra = metrics.LayerSpectra(ev, max(ev.size, 2 * ev.size), ev.size)
    row = metrics.compute_row(spectra, metrics.resolve(["erg"]))
    assert row["detX_num"] == num
    assert row["ERG_gap"] == num - row["num_pl_spikes"]


def test_detx_edge_cases() -> None:
    assert erg.detx(np.array([2.0])).detX_num == 0
    assert erg.detx(np.full(10, 3.0)).detX_num == 0
    # two values: the top one (rescaled 2·3/4 = 1.5 > 1) alone is not < 1, so all of it
    d = erg.detx(np.array([1.0, 3.0]))
    assert (d.detX_num, d.detX_val) == (2, 3.0)
    assert_close(
        [erg.detx(10.0 * np.arange(1.0, 30.0)).detX_num],
        [erg.detx(np.arange(1.0, 30.0)).detX_num],
        what="scale invariance",
    )
