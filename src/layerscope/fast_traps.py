"""The shuffled matrix's spectrum without a full eigensolve (``traps="fast"``).

Correlation traps (Prakash & Martin 2025, arXiv 2506.04434) are eigenvalues of the
element-shuffled matrix Wₛ above the Tracy-Widom edge λ⁺ + √TW of a Marchenko-Pastur
fit to its ESD; ``rand_distance`` compares the sorted ESDs of W and Wₛ. The exact path
(:func:`layerscope.spectrum.eigenvalues`) solves the M×M Gram G = WₛᵀWₛ completely.
This path needs only:

1. **The outliers**, by block Lanczos on G: separated eigenvalues converge in a few dozen
   steps (residual ≤ ``RITZ_RTOL``·θ, :mod:`layerscope.functional.slq`), checked
   explicitly (‖Gu − θu‖).
2. **The bulk**, by stochastic Lanczos quadrature with the same run: the block Gauss
   nodes minus the converged outliers give M − k pseudo-eigenvalues
   (quantiles), rescaled so that the whole pseudo-spectrum sums to tr G exactly.
3. **A certified trap count.** With t = λ⁺ + √TW from the MP fit of the pseudo-spectrum
   and U the k refined Ritz vectors whose values θ exceed t:
   * θᵢ ≤ λᵢ(G) (Cauchy interlacing), so G has at least k eigenvalues above t;
   * if tI − G + c·UUᵀ is positive definite (its Cholesky factorisation exists), then
     λ₁(G − cUUᵀ) < t and, by Weyl's inequality for a rank-k update, λₖ₊₁(G) < t.
   Together: exactly k eigenvalues of G exceed t, at the cost of one Cholesky (M³/3
   flops) instead of a symmetric eigensolve. When the certificate fails (an
   eigenvalue above t was not found, or a bulk quantile crossed t) the spectrum is
   solved exactly, so the count is never a guess.

The shuffle draws one uniform random permutation per matrix *size* (seeded by the scan
seed and the size) and rotates it by a per-matrix offset: k ↦ P((k + off) mod n) is a
uniform random permutation for each matrix, and the costly draw (``randperm``) is paid
once per shape instead of once per matrix.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
import torch
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits  # type: ignore[import-untyped]

from layerscope import spectrum
from layerscope.functional import rmt, slq

FloatArray = NDArray[np.float64]

# Smallest matrix side the fast path handles: one thread, the exact eigensolve is cheaper
# at M = 1024 and costs the same at 2048 (benchmarks/traps_floor.py; 25-35 % saved at 4096).
MIN_SIZE = 2048
# Block size (SLQ probes) and block Lanczos steps; the Krylov space (≤ 384) is capped at M/2.
BLOCK = 8
STEPS = 48
# A Ritz value is an eigenvalue (an outlier) when its residual is ≤ this·θ.
RITZ_RTOL = 1e-4


@dataclass(frozen=True)
class FastSpectrum:
    """The estimated shuffled spectrum of one matrix.

    Attributes:
        evals: M sorted values: exact outliers, SLQ quantiles below them (or the exact
            spectrum when ``certified`` is False).
        threshold: t = λ⁺ + √TW of the MP fit to ``evals`` (same units as ``evals``).
        num_above: eigenvalues of G above t, certified exact.
        certified: False when the certificate failed and ``evals`` is the exact spectrum.
    """

    evals: FloatArray
    threshold: float
    num_above: int
    certified: bool


class SharedPermutations:
    """One seeded random permutation per matrix size, rotated per matrix (thread-safe)."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._perms: dict[int, torch.Tensor] = {}
        self._lock = threading.Lock()

    def _perm(self, n: int) -> torch.Tensor:
        with self._lock:
            if n not in self._perms:
                state = np.random.SeedSequence([self.seed, n]).generate_state(1)[0]
                gen = torch.Generator().manual_seed(int(state))
                dtype = torch.int32 if n < 2**31 else torch.int64
                self._perms[n] = torch.randperm(n, generator=gen, dtype=dtype)
            return self._perms[n]

    def shuffle(self, W: torch.Tensor, matrix_seed: int) -> torch.Tensor:
        """W's entries permuted by k ↦ P((k + off) mod n), off drawn from ``matrix_seed``."""
        flat = W.reshape(-1)
        n = flat.numel()
        perm = self._perm(n).to(W.device)
        off = matrix_seed % n
        out = torch.empty_like(flat)
        torch.index_select(flat, 0, perm[off:], out=out[: n - off])
        torch.index_select(flat, 0, perm[:off], out=out[n - off :])
        return out.reshape(W.shape)


# Tile size of the in-place mirror of the Gram's upper triangle.
_MIRROR_TILE = 512


def symmetric_gram(W: torch.Tensor) -> torch.Tensor:
    """G = WᵀW in float32, both triangles filled, for a (N, M) matrix with N ≥ M.

    ``spectrum.gram`` (BLAS syrk) fills the upper triangle; it is mirrored tile by tile
    in place (a whole-matrix ``triu`` + transpose + add took 3 extra passes over G).
    """
    G = spectrum.gram(W.unsqueeze(0), torch.float32)[0]
    M, t = G.shape[0], _MIRROR_TILE
    for i in range(0, M, t):
        diag = G[i : i + t, i : i + t]
        diag.copy_(diag.triu() + diag.triu(1).mT)
        for j in range(i + t, M, t):
            G[j : j + t, i : i + t] = G[i : i + t, j : j + t].mT
    return G


def block_lanczos(
    G: torch.Tensor, block: int, steps: int, gen: torch.Generator
) -> tuple[FloatArray, FloatArray, torch.Tensor]:
    """Block Lanczos on G from a random orthonormal block, fully reorthogonalised.

    Returns the diagonal blocks Aⱼ (steps, p, p), the QR blocks Bⱼ (steps, p, p; the
    last is the final residual) and the basis as rows (steps·p, M). One product with G
    per step serves all p probes (a GEMM instead of p matrix-vector products; the
    row-major form Vᵀ·G was measured 1.9x faster than G·V for p = 8), and the block
    Krylov space of dimension steps·p resolves clustered outliers that single-vector
    runs miss. Reorthogonalising twice against the whole basis (M·(steps·p)² flops, small
    next to the steps·p·M² of the products) keeps converged outliers from reappearing as
    spurious copies (Parlett 1998, §13.8).
    """
    M, p = G.shape[0], block
    rows = torch.zeros((steps * p, M), dtype=G.dtype, device=G.device)
    start = torch.randn((M, p), generator=gen, dtype=G.dtype).to(G.device)
    rows[:p] = torch.linalg.qr(start).Q.mT
    diag = np.zeros((steps, p, p))
    off = np.zeros((steps, p, p))
    for j in range(steps):
        V = rows[j * p : (j + 1) * p]
        Z = V @ G  # = (G V)ᵀ, G symmetric
        diag[j] = (Z @ V.mT).double().cpu().numpy()
        done = rows[: (j + 1) * p]
        for _ in range(2):
            Z -= (Z @ done.mT) @ done
        Qj, Bj = torch.linalg.qr(Z.mT)
        off[j] = Bj.double().cpu().numpy()
        if j + 1 < steps:
            rows[(j + 1) * p : (j + 2) * p] = Qj.mT
    return diag, off, rows


def _outliers(
    G: torch.Tensor, quad: slq.Quadrature, basis: torch.Tensor, mask: NDArray[np.bool_]
) -> tuple[FloatArray, torch.Tensor, NDArray[np.bool_]]:
    """The Ritz pairs of ``mask`` whose explicit residual ‖Gu − θu‖ ≤ RITZ_RTOL·θ.

    Returns their values, their vectors (columns) and the nodes kept, a subset of ``mask``.
    """
    theta = quad.nodes[mask]
    U = basis.mT @ torch.from_numpy(quad.vectors[:, mask]).to(basis)
    th = torch.from_numpy(theta).to(U)
    resid = torch.linalg.vector_norm(G @ U - U * th, dim=0).double().cpu().numpy()
    keep = resid <= RITZ_RTOL * np.abs(theta)
    kept = mask.copy()
    kept[mask] = keep
    return theta[keep], U[:, torch.from_numpy(keep).to(U.device)], kept


def _certified(G: torch.Tensor, t: float, U: torch.Tensor, top: float) -> bool:
    """Whether tI − G + c·UUᵀ is positive definite (c = the top eigenvalue)."""
    A = -G
    A.diagonal().add_(t)
    A.addmm_(U * top, U.mT)
    with spectrum._lapack_single_thread(G.device):
        _, info = torch.linalg.cholesky_ex(A, upper=True)
    return int(info) == 0


def fast_spectrum(Ws: torch.Tensor, gen: torch.Generator) -> FastSpectrum:
    """Estimated ESD of WₛᵀWₛ and its certified count above the MP Tracy-Widom edge.

    Args:
        Ws: the shuffled (N, M) matrix, any float dtype (transposed if N < M).
        gen: seeds the SLQ probe vectors.
    """
    if Ws.shape[0] < Ws.shape[1]:
        Ws = Ws.mT
    N, M = Ws.shape
    with torch.no_grad():
        G = symmetric_gram(Ws)
        trace = float(G.diagonal().double().sum())
        steps = max(1, min(STEPS, M // (2 * BLOCK)))
        diag, off, basis = block_lanczos(G, min(BLOCK, M // 2), steps, gen)
        # One BLAS thread: the (steps·p)² eigenproblem is small, and a multi-threaded
        # OpenBLAS spin-waits for a busy core (measured 0.015 s vs 10 s at 384², 2 cores).
        with threadpool_limits(limits=1):
            quad = slq.quadrature(diag, off)
        outliers, U, mask = _outliers(G, quad, basis, quad.converged(RITZ_RTOL, above=trace / M))
        # The quadrature without the outliers' nodes, renormalised: the bulk's distribution.
        bulk = slq.pseudo_spectrum(quad.nodes[~mask], quad.weights[~mask], M - outliers.size)
        bulk *= max(trace - float(outliers.sum()), 0.0) / max(float(bulk.sum()), 1e-300)
        evals = np.sort(np.concatenate((bulk, outliers)))
        t = rmt.fit_mp(evals, N / M, M).threshold
        above = outliers > t
        ok = int(np.count_nonzero(evals > t)) == int(above.sum()) and _certified(
            G, t, U[:, torch.from_numpy(above).to(U.device)], float(evals[-1])
        )
        if ok:
            return FastSpectrum(evals, t, int(above.sum()), True)
        with spectrum._lapack_single_thread(G.device):
            exact = torch.linalg.eigvalsh(G).double().clamp_min(0).cpu().numpy()
    t = rmt.fit_mp(exact, N / M, M).threshold
    return FastSpectrum(np.sort(exact), t, int(np.count_nonzero(exact > t)), False)
