"""Closed-form learning coefficients of deep linear networks (the LLC's deeper ground truth).

f(x) = W_L ⋯ W_2 W_1 x with W_i ∈ R^{H_{i+1}×H_i} (no biases), a realizable true map of
rank r and the unit-variance Gaussian negative log-likelihood as loss. Aoyagi (2024),
"Consideration on the learning efficiency of multiple-layered neural networks with linear
units", Neural Networks 172:106132 (doi:10.1016/j.neunet.2024.106132), main theorem; also
stated in Furman & Lau (arXiv 2402.03698), whose deep-linear-network experiments use it.
For two layers it reduces to reduced-rank regression (Aoyagi & Watanabe 2005; checked
against :func:`layerscope.probes._rrr.rrr_learning_coefficient` in the tests).
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def _critical_subset(m: Sequence[int]) -> list[int]:
    """The unique S ⊆ {M_1, …, M_{L+1}}, |S| = ℓ + 1 ≥ 2, of Aoyagi's theorem.

    Conditions: max S < min Sᶜ, ΣS ≥ ℓ·max S and ΣS < ℓ·min Sᶜ (vacuous when Sᶜ = ∅).
    The first one makes S a set of the smallest M_i, so only prefixes of the sorted
    list are candidates.
    """
    ordered = sorted(m)
    for size in range(2, len(ordered) + 1):
        subset, rest = ordered[:size], ordered[size:]
        ell = size - 1
        if rest and not max(subset) < min(rest):
            continue
        if sum(subset) >= ell * max(subset) and (not rest or sum(subset) < ell * min(rest)):
            return subset
    raise AssertionError(f"no critical subset for {list(m)}")  # the theorem says it exists


def dln_learning_coefficient(widths: Sequence[int], r: int) -> float:
    """λ of a deep linear network with layer widths H_1 (input), …, H_{L+1} (output).

    With M_i = H_i − r, S and ℓ from :func:`_critical_subset`, M̄ = ΣS/ℓ,
    M = ⌈M̄⌉ and a = ΣS − (M − 1)ℓ:

        λ = [r(H_1 + H_{L+1}) − r²]/2 + a(ℓ − a)/(4ℓ) − ℓ(ℓ − 1)M̄²/4 + ½·Σ_{i<j∈S} M_i M_j

    (Aoyagi 2024, main theorem).

    Raises:
        ValueError: fewer than two widths, a width < 1, or r outside 0..min(widths).
    """
    if len(widths) < 2 or min(widths) < 1:
        raise ValueError(f"widths must be >= 2 sizes, each >= 1, got {list(widths)}")
    if not 0 <= r <= min(widths):
        raise ValueError(f"r must be in 0..min(widths)={min(widths)}, got {r}")
    subset = _critical_subset([h - r for h in widths])
    ell, total = len(subset) - 1, sum(subset)
    a = total - (math.ceil(total / ell) - 1) * ell
    pairs = sum(subset[i] * subset[j] for i in range(len(subset)) for j in range(i))
    return (
        (r * (widths[0] + widths[-1]) - r * r) / 2
        + a * (ell - a) / (4 * ell)
        - ell * (ell - 1) * (total / ell) ** 2 / 4
        + pairs / 2
    )
