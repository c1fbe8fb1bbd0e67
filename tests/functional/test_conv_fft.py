"""FFT readings of a convolution kernel against the operator written out as a matrix.

Reference for ``operator_eigenvalues``: the linear map
x ↦ conv2d(x) on n×n inputs with circular padding, built column by column with
``torch.nn.functional.conv2d`` and decomposed by a dense SVD. The WeightWatcher reading
is checked against WeightWatcher 0.7.7 itself in tests/reference/test_ww_intra_fft.py.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.nn import functional

from layerscope.functional import conv_fft
from reference._compare import assert_close


def _operator(kernel: np.ndarray, n: int) -> np.ndarray:
    """The (out·n²) × (in·n²) matrix of the circular convolution on n×n inputs."""
    _, inp, kh, kw = kernel.shape
    eye = torch.eye(inp * n * n, dtype=torch.float64).reshape(-1, inp, n, n)
    padded = functional.pad(eye, (0, kw - 1, 0, kh - 1), mode="circular")
    cols = functional.conv2d(padded, torch.from_numpy(kernel))
    return cols.reshape(inp * n * n, -1).T.numpy()


def _dense_eigenvalues(A: np.ndarray, count: int) -> np.ndarray:
    sv = np.linalg.svd(A, compute_uv=False)
    return np.sort(sv**2)[-count:]


@pytest.mark.parametrize(
    ("shape", "n"),
    [((5, 3, 3, 3), 6), ((3, 5, 3, 3), 7), ((4, 4, 1, 1), 4), ((6, 2, 3, 2), 5), ((2, 3, 5, 5), 5)],
)
def test_operator_eigenvalues_equal_the_dense_operator(shape: tuple[int, ...], n: int) -> None:
    kernel = np.random.default_rng(sum(shape) + n).standard_normal(shape)
    got = conv_fft.operator_eigenvalues(kernel, n)
    count = min(shape[0], shape[1]) * n * n
    assert got.shape == (count,)
    assert_close(got, _dense_eigenvalues(_operator(kernel, n), count), rtol=1e-10, atol=1e-10)
    # Parseval: the eigenvalues sum to n²·‖K‖_F²
    assert got.sum() == pytest.approx(n * n * np.sum(kernel**2), rel=1e-12)


def test_weightwatcher_reading_follows_its_recipe() -> None:
    """Re(√½·FFT) per channel pair, SVD of each n×n grid, top min(kh,kw)·out·in values."""
    kernel = np.random.default_rng(3).standard_normal((4, 3, 3, 2))
    n = 8
    sv = []
    for o in range(4):
        for i in range(3):
            grid = np.real(np.fft.fft2(kernel[o, i], (n, n)) * np.sqrt(0.5))
            sv.extend(np.linalg.svd(grid, compute_uv=False))
    ref = np.sort(np.square(np.sort(sv)[-2 * 4 * 3 :]))
    assert_close(conv_fft.weightwatcher_eigenvalues(kernel, n), ref, rtol=1e-12)


def test_bad_kernels_are_rejected() -> None:
    with pytest.raises(ValueError, match="4-D kernel"):
        conv_fft.operator_eigenvalues(np.ones((3, 3, 3)), 8)
    with pytest.raises(ValueError, match="smaller than the kernel"):
        conv_fft.operator_eigenvalues(np.ones((2, 2, 5, 5)), 4)
