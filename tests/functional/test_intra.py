"""Intra-layer products: alignment, normalisation and ESD against numpy written out here.

Whole-model parity with WeightWatcher 0.7.7 ``intra=True`` is in
tests/reference/test_ww_intra_fft.py.
"""

from __future__ import annotations

import numpy as np
import pytest

from layerscope.functional import intra
from reference._compare import assert_close


@pytest.mark.parametrize(
    ("shape0", "shape1", "k"),
    [
        ((120, 40), (80, 120), 120),  # nn.Linear storage (out, in): W0 then W1
        ((60, 80), (10, 60), 60),
        ((384, 384), (1536, 384), 384),
        ((1536, 384), (384, 1536), 1536),  # the larger repeated side wins, as in WW
        ((7, 5), (3, 2), None),
    ],
)
def test_shared_dim_and_alignment(
    shape0: tuple[int, int], shape1: tuple[int, int], k: int | None
) -> None:
    assert intra.shared_dim(shape0, shape1) == k
    rng = np.random.default_rng(0)
    pair = intra.align(rng.standard_normal(shape0), rng.standard_normal(shape1))
    if k is None:
        assert pair is None
        return
    assert pair is not None
    A, B = pair
    assert A.shape[1] == B.shape[0] == k


def test_product_is_normalised_by_both_frobenius_norms() -> None:
    rng = np.random.default_rng(1)
    W0, W1 = rng.standard_normal((30, 20)), rng.standard_normal((10, 30))
    X = intra.product(W0, W1)
    assert X is not None
    ref = (W0.T @ W1.T) / (np.linalg.norm(W0) * np.linalg.norm(W1))
    assert_close(X, ref, rtol=1e-12, atol=1e-15)
    S = rng.integers(0, 2, size=(30, 30))
    Xs = intra.product(W0, W1, mask=S)
    assert Xs is not None
    scale = np.linalg.norm(W0) * np.linalg.norm(W1) + np.sqrt(np.linalg.norm(S))
    assert_close(Xs, (W0.T @ S @ W1.T) / scale, rtol=1e-12, atol=1e-15)
    assert intra.product(W0, rng.standard_normal((7, 9))) is None


def test_esd_is_the_top_rank_singular_values() -> None:
    """X = A·B with a narrow shared side k has rank k: the structural zeros are dropped."""
    rng = np.random.default_rng(2)
    A, B = rng.standard_normal((50, 6)), rng.standard_normal((6, 40))
    X = intra.product(A, B)
    assert X is not None
    rank = intra.num_components(A.shape, B.shape)
    assert rank == 6
    gram = np.linalg.eigvalsh(X.T @ X)
    sv = intra.singular_values(gram, rank)
    assert_close(sv, np.sort(np.linalg.svd(X, compute_uv=False))[-6:], rtol=1e-9)
