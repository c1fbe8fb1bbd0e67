"""Closed-form learning coefficients of reduced-rank regression (the LLC's ground truth).

f(x) = B·A·x with A ∈ R^{H×M}, B ∈ R^{N×H}, a realizable true map of rank r ≤ H and the
unit-variance Gaussian negative log-likelihood as loss (Aoyagi & Watanabe 2005, Neural
Networks 18(7):924–933; docs/science.md §8).
"""

from __future__ import annotations


def rrr_learning_coefficient(M: int, H: int, N: int, r: int) -> float:
    """λ of a two-layer linear network M → H → N at a true parameter of rank r.

    * case 2, M + H < N + r: λ = (HM − Hr + Nr)/2
    * case 3, N + H < M + r: λ = (HN − Hr + Mr)/2
    * case 4, M + N < H + r: λ = MN/2
    * case 1, otherwise: λ = [2(H + r)(M + N) − (M − N)² − (H + r)² + (1 if M+H+N+r odd)]/8

    Raises:
        ValueError: a non-positive size, or r outside 0..min(M, H, N).
    """
    if min(M, H, N) < 1:
        raise ValueError(f"sizes must be >= 1, got M={M}, H={H}, N={N}")
    if not 0 <= r <= min(M, H, N):
        raise ValueError(f"r must be in 0..min(M, H, N)={min(M, H, N)}, got {r}")
    if M + H < N + r:  # noqa: SIM300 (as in the paper)
        return (H * M - H * r + N * r) / 2
    if N + H < M + r:  # noqa: SIM300 (as in the paper)
        return (H * N - H * r + M * r) / 2
    if M + N < H + r:  # noqa: SIM300 (as in the paper)
        return M * N / 2
    odd = (M + H + N + r) % 2
    return (2 * (H + r) * (M + N) - (M - N) ** 2 - (H + r) ** 2 + odd) / 8
