"""Stochastic Lanczos quadrature (SLQ): an eigenvalue density from a few Lanczos runs.

For a symmetric M×M matrix G and a unit probe vector v, m Lanczos steps give the
tridiagonal Tₘ; with Tₘ = S diag(θ) Sᵀ the Gauss quadrature rule

    vᵀ f(G) v ≈ Σₖ τₖ f(θₖ),   τₖ = S₀ₖ²   (Golub & Meurant 1994; Golub & Welsch 1969)

is exact for polynomials of degree ≤ 2m − 1. Over random probes (E[vᵀ f(G) v] =
tr f(G)/M; here a random orthonormal block of p probes run as one block Lanczos), the
nodes θ with weights τ estimate the empirical spectral distribution
μ = (1/M) Σᵢ δ(λᵢ) (Lin, Saad & Yang 2016, SIAM Review 58(1), "Approximating spectral
densities of large matrices"; Ubaru, Chen & Saad 2017, SIAM J. Matrix Anal. Appl. 38(4),
arXiv 1606.00942, for the error bounds).

Ritz pairs whose Lanczos residual |βₘ Sₘₖ| is small are eigenpairs of G to that
accuracy (Parlett 1998, *The Symmetric Eigenvalue Problem*, §13.2): the separated
outliers at the top of a spectrum converge in a few dozen steps, the crowded bulk does
not. This module holds the pure parts: quadrature from the Lanczos coefficients,
convergence, and the conversion of a quadrature into a sorted pseudo-spectrum.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class Quadrature:
    """Block Gauss quadrature of one block Lanczos run.

    Attributes:
        nodes: Ritz values θ (eigenvalues of the block tridiagonal T), ascending.
        weights: ‖first block row of each eigenvector of T‖² / p; they sum to 1.
        residuals: ‖Bₛ · (last block row of each eigenvector)‖ = ‖G y − θ y‖ of each Ritz
            pair (exact with a fully reorthogonalised basis).
        vectors: eigenvectors of T (columns): coordinates of the Ritz vectors in the basis.
    """

    nodes: FloatArray
    weights: FloatArray
    residuals: FloatArray
    vectors: FloatArray

    def converged(self, rtol: float, above: float) -> NDArray[np.bool_]:
        """Nodes that are eigenvalues to ``rtol`` (residual ≤ rtol·θ) and lie above ``above``."""
        return np.asarray(
            (self.residuals <= rtol * np.abs(self.nodes)) & (self.nodes > above), dtype=bool
        )


def quadrature(diag: FloatArray, off: FloatArray) -> Quadrature:
    """Block Gauss quadrature from block Lanczos coefficients (Golub & Meurant 2010, ch. 7).

    With an orthonormal start block V₀ (M×p), s steps give Aⱼ = VⱼᵀGVⱼ and the QR
    factors Bⱼ of the next residual block (R = Vⱼ₊₁Bⱼ). T is block tridiagonal with
    diagonal Aⱼ and sub-diagonal Bⱼ (j < s−1); with T = S diag(θ) Sᵀ,

        tr(V₀ᵀ f(G) V₀)/p ≈ Σₖ f(θₖ) ‖S[:p, k]‖²/p,

    exact for polynomials of degree ≤ 2s − 1; for a random orthonormal V₀ its mean is
    tr f(G)/M. B_{s−1} gives the residuals of the Ritz pairs.

    Args:
        diag: (s, p, p) symmetric blocks Aⱼ.
        off: (s, p, p) blocks Bⱼ (upper triangular from QR); the last one is the residual.
    """
    diag = np.asarray(diag, dtype=np.float64)
    off = np.asarray(off, dtype=np.float64)
    s, p, _ = diag.shape
    T = np.zeros((s * p, s * p))
    for j in range(s):
        T[j * p : (j + 1) * p, j * p : (j + 1) * p] = 0.5 * (diag[j] + diag[j].T)
        if j + 1 < s:
            T[(j + 1) * p : (j + 2) * p, j * p : (j + 1) * p] = off[j]
            T[j * p : (j + 1) * p, (j + 1) * p : (j + 2) * p] = off[j].T
    theta, S = np.linalg.eigh(T)
    weights = np.sum(S[:p] ** 2, axis=0)
    residuals = np.linalg.norm(off[-1] @ S[-p:], axis=0)
    return Quadrature(theta, weights / weights.sum(), residuals, S)


def pseudo_spectrum(nodes: FloatArray, weights: FloatArray, count: int) -> FloatArray:
    """``count`` sorted values whose empirical distribution matches a discrete measure.

    Each node xₖ is placed at the middle of its own mass: the CDF F is the piecewise
    linear interpolant through (xₖ, Σ_{i<k} wᵢ + wₖ/2), constant beyond the extreme
    nodes (Gauss nodes lie inside the spectrum, so values never leave [x_min, x_max]).
    The values are the quantiles F⁻¹((i − ½)/count), i = 1..count: the sorted sample
    an ESD of ``count`` eigenvalues would give. Clipped at 0 (a Gram matrix is PSD).
    """
    order = np.argsort(nodes, kind="stable")
    x = np.asarray(nodes, dtype=np.float64)[order]
    w = np.asarray(weights, dtype=np.float64)[order]
    w = w / w.sum()
    cdf = np.cumsum(w) - 0.5 * w
    if x.size > 1 and cdf[1] > cdf[0]:
        # Below the lowest node the CDF continues with the slope of the first two nodes
        # down to F = 0 (clipped at λ = 0), instead of piling that mass onto x₀.
        slope = (x[1] - x[0]) / (cdf[1] - cdf[0])
        x = np.concatenate(([max(x[0] - slope * cdf[0], 0.0)], x))
        cdf = np.concatenate(([0.0], cdf))
    levels = (np.arange(count) + 0.5) / count
    return np.clip(np.interp(levels, cdf, x), 0.0, None)
