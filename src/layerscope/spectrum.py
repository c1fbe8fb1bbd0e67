"""Matrices -> eigenvalues: the empirical spectral density (ESD) of WᵀW.

For an N×M matrix W (N ≥ M) the ESD is the M eigenvalues λᵢ = σᵢ² of the M×M Gram
matrix X = WᵀW (docs/science.md §1). We form X and call a symmetric eigensolver
(``eigvalsh``) instead of taking singular values of W: the same numbers, measured
3.5–5.6x faster than WeightWatcher's float64 SVD on Llama-shaped matrices, and the
Gram of a tall matrix (a 128k-row embedding) is only M×M. On CPU X is formed by the
BLAS symmetric rank-k update (``syrk``, one triangle: N·M² flops instead of the
2·N·M² of ``W.mT @ W``; see :mod:`layerscope._mkl`).

Precision policy (``precision``):

* ``"float64"``: Gram accumulated and solved in float64; eigenvalues down to
  ~1e-12·λ_max are meaningful, so rank loss, the 1e-5 zero threshold and the ERG tail
  agree with an SVD of W.
* ``"float32"``: Gram and solver in float32 (≈2x faster on CPU, far faster on GPU).
  The top of the spectrum is exact to ~1e-6 relative, but eigenvalues below
  ~1e-6·λ_max are noise: squaring W in float32 loses what an SVD would keep.
* ``"auto"`` (the default of :func:`layerscope.scan`): float32 where it is
  *verified* to be accurate, float64 elsewhere. A float32 attempt is made only for
  matrices with aspect ratio Q = N/M ≥ 2, whose Marchenko-Pastur lower edge
  σ²(1 − 1/√Q)² keeps the smallest eigenvalue away from zero; it is kept only if every
  matrix of the batch has λ_min ≥ 1e-4·λ_max, else the batch is recomputed in float64.
  Measured (real MiniLM, Llama-shaped random and trained-like matrices), the float32
  error of every eigenvalue is ≲ eps₃₂·λ_max/λ_min, so the check bounds it by ~1e-3
  relative, two orders below the statistical uncertainty of any fit made from the
  spectrum. Square matrices and rank-deficient updates (λ_min ≈ 0) run in float64.

Rows are accumulated in blocks, so peak memory is the stored tensor plus one block plus
M×M, never a float64 copy of W.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal

import numpy as np
import torch
from numpy.typing import NDArray

from layerscope import _mkl

Precision = Literal["float64", "float32", "auto"]

# "auto" tries float32 only for matrices at least this tall (N/M) ...
AUTO_MIN_ASPECT = 2.0
# ... and keeps it only when λ_min/λ_max of every matrix is at least this.
AUTO_MIN_RATIO = 1e-4

# Rows of W converted to the accumulation dtype at a time.
_ROW_BLOCK_ELEMENTS = 1 << 24


class NonFiniteError(ValueError):
    """The matrix holds NaN or Inf entries."""


def resolve_device(device: str) -> torch.device:
    """``"auto"`` -> CUDA when available, else CPU; ``"cuda"`` without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device='cuda' was requested but no CUDA GPU is available")
    if device != "cpu" and not device.startswith("cuda"):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'auto', got {device!r}")
    return torch.device(device)


def gram(W: torch.Tensor, acc: torch.dtype = torch.float64) -> torch.Tensor:
    """The upper triangle of X = WᵀW for a batch W of shape (B, N, M), N ≥ M.

    Returns a (B, M, M) tensor in the accumulation dtype ``acc`` on W's device whose
    upper triangle (diagonal included) holds X; the strictly lower triangle is
    unspecified (the symmetric eigensolver reads one triangle). Rows are accumulated
    in blocks; on CPU each block is a BLAS ``syrk`` (one triangle, half the flops of a
    general product, see :mod:`layerscope._mkl`), elsewhere a batched ``baddbmm``.
    """
    B, N, M = W.shape
    X = torch.zeros((B, M, M), dtype=acc, device=W.device)
    if W.device.type == "cpu":
        rows = max(1, _ROW_BLOCK_ELEMENTS // max(1, M))
        for b in range(B):
            for start in range(0, N, rows):
                block = W[b, start : start + rows].to(acc)
                if not _mkl.syrk_upper(X[b], block, beta=1.0):
                    X[b].addmm_(block.mT, block)
        return X
    rows = max(1, _ROW_BLOCK_ELEMENTS // max(1, B * M))
    for start in range(0, N, rows):
        block = W[:, start : start + rows].to(acc)
        X.baddbmm_(block.mT, block)
    return X


def eigenvalues(
    W: torch.Tensor,
    precision: Precision = "float64",
    device: torch.device | None = None,
) -> NDArray[np.float64]:
    """Eigenvalues of WᵢᵀWᵢ for every matrix of a batch, pooled and sorted ascending.

    Args:
        W: (B, N, M) or (N, M) tensor; each matrix is transposed to N ≥ M if needed.
        precision: ``"float64"``, ``"float32"`` or ``"auto"`` (see the module docstring).
        device: where to compute; defaults to W's device.

    Returns:
        B·M eigenvalues (float64, clipped at 0: tiny negative values are round-off).

    Raises:
        NonFiniteError: W has NaN or Inf entries (or overflows the accumulation dtype).
    """
    if W.ndim == 2:
        W = W.unsqueeze(0)
    if W.shape[1] < W.shape[2]:
        W = W.mT
    if device is not None and W.device != device:
        W = W.to(device)
    lam: torch.Tensor | None = None
    with torch.no_grad():
        if precision == "float32" or (
            precision == "auto" and W.shape[1] >= AUTO_MIN_ASPECT * W.shape[2]
        ):
            lam = _solve(W, torch.float32)
            if precision == "auto" and not _resolved_in_float32(lam):
                lam = None
        if lam is None:
            lam = _solve(W, torch.float64)
    ev = lam.to(torch.float64).reshape(-1).cpu().numpy()
    return np.sort(np.clip(ev, 0.0, None))


def _solve(W: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Ascending eigenvalues (B, M) of the Gram of W, accumulated and solved in ``dtype``."""
    X = gram(W, dtype)
    # diag(WᵀW) holds the squared column norms: NaN/Inf anywhere in W shows up here,
    # so the check costs O(M) instead of another pass over W.
    if not bool(torch.isfinite(X.diagonal(dim1=-2, dim2=-1)).all()):
        raise NonFiniteError("non-finite values (NaN/Inf)")
    with _lapack_single_thread(X.device):
        lam: torch.Tensor = torch.linalg.eigvalsh(X, UPLO="U")
    return lam


@contextmanager
def _lapack_single_thread(device: torch.device) -> Iterator[None]:
    """Run MKL's LAPACK on one thread, for the calling thread only.

    The symmetric eigensolver is dominated by a memory-bound tridiagonal reduction
    that gains ≤10% from a second core, but MKL's OpenMP team synchronises once per
    column: when another process holds a core (training, a test run) the team spins
    and a 1024² float64 eigvalsh took 8–19 s instead of 0.17 s (measured, 2 cores).
    One thread is never slower than that; the setting is thread-local, so concurrent
    work (the user's training loop) keeps its threads.
    """
    set_local = _mkl.local_threads() if device.type == "cpu" else None
    if set_local is None:
        yield
        return
    previous = set_local(1)
    try:
        yield
    finally:
        set_local(previous)


def _resolved_in_float32(lam: torch.Tensor) -> bool:
    """Whether float32 resolved every eigenvalue: λ_min ≥ AUTO_MIN_RATIO·λ_max per matrix."""
    return bool((lam[:, 0] >= AUTO_MIN_RATIO * lam[:, -1]).all())


def shuffle_entries(W: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Randomly permute all entries of each matrix of a (B, N, M) batch (seeded).

    The element-shuffled matrix keeps W's entry distribution but destroys its
    correlations; eigenvalues of the shuffle beyond the MP edge are correlation
    traps (Prakash & Martin 2025; WeightWatcher ``random_eigenvalues``).
    """
    B = W.shape[0]
    flat = W.reshape(B, -1)
    n = flat.shape[1]
    # int32 indices: randperm and the indexed read are ~20% faster than with int64.
    index = torch.int32 if n < 2**31 else torch.int64
    shuffled = [
        flat[b].index_select(0, torch.randperm(n, generator=generator, dtype=index).to(W.device))
        for b in range(B)
    ]
    return torch.stack(shuffled).reshape(W.shape)


def top_eigenvalue(W: torch.Tensor, block: int = 4, iters: int = 60, rtol: float = 1e-8) -> float:
    """λ_max of WᵀW (= ‖W‖₂²) by block power iteration with Rayleigh-Ritz.

    O(iters·N·M·block) instead of a full solve; the block keeps convergence fast when
    the top eigenvalues are close. Matrix products in float32 (the Ritz value is
    within ~0.1% even on random-like spectra, whose top is crowded; ample for a norm
    ratio). Deterministic (fixed start).
    Used where only the spectral norm is needed (a LoRA base matrix).
    """
    W32 = W.reshape(-1, W.shape[-1]).to(torch.float32)
    k = min(block, W32.shape[1])
    gen = torch.Generator(device=W32.device).manual_seed(0)
    start = torch.randn(W32.shape[1], k, dtype=torch.float32, generator=gen, device=W32.device)
    V, _ = torch.linalg.qr(start)
    lam = 0.0
    with torch.no_grad():
        for _ in range(iters):
            Z = W32 @ V
            # Ritz value: the largest eigenvalue of WᵀW restricted to span(V).
            new = float(torch.linalg.eigvalsh((Z.mT @ Z).double())[-1])
            if abs(new - lam) <= rtol * max(new, 1e-300):
                return new
            lam = new
            V, _ = torch.linalg.qr(W32.mT @ Z)
    return lam


def eigenvectors(
    W: torch.Tensor, device: torch.device | None = None
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Eigenvalues and unit eigenvectors of WᵢᵀWᵢ for every matrix of a batch, in float64.

    Args:
        W: (B, N, M) or (N, M) tensor; each matrix is transposed to N > M if needed.
            A square matrix is transposed too, so its vectors span the row space of
            the stored W (the output side of a layer), as WeightWatcher's
            ``apply_analyze_eigenvectors`` takes W·Wᵀ when rows ≤ columns.
        device: where to compute; defaults to W's device.

    Returns:
        (evals, V): the B·M eigenvalues and an M × B·M array whose column j is the
        eigenvector of evals[j] (matrices concatenated in batch order).
    """
    if W.ndim == 2:
        W = W.unsqueeze(0)
    if W.shape[1] <= W.shape[2]:
        W = W.mT
    if device is not None and W.device != device:
        W = W.to(device)
    with torch.no_grad(), _lapack_single_thread(W.device):
        lam, vecs = torch.linalg.eigh(gram(W, torch.float64), UPLO="U")
    evals = lam.reshape(-1).cpu().numpy()
    V = vecs.permute(1, 0, 2).reshape(W.shape[2], -1).cpu().numpy()
    return np.clip(evals, 0.0, None), V
