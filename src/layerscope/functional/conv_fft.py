"""Spectra of a 2-D convolution through the FFT of its kernel (WeightWatcher ``conv2d_fft``).

A Conv2d kernel ``K`` of shape (out, in, kh, kw) acting on n×n inputs with circular
padding is a linear operator whose matrix is doubly block circulant. Its singular
values are the union, over the n² spatial frequencies (u, v), of the singular values
of the out×in complex matrices

    K̂(u, v)[o, i] = Σ_{p,q} K[o, i, p, q] · exp(−2πi (u·p + v·q) / n)

(Sedghi, Gupta & Long, "The Singular Values of Convolutional Layers", ICLR 2019,
arXiv:1805.10408, Theorem 6). :func:`operator_eigenvalues` returns the n²·min(out, in)
eigenvalues λ = σ² of that operator. Because K is real, K̂(−u, −v) is the complex
conjugate of K̂(u, v) and has the same singular values, so only the n·(n//2 + 1)
frequencies of a real FFT are decomposed and the mirrored ones are counted twice.

:func:`weightwatcher_eigenvalues` reproduces what WeightWatcher 0.7.7 computes for
``conv2d_fft=True`` (``WWLayer.get_conv2d_fft`` and ``combined_eigenvalues``), which is
not the operator spectrum: it scales the FFT by √(1/2) (``conv2d_norm``), keeps only its
real part (``astype(float)`` on a complex array), takes the singular values of the n×n
*frequency grid* of every (out, in) channel pair, pools the out·in·n values and keeps
the largest rf·N·M of them (rf = min(kh, kw), N ≥ M the channel counts), squared.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

# WeightWatcher's input grid (``get_conv2d_fft(W, n=32)``), also our default.
DEFAULT_FFT_SIZE = 32
# WeightWatcher's ``conv2d_norm``: every conv matrix is scaled by √(1/2).
WW_CONV2D_NORM = np.sqrt(0.5)


def _check(kernel: NDArray[Any], n: int) -> None:
    if kernel.ndim != 4:
        raise ValueError(f"conv2d_fft needs a 4-D kernel (out, in, kh, kw), got {kernel.shape}")
    if n < max(kernel.shape[2], kernel.shape[3]):
        raise ValueError(f"fft size {n} is smaller than the kernel {kernel.shape[2:]}")


def frequency_matrices(kernel: NDArray[Any], n: int = DEFAULT_FFT_SIZE) -> NDArray[np.complex128]:
    """K̂(u, v) for the frequencies of a real 2-D FFT: shape (n, n//2 + 1, out, in).

    The kernel is zero-padded to n×n (a kernel larger than n is rejected: the operator
    on n×n inputs would wrap it around).
    """
    _check(kernel, n)
    spec = np.fft.rfft2(np.asarray(kernel, dtype=np.float64), s=(n, n), axes=(2, 3))
    return np.ascontiguousarray(spec.transpose(2, 3, 0, 1))


def _mirror_weights(n: int) -> NDArray[np.int64]:
    """How many frequencies of the full n×n grid each rfft column stands for (1 or 2)."""
    cols = n // 2 + 1
    weights = np.full(cols, 2, dtype=np.int64)
    weights[0] = 1
    if n % 2 == 0:
        weights[-1] = 1  # the Nyquist column is its own mirror
    return weights


def operator_eigenvalues(kernel: NDArray[Any], n: int = DEFAULT_FFT_SIZE) -> FloatArray:
    """Eigenvalues λ = σ² of the convolution operator on n×n inputs (circular padding).

    λ ranges over the eigenvalues of K̂(u, v)ᴴK̂(u, v) (or K̂K̂ᴴ, the smaller one) for all
    n² frequencies: n²·min(out, in) values, sorted ascending (Sedghi, Gupta & Long,
    ICLR 2019, arXiv:1805.10408). Parseval: Σλ = n²·‖K‖_F².

    Args:
        kernel: (out, in, kh, kw) real array.
        n: input size (WeightWatcher fixes n = 32); kh, kw ≤ n.
    """
    F = frequency_matrices(kernel, n)
    if F.shape[2] < F.shape[3]:
        F = np.conj(np.swapaxes(F, 2, 3))
    G = np.conj(np.swapaxes(F, 2, 3)) @ F  # (n, cols, M, M) Hermitian
    lam = np.clip(np.linalg.eigvalsh(G), 0.0, None)
    counts = np.broadcast_to(_mirror_weights(n)[None, :, None], lam.shape)
    return np.sort(np.repeat(lam.reshape(-1), counts.reshape(-1)))


def weightwatcher_eigenvalues(kernel: NDArray[Any], n: int = DEFAULT_FFT_SIZE) -> FloatArray:
    """WeightWatcher 0.7.7's ``conv2d_fft=True`` eigenvalues of a (out, in, kh, kw) kernel.

    λ = s², s the largest rf·N·M of the pooled singular values of the n×n matrices
    Re(√(1/2)·FFT₂(K[o, i], n×n)) over all channel pairs (o, i), rf = min(kh, kw),
    N = max(out, in), M = min(out, in); see the module docstring. Kept for parity: these
    are not the singular values of the convolution (use :func:`operator_eigenvalues`).
    Channels-last kernels are not detected here; pass (out, in, kh, kw).
    """
    _check(kernel, n)
    out, inp, kh, kw = kernel.shape
    spec = np.fft.fft2(np.asarray(kernel, dtype=np.float64), s=(n, n), axes=(2, 3))
    sv = np.linalg.svd((spec * WW_CONV2D_NORM).real, compute_uv=False).reshape(-1)
    keep = min(kh, kw) * out * inp
    return np.sort(np.square(np.sort(sv)[-keep:]))


__all__ = [
    "DEFAULT_FFT_SIZE",
    "frequency_matrices",
    "operator_eigenvalues",
    "weightwatcher_eigenvalues",
]
