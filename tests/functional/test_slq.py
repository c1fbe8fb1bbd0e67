"""Block Gauss quadrature and pseudo-spectra (functional.slq) against closed forms.

References: the quadrature's moments Σ wₖ θₖʲ equal tr(V₀ᵀ Gʲ V₀)/p for j ≤ 2s − 1
(Golub & Meurant), computed here with plain numpy powers of G; a full Krylov space
reproduces numpy's eigenvalues; Ritz residuals equal ‖Gy − θy‖ computed explicitly.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from layerscope.fast_traps import block_lanczos
from layerscope.functional import slq
from reference._compare import assert_close


def _matrix(M: int, seed: int) -> np.ndarray:
    """A Wishart-like Gram with two planted outliers (float64)."""
    rng = np.random.default_rng(seed)
    W = rng.standard_normal((2 * M, M)) / np.sqrt(2 * M)
    W[:, 0] *= 4.0
    W[:, 1] *= 3.0
    return W.T @ W


def _lanczos(G: np.ndarray, block: int, steps: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    gen = torch.Generator().manual_seed(3)
    diag, off, rows = block_lanczos(torch.from_numpy(G), block, steps, gen)
    return diag, off, rows.numpy()


@pytest.mark.parametrize(("block", "steps"), [(1, 6), (4, 5), (8, 3)])
def test_quadrature_moments_are_exact(block: int, steps: int) -> None:
    G = _matrix(80, 0)
    diag, off, rows = _lanczos(G, block, steps)
    quad = slq.quadrature(diag, off)
    V0 = rows[:block].T
    assert_close(quad.weights.sum(), 1.0, rtol=1e-12, what="weights sum")
    for j in range(2 * steps):
        expected = np.trace(V0.T @ np.linalg.matrix_power(G, j) @ V0) / block
        ours = np.sum(quad.weights * quad.nodes**j)
        assert_close(ours, expected, rtol=1e-8, what=f"moment {j}")


def test_full_krylov_space_gives_the_spectrum_and_true_residuals() -> None:
    G = _matrix(48, 1)
    diag, off, rows = _lanczos(G, 8, 6)
    quad = slq.quadrature(diag, off)
    assert_close(quad.nodes, np.linalg.eigvalsh(G), rtol=1e-9, what="nodes")
    # Ritz pairs of a partial run: Lanczos residuals equal the explicit ‖Gy − θy‖.
    diag, off, rows = _lanczos(G, 4, 5)
    quad = slq.quadrature(diag, off)
    Y = rows.T @ quad.vectors
    explicit = np.linalg.norm(G @ Y - Y * quad.nodes, axis=0)
    assert_close(quad.residuals, explicit, atol=1e-9 * np.abs(quad.nodes).max(), what="resid")
    # The two planted outliers have converged (residual ≤ 1e-4·θ), the bulk has not;
    # a Ritz value with residual r is within r²/gap of its eigenvalue.
    top = quad.converged(1e-4, above=np.median(quad.nodes))
    assert top.sum() == 2
    assert_close(quad.nodes[top], np.linalg.eigvalsh(G)[-2:], rtol=1e-7, what="outliers")


def test_pseudo_spectrum_of_a_point_measure_is_its_atoms() -> None:
    values = np.sort(np.random.default_rng(2).gamma(2.0, size=300))
    ours = slq.pseudo_spectrum(values, np.full(values.size, 1 / values.size), values.size)
    assert_close(ours, values, rtol=1e-12, what="atoms")


def test_pseudo_spectrum_quantiles_of_a_uniform_measure() -> None:
    nodes = np.linspace(1.0, 3.0, 201)
    weights = np.ones_like(nodes)
    ours = slq.pseudo_spectrum(nodes, weights, 50)
    # CDF through (xₖ, (k + ½)/201): quantile q lies at 1 + 2·(q·201 − ½)/200.
    q = (np.arange(50) + 0.5) / 50
    assert_close(ours, 1.0 + 2.0 * (q * 201 - 0.5) / 200, rtol=1e-12, what="quantiles")
    assert np.all(np.diff(ours) > 0)
