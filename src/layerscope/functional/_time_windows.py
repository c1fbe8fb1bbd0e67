"""Windows on the training-step axis, for rules that must not depend on the scan cadence.

A rule stated in scans ("the median of the last 5 scans", "20 scans earlier") means a
different stretch of training at every cadence: 20 scans are 20,000 steps when a Monitor
scans every 1,000 steps and two decades of training with log-spaced checkpoints. The
windows here are factors of the step instead: "the scans at steps in [s/f, s]" and "the
last scan at a step ≤ s/g". Training dynamics (grokking, collapse) unfold on a roughly
logarithmic time scale (Power et al. 2022, arXiv 2201.02177; Prakash & Martin 2025,
arXiv 2506.04434), so a factor of the step is the same stretch of the run's story
whatever the cadence.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


def window_starts(steps: IntArray, factor: float, min_scans: int = 1) -> IntArray:
    """Per scan t, the first scan of its window: every scan at a step ≥ s_t/``factor``,
    and at least the last ``min_scans`` scans (t itself included)."""
    s = np.asarray(steps, dtype=np.float64)
    by_time = np.searchsorted(s, s / factor, side="left")
    by_count = np.arange(s.shape[0]) - (min_scans - 1)
    return np.asarray(np.maximum(np.minimum(by_time, by_count), 0), dtype=np.int64)


def window_median(values: FloatArray, starts: IntArray) -> FloatArray:
    """Median of the finite values of scans starts[t]..t, per scan t (NaN where none)."""
    v = np.asarray(values, dtype=np.float64)
    out = np.full(v.shape[0], np.nan)
    for t in range(v.shape[0]):
        part = v[int(starts[t]) : t + 1]
        part = part[np.isfinite(part)]
        if part.size:
            out[t] = float(np.median(part))
    return out


def comparison_index(steps: IntArray, factor: float) -> IntArray:
    """Per scan t, the last scan at a step ≤ s_t/``factor`` (−1 where none; always < t
    for s_t > 0, and −1 at step 0)."""
    s = np.asarray(steps, dtype=np.float64)
    idx = np.searchsorted(s, s / factor, side="right") - 1
    idx[s <= 0] = -1
    return np.asarray(idx, dtype=np.int64)


__all__ = ["comparison_index", "window_median", "window_starts"]
