"""FARMS alpha: the power-law exponent of the pooled ESD of fixed-aspect-ratio windows.

Source: Hu et al., "Eigenspectrum Analysis of Neural Networks without Aspect Ratio Bias"
(FARMS, ICML 2025, arXiv 2506.06280). The ESD of an N×M matrix depends on its aspect ratio
Q = N/M (the Marchenko-Pastur bulk of a random matrix is narrower the taller the matrix), so
a plain power-law fit reads a 512×100 layer as less heavy-tailed than a square one with the
same structure. FARMS fits every layer on windows of one fixed aspect ratio (Q = 1 here, the
released setting for language models), so layers of different shapes become comparable.

Linear layers (the released ``fixed_sampling`` with ``sampling_ops_per_dim = 10``), for a
stored rows × cols matrix:

    w          = min(max_window, rows, cols)            window w × w (Q = 1)
    step(size) = max(1, ⌊(size − w)/(ops − 1)⌋)
    count      = min(ops, max(1, ⌊(size − w)/step⌋ + 1))
    starts     = min(i·step, size − w),  i = 0 … count − 1   (rows and columns alike)

Every (row start, column start) pair is a window; the squared singular values of all windows
are concatenated into one ESD and fitted once.

Convolutions (kernel slices W_s, s = 1 … kh·kw, each N×M with N ≥ M): the rows are cut into
⌊N/M⌋ square blocks B_i = W_s[iM:(i+1)M, :M]; block i's ESD pools the squared singular values
of B_i over all slices; alpha is the mean of the blocks' fitted alphas.

The tail fit is the caller's (``fit``), by default :func:`powerlaw.fit_power_law` (minimum-KS
xmin), the same fit as the plain ``alpha``. Like the released code (``filter_zeros=False``)
no absolute zero threshold is applied by default: square windows have eigenvalues down to
the hard edge at 0, and an absolute cut would make alpha depend on the scale of W. Only
numerical zeros (≤ 1e-12·λ_max of the pooled ESD) are dropped, since ln 0 has no fit.
Window eigenvalues come from the float64 Gram matrix instead of a float32 SVD.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from layerscope.functional import powerlaw
from layerscope.functional.powerlaw import FloatArray, PowerLawFit

# Released defaults: windows at most 2000 rows, 10 windows per dimension.
MAX_WINDOW = 2000
OPS = 10
# Pooled eigenvalues at or below λ_max·this are numerical zeros (float64 Gram round-off).
RELATIVE_ZERO = 1e-12

Fit = Callable[[FloatArray, float], PowerLawFit]


@dataclass(frozen=True)
class FarmsFit:
    """Result of :func:`farms_alpha`.

    Attributes:
        alpha: FARMS alpha (the single fit; for convolutions the mean over row blocks).
        fits: the power-law fit of each pooled ESD (one for linear layers, one per block).
        num_windows: windows (linear) or row blocks (convolution) pooled or averaged.
        window: (rows, cols) of one window.
        num_evals: eigenvalues in all pooled ESDs together.
    """

    alpha: float
    fits: tuple[PowerLawFit, ...]
    num_windows: int
    window: tuple[int, int]
    num_evals: int

    @property
    def D(self) -> float:
        """Mean KS distance of the fits (NaN without any)."""
        return float(np.mean([f.D for f in self.fits])) if self.fits else float("nan")


def window_starts(size: int, window: int, ops: int = OPS) -> list[int]:
    """Start offsets of the released even-stride grid along one dimension (module docstring)."""
    if ops < 2:
        raise ValueError(f"FARMS needs at least 2 windows per dimension, got ops={ops}")
    if not 0 < window <= size:
        raise ValueError(f"FARMS window {window} does not fit a dimension of {size}")
    step = max(1, (size - window) // (ops - 1))
    count = min(ops, max(1, (size - window) // step + 1))
    return [min(i * step, size - window) for i in range(count)]


def linear_windows(
    W: NDArray[Any], max_window: int = MAX_WINDOW, ops: int = OPS
) -> Iterator[NDArray[Any]]:
    """The w × w windows of a 2-D matrix, row starts outer, column starts inner."""
    rows, cols = W.shape
    w = min(max_window, rows, cols)
    for r in window_starts(rows, w, ops):
        for c in window_starts(cols, w, ops):
            yield W[r : r + w, c : c + w]


def squared_singular_values(A: NDArray[Any]) -> FloatArray:
    """σ² of a matrix: eigenvalues of the smaller float64 Gram matrix, clipped at 0."""
    A64 = np.asarray(A, dtype=np.float64)
    G = A64.T @ A64 if A64.shape[0] >= A64.shape[1] else A64 @ A64.T
    return np.clip(np.linalg.eigvalsh(G), 0.0, None)


def linear_esd(W: NDArray[Any], max_window: int = MAX_WINDOW, ops: int = OPS) -> FloatArray:
    """Pooled, sorted squared singular values of every window of ``W``."""
    parts = [squared_singular_values(win) for win in linear_windows(W, max_window, ops)]
    return np.sort(np.concatenate(parts))


def conv_block_esds(slices: NDArray[Any]) -> list[FloatArray]:
    """Per row block, the sorted squared singular values pooled over the kernel slices.

    ``slices`` is (S, a, b); each slice is transposed to N ≥ M first.
    """
    mats = [s if s.shape[0] >= s.shape[1] else s.T for s in slices]
    N, M = mats[0].shape
    return [
        np.sort(np.concatenate([squared_singular_values(m[i * M : (i + 1) * M, :M]) for m in mats]))
        for i in range(N // M)
    ]


def farms_alpha(
    slices: NDArray[Any],
    *,
    fit: Fit = powerlaw.fit_power_law,
    thresh: float | None = None,
    eig_scale: float = 1.0,
    max_window: int = MAX_WINDOW,
    ops: int = OPS,
) -> FarmsFit:
    """FARMS alpha of one analysed matrix (see the module docstring).

    Args:
        slices: (S, rows, cols) as stored; S = 1 is a linear layer, S > 1 the kernel
            slices of a convolution. A 2-D array is one linear layer.
        fit: tail fit, (eigenvalues, zero threshold) -> :class:`PowerLawFit`.
        thresh: eigenvalues at or below it are zero for the fit; ``None`` (default):
            numerical zeros only, RELATIVE_ZERO·λ_max of each pooled ESD.
        eig_scale: factor applied to every eigenvalue (the conv normalisation).
        max_window: largest window side (linear layers).
        ops: windows per dimension (linear layers).

    Returns:
        The :class:`FarmsFit`.

    Raises:
        ValueError: bad window options or array shape. A pooled ESD with fewer than 2
        nonzero eigenvalues is left out (alpha is NaN if every one is).
    """
    arr = np.asarray(slices)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or min(arr.shape) < 1:
        raise ValueError(f"FARMS needs a (slices, rows, cols) array, got shape {arr.shape}")
    if arr.shape[0] == 1:
        evals = [linear_esd(arr[0], max_window, ops) * eig_scale]
        w = min(max_window, *arr.shape[1:])
        n_windows = evals[0].size // w
        window = (w, w)
    else:
        evals = [e * eig_scale for e in conv_block_esds(arr)]
        M = min(arr.shape[1:])
        n_windows = len(evals)
        window = (M, M)
    cuts = [RELATIVE_ZERO * e[-1] if thresh is None else thresh for e in evals]
    # an all-zero block (a pruned region) has no tail: it is left out of the mean
    usable = [(e, c) for e, c in zip(evals, cuts, strict=True) if np.count_nonzero(e > c) >= 2]
    fits = tuple(fit(e, c) for e, c in usable)
    alpha = float(np.mean([f.alpha for f in fits])) if fits else float("nan")
    return FarmsFit(alpha, fits, n_windows, window, sum(e.size for e in evals))
