"""The ERG / detX (trace-log) condition of a layer spectrum.

Source: Martin & Hinrichs (2025), "SETOL: A Semi-Empirical Theory of (Deep)
Learning", arXiv 2507.17912; WeightWatcher 0.7.7 ``RMT_Util.detX_constraint`` and
``WeightWatcher.apply_detX`` for conventions.

Rescale the eigenvalues so their mean is 1 (Σλ = M). Walking down from the largest,
the ERG tail is the smallest top set whose product drops below 1, i.e. the largest
k with Σ_{j≥k} ln λ̃_j < 0:

    detX_num = M − k      (size of the tail)
    detX_val = λ_k        (its smallest eigenvalue, original scale)
    ERG_gap  = detX_num − num_pl_spikes

Ideal learning has α → 2 and ERG_gap → 0⁺; α < 2 with ERG_gap < 0 is the over-fit
signature. If no tail satisfies the condition the whole spectrum is the tail and
k = 1 (WeightWatcher's loop bound); fewer than two eigenvalues, or a constant
spectrum, give detX_num = 0 and k = 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class DetX:
    """Result of :func:`detx`."""

    detX_num: int
    detX_val: float
    detX_val_unrescaled: float


def detx(evals: FloatArray) -> DetX:
    """Find the ERG tail of ``evals`` (see the module docstring)."""
    ev = np.sort(np.asarray(evals, dtype=np.float64))
    M = ev.size
    if M < 2 or not ev[0] < ev[-1]:
        return DetX(0, float(ev[0]) if M else float("nan"), float("nan"))
    scale = M / float(np.sum(ev))
    rescaled = ev * scale
    with np.errstate(divide="ignore"):
        tail_log = np.cumsum(np.log(rescaled[::-1]))[::-1]
    # Candidates k = M-1 … 1 from the top; the first (largest k) with product < 1 wins.
    below = np.nonzero(tail_log[1:] < 0.0)[0]
    if below.size:
        k = int(below[-1]) + 1
        num = M - k
    else:
        k, num = 1, M
    return DetX(detX_num=num, detX_val=float(ev[k]), detX_val_unrescaled=float(rescaled[k]))
