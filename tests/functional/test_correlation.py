"""Rank correlations and the bootstrap against scipy.stats."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats

from layerscope.functional import correlation as fc


def _pairs() -> list[tuple[str, np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(3)
    x = rng.standard_normal(40)
    return [
        ("linear-noise", x, 2 * x + rng.standard_normal(40)),
        ("monotone", x, np.exp(x)),
        ("independent", x, rng.standard_normal(40)),
        ("ties", rng.integers(0, 4, 30).astype(float), rng.integers(0, 3, 30).astype(float)),
        ("anti", np.arange(7.0), -(np.arange(7.0) ** 3)),
    ]


@pytest.mark.parametrize(("label", "x", "y"), _pairs(), ids=[p[0] for p in _pairs()])
def test_statistics_match_scipy(label: str, x: np.ndarray, y: np.ndarray) -> None:
    assert fc.spearman(x, y) == pytest.approx(stats.spearmanr(x, y).statistic, abs=1e-12)
    assert fc.kendall_tau_b(x, y) == pytest.approx(
        stats.kendalltau(x, y, variant="b").statistic, abs=1e-12
    )
    assert fc.r_squared(x, y) == pytest.approx(stats.linregress(x, y).rvalue ** 2, abs=1e-12)
    np.testing.assert_allclose(fc.average_ranks(x), stats.rankdata(x), atol=0)


def test_row_forms_equal_the_scalar_forms() -> None:
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, (6, 12)).astype(float)  # ties, as in bootstrap resamples
    y = x + rng.integers(0, 3, (6, 12))
    np.testing.assert_allclose(fc.ranks_rows(x), [stats.rankdata(r) for r in x])
    for rows, scalar in (
        (fc.spearman_rows, fc.spearman),
        (fc.kendall_rows, fc.kendall_tau_b),
        (fc.r_squared_rows, fc.r_squared),
    ):
        np.testing.assert_allclose(rows(x, y), [scalar(a, b) for a, b in zip(x, y, strict=True)])


def test_constant_input_is_nan() -> None:
    x, y = np.ones(5), np.arange(5.0)
    assert np.isnan(fc.spearman(x, y)) and np.isnan(fc.kendall_tau_b(x, y))
    est = fc.bootstrap(fc.kendall_rows, x, y, resamples=50)
    assert np.isnan(est.value) and np.isnan(est.low) and np.isnan(est.high)


def test_bootstrap_is_the_percentile_interval_of_scipy_on_the_same_resamples() -> None:
    rng = np.random.default_rng(1)
    x = rng.standard_normal(25)
    y = x + rng.standard_normal(25)
    est = fc.bootstrap(fc.kendall_rows, x, y, resamples=300, level=0.9, seed=7)
    idx = np.random.default_rng(7).integers(0, 25, size=(300, 25))
    draws = np.array([stats.kendalltau(x[i], y[i]).statistic for i in idx])
    draws = draws[np.isfinite(draws)]
    assert est.value == pytest.approx(stats.kendalltau(x, y).statistic)
    assert est.low == pytest.approx(np.percentile(draws, 5.0))
    assert est.high == pytest.approx(np.percentile(draws, 95.0))
    assert est.low < est.value < est.high


def test_bootstrap_chunks_agree_with_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(2)
    x, y = rng.standard_normal(20), rng.standard_normal(20)
    whole = fc.bootstrap(fc.spearman_rows, x, y, resamples=64, seed=3)
    monkeypatch.setattr(fc, "_CHUNK_CELLS", 400 * 3)  # 3 resamples per chunk
    assert fc.bootstrap(fc.spearman_rows, x, y, resamples=64, seed=3) == whole


def test_bootstrap_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="equal length"):
        fc.bootstrap(fc.kendall_rows, np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="level"):
        fc.bootstrap(fc.kendall_rows, np.arange(4.0), np.arange(4.0), level=1.5)


def test_kendall_from_draw_counts_equals_the_resampled_pairs() -> None:
    rng = np.random.default_rng(4)
    x = rng.integers(0, 4, 30).astype(float)  # ties, and resamples with a constant x
    y = x + rng.integers(0, 3, 30)
    idx = rng.integers(0, 30, size=(200, 30))
    idx[0] = 5  # one resample of a single point: tau undefined
    fast = fc.kendall_resampled(x, y, idx)
    slow = fc.kendall_rows(x[idx], y[idx])
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-12)
    assert np.isnan(fast[0])
    ref = stats.kendalltau(x[idx[1]], y[idx[1]], variant="b").statistic
    assert fast[1] == pytest.approx(ref)
