"""The minimum-KS power-law fit on large spectra: WeightWatcher's WWFit, our exhaustive
search and our branch-and-bound search, side by side on the same eigenvalues.

    python benchmarks/powerlaw_large.py [--sizes 20000,50000,100000] [--ww-max 50000]

Spectra of more than 32,768 eigenvalues come from the operator reading of convolutions
(``conv2d_fft``: one singular value per channel pair and frequency). An exhaustive
minimum-KS search is O(N²); above ``powerlaw.EXHAUSTIVE_CANDIDATES`` candidates
:func:`layerscope.functional.powerlaw.search_ks` prunes with bounds of every KS distance
and must return the same fit. Each size is a uniform bulk with a Pareto tail (density
exponent 3.5, 10 % of the values); the script prints CPU seconds of each method, the
ratios, and whether alpha, xmin, D and alpha_spread are identical. WeightWatcher's
``WWFit`` (0.7.7) runs up to ``--ww-max`` eigenvalues.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from _ww import import_ww, quiet_and_seeded
from layerscope.functional import powerlaw


def spectrum(n: int, seed: int = 0) -> np.ndarray:
    """A uniform bulk on [0.01, 1) with a Pareto tail from 1 (density ∝ x^-3.5), sorted."""
    rng = np.random.default_rng([seed, n])
    tail = rng.pareto(2.5, n // 10) + 1.0
    return np.sort(np.concatenate([tail, rng.uniform(0.01, 1.0, n - n // 10)]))


def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    start = time.thread_time()
    out = fn()
    return time.thread_time() - start, out


def exhaustive(x: np.ndarray) -> powerlaw.PowerLawFit:
    """Our fit with the pruning switched off."""
    limit = powerlaw.EXHAUSTIVE_CANDIDATES
    powerlaw.EXHAUSTIVE_CANDIDATES = x.size
    try:
        return powerlaw.fit_power_law(x)
    finally:
        powerlaw.EXHAUSTIVE_CANDIDATES = limit


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="20000,50000,100000")
    p.add_argument("--ww-max", type=int, default=50000, help="largest N for WWFit")
    args = p.parse_args()
    _, _, ww_powerlaw = import_ww()
    print("| N | WWFit s | exhaustive s | branch and bound s | vs WW | vs exhaustive | same fit |")
    print("|---:|---:|---:|---:|---:|---:|:--:|")
    for n in (int(s) for s in args.sizes.split(",")):
        x = spectrum(n)
        t_bb, fit = timed(lambda x=x: powerlaw.fit_power_law(x))
        t_ex, ref = timed(lambda x=x: exhaustive(x))
        ww = "–"
        if n <= args.ww_max:
            with quiet_and_seeded():
                t_ww, wfit = timed(lambda x=x: ww_powerlaw.WWFit(x))
            ww = f"{t_ww:.1f}"
            agree = abs(wfit.alpha - fit.alpha) <= 1e-9 * fit.alpha and wfit.xmin == fit.xmin
            ww += "" if agree else " (differs)"
        ratio_ww = f"{float(ww.split()[0]) / t_bb:.0f}x" if ww != "–" else "–"
        print(
            f"| {n:,} | {ww} | {t_ex:.1f} | {t_bb:.2f} | {ratio_ww} | {t_ex / t_bb:.0f}x "
            f"| {'yes' if fit == ref else 'NO'} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
