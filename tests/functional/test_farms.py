"""FARMS alpha against a literal, loop-by-loop implementation of the released algorithm.

Reference: Hu et al., ICML 2025 (arXiv 2506.06280), released ``fixed_sampling`` (linear
layers) and the conv branch of ``net_esd_estimator_farms``; rewritten here from the
description, one window at a time, with ``np.linalg.svd`` instead of a Gram matrix.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest

from layerscope.functional import farms, powerlaw
from layerscope.functional.farms import farms_alpha

median = powerlaw.fit_power_law_median


def _literal_linear_esd(W: np.ndarray, num_row_samples: int, ops: int) -> np.ndarray:
    """Released V2 sampling with Q = 1: even-stride grid, every window pair, pooled σ²."""
    rows, cols = W.shape
    num_col_samples = int(num_row_samples * 1.0)
    row_step = max(1, math.floor((rows - num_row_samples) / (ops - 1)))
    col_step = max(1, math.floor((cols - num_col_samples) / (ops - 1)))
    num_row_windows = min(ops, max(1, (rows - num_row_samples) // row_step + 1))
    num_col_windows = min(ops, max(1, (cols - num_col_samples) // col_step + 1))
    eigs = []
    for i in range(num_row_windows):
        for j in range(num_col_windows):
            r = min(i * row_step, rows - num_row_samples)
            c = min(j * col_step, cols - num_col_samples)
            sub = W[r : r + num_row_samples, c : c + num_col_samples]
            eigs.append(np.linalg.svd(sub, compute_uv=False) ** 2)
    return np.sort(np.concatenate(eigs))


def _literal_conv_alpha(slices: np.ndarray, fit: farms.Fit) -> float:
    """Released conv branch with Q = 1: ⌊rows/cols⌋ square row blocks, pooled over slices
    (each slice transposed to rows ≥ cols and scaled by √0.5), alphas averaged."""
    mats = [s.T if s.shape[0] < s.shape[1] else s for s in slices]
    rows, cols = mats[0].shape
    alphas = []
    for i in range(rows // cols):
        block = []
        for W in mats:
            sub = W[i * cols : (i + 1) * cols, :cols] * math.sqrt(0.5)
            block.append(np.linalg.svd(sub, compute_uv=False) ** 2)
        pooled = np.sort(np.concatenate(block))
        alphas.append(fit(pooled, 1e-12 * pooled[-1]).alpha)
    return float(np.mean(alphas))


def test_window_starts_even_stride() -> None:
    # step = ⌊(100 − 16)/9⌋ = 9, count = min(10, ⌊84/9⌋ + 1) = 10
    assert farms.window_starts(100, 16, 10) == list(range(0, 82, 9))
    # no room to slide: a single window at 0
    assert farms.window_starts(16, 16, 10) == [0]
    # (23 − 10)/9 < 1: step 1, ten windows
    assert farms.window_starts(23, 10, 10) == list(range(10))


@pytest.mark.parametrize(
    ("shape", "max_window", "ops"),
    [((50, 37), 2000, 10), ((37, 50), 2000, 10), ((120, 30), 2000, 10), ((40, 70), 16, 3)],
)
def test_linear_esd_matches_literal(shape: tuple[int, int], max_window: int, ops: int) -> None:
    rng = np.random.default_rng(sum(shape))
    W = rng.standard_t(3, shape)
    w = min(max_window, *shape)
    ref = _literal_linear_esd(W, w, ops)
    got = farms.linear_esd(W, max_window, ops)
    np.testing.assert_allclose(got, ref, rtol=1e-7, atol=1e-9 * ref[-1])
    for fit in (powerlaw.fit_power_law, median):
        expected = fit(ref, 1e-12 * ref[-1]).alpha
        assert farms_alpha(W, fit=fit, max_window=max_window, ops=ops).alpha == pytest.approx(
            expected, rel=1e-6
        )


def test_window_count_and_shape() -> None:
    W = np.random.default_rng(0).standard_normal((40, 70))
    fit = farms_alpha(W, max_window=16, ops=3)
    assert fit.window == (16, 16)
    assert fit.num_windows == 9  # 3 row starts × 3 column starts
    assert fit.num_evals == 9 * 16


@pytest.mark.parametrize("shape", [(9, 24, 8), (9, 8, 24), (4, 30, 7)])
def test_conv_blocks_match_literal(shape: tuple[int, int, int]) -> None:
    slices = np.random.default_rng(shape[1]).standard_t(4, shape)
    for fit in (powerlaw.fit_power_law, median):
        expected = _literal_conv_alpha(slices, fit)
        got = farms_alpha(slices, fit=fit, eig_scale=0.5)
        assert got.alpha == pytest.approx(expected, rel=1e-6)
        assert got.num_windows == max(shape[1:]) // min(shape[1:])


def test_aspect_ratio_bias_removed() -> None:
    """Gaussian M × qM: plain alpha grows with q, FARMS alpha stays at the square value."""
    M, seeds = 96, 3
    plain, farms_a = {}, {}
    for q in (1, 2, 4, 8, 16):
        p, f = [], []
        for seed in range(seeds):
            W = np.random.default_rng([seed, q]).standard_normal((M, q * M))
            p.append(median(farms.squared_singular_values(W)).alpha)
            f.append(farms_alpha(W, fit=median).alpha)
        plain[q], farms_a[q] = float(np.mean(p)), float(np.mean(f))
    qs = sorted(plain)
    assert all(plain[a] < plain[b] for a, b in itertools.pairwise(qs)), plain
    assert plain[16] - plain[1] > 3.0, plain
    assert max(abs(farms_a[q] - farms_a[1]) for q in qs) < 0.15, farms_a


def test_median_fit_direct() -> None:
    x = np.random.default_rng(3).pareto(2.0, 501) + 1.0
    fit = median(x)
    s = np.sort(x)
    k = s.size // 2
    tail = s[k:]
    n = tail.size
    alpha = 1.0 + n / np.sum(np.log(tail / s[k]))
    D = np.max(np.abs(np.arange(n) / n - (1.0 - (tail / s[k]) ** (1.0 - alpha))))
    assert fit.alpha == pytest.approx(alpha, rel=1e-12)
    assert pytest.approx(D, rel=1e-9) == fit.D
    assert (fit.xmin, fit.num_pl_spikes) == (s[k], n)


def test_zero_blocks_are_left_out() -> None:
    slices = np.random.default_rng(5).standard_normal((4, 24, 8))
    zeroed = slices.copy()
    zeroed[:, 8:16] = 0.0  # the second of three row blocks is all zeros
    got = farms_alpha(zeroed, fit=median)
    expected = np.mean([farms_alpha(zeroed[:, r : r + 8], fit=median).alpha for r in (0, 16)])
    assert len(got.fits) == 2 and got.alpha == pytest.approx(expected, rel=1e-12)
    assert math.isnan(farms_alpha(np.zeros((1, 30, 20))).alpha)


def test_bad_input() -> None:
    with pytest.raises(ValueError, match="at least 2 windows"):
        farms_alpha(np.ones((5, 5)), ops=1)
    with pytest.raises(ValueError, match="shape"):
        farms_alpha(np.ones(5))
    with pytest.raises(ValueError, match="xmin_pos"):
        median(np.arange(1.0, 10.0), xmin_pos=0)
