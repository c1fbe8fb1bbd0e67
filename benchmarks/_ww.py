"""Running WeightWatcher 0.7.7 (the pinned anchor) quietly, deterministically and fast.

* Quiet: WeightWatcher prints at import and during fits ("SMALL N PL FIT") and logs
  warnings; stdout is swallowed and its logger raised to ERROR.
* Deterministic: its trap shuffle uses the global ``np.random``; we seed it (and
  restore the previous state afterwards).
* Fast, with identical results: its MP fit (``RMT_Util.resid_mp``) refits a scikit-learn
  ``KernelDensity`` on the same eigenvalues for every σ it tries (≈ 200 times per fit),
  which dominates its run time. ``cached_kde`` memoises scikit-learn's own
  ``score_samples`` output per (data, grid, kernel, bandwidth), so every value
  WeightWatcher sees is bit-identical to an uncached run.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
from collections.abc import Iterator
from types import ModuleType
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest


def import_ww() -> tuple[ModuleType, ModuleType, ModuleType]:
    """(weightwatcher, RMT_Util, WW_powerlaw), imported without the import-time prints."""
    with contextlib.redirect_stdout(io.StringIO()):
        ww = pytest.importorskip("weightwatcher")
        from weightwatcher import RMT_Util, WW_powerlaw
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    return ww, RMT_Util, WW_powerlaw


def _digest(a: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(a, dtype=np.float64).tobytes()).hexdigest()


class _CachedKernelDensity:
    """Drop-in for the two ``KernelDensity`` calls WeightWatcher makes, memoised."""

    cache: ClassVar[dict[tuple[Any, ...], np.ndarray]] = {}

    def __init__(self, kernel: str = "gaussian", bandwidth: float = 1.0) -> None:
        self.kernel = kernel
        self.bandwidth = bandwidth
        self.data: np.ndarray | None = None

    def fit(self, X: np.ndarray) -> _CachedKernelDensity:
        self.data = np.asarray(X)
        return self

    def score_samples(self, grid: np.ndarray) -> np.ndarray:
        from sklearn.neighbors import KernelDensity

        assert self.data is not None
        key = (self.kernel, self.bandwidth, _digest(self.data), _digest(np.asarray(grid)))
        if key not in self.cache:
            kde = KernelDensity(kernel=self.kernel, bandwidth=self.bandwidth).fit(self.data)
            self.cache[key] = kde.score_samples(grid)
        return self.cache[key].copy()


@contextlib.contextmanager
def cached_kde() -> Iterator[None]:
    """Patch ``RMT_Util.KernelDensity`` with the memoised scikit-learn estimator."""
    _, rmt_util, _ = import_ww()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(rmt_util, "KernelDensity", _CachedKernelDensity)
        try:
            yield
        finally:
            _CachedKernelDensity.cache.clear()


@contextlib.contextmanager
def quiet_and_seeded(seed: int = 0) -> Iterator[None]:
    """Swallow stdout and seed the global numpy RNG WeightWatcher shuffles with."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        np.random.set_state(state)


def analyze(model: Any, seed: int = 0, **options: Any) -> pd.DataFrame:
    """``WeightWatcher(model).analyze(**options)``, quiet, seeded, with the cached KDE."""
    ww, _, _ = import_ww()
    with cached_kde(), quiet_and_seeded(seed):
        details = ww.WeightWatcher(model=model).analyze(**options)
    assert isinstance(details, pd.DataFrame)
    return details
