"""The Gram by BLAS syrk against the general product ``W.mT @ W``, in one process.

    python benchmarks/gram_syrk.py [--threads 1] [--quick]

For Llama-shaped matrices (4096², 11008×4096; ``--quick``: 1024², 2816×1024) it times
``spectrum.gram`` in float32 and float64 and the whole ``spectrum.eigenvalues`` (float64
and "auto") with layerscope's syrk path, and with it switched off (the ``addmm``
fallback, i.e. the general product), interleaved, best of ``--repeat``; prints the ratios.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch

from layerscope import _mkl, spectrum


def best(fn: Callable[[], Any], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if _mkl._checked_syrk(torch.float64) is None:
        raise SystemExit("this torch build has no usable MKL syrk: nothing to compare")
    shapes = ((1024, 1024), (2816, 1024)) if args.quick else ((4096, 4096), (11008, 4096))
    gen = torch.Generator().manual_seed(0)
    print(f"{'shape':>12s} {'what':28s} {'matmul':>8s} {'syrk':>8s} {'ratio':>6s}")
    for N, M in shapes:
        W = (torch.randn(N, M, generator=gen) * 0.02).unsqueeze(0)
        cases: dict[str, Callable[[], Any]] = {
            "gram float32": lambda W=W: spectrum.gram(W, torch.float32),
            "gram float64": lambda W=W: spectrum.gram(W, torch.float64),
            "eigenvalues float64": lambda W=W: spectrum.eigenvalues(W, "float64"),
            "eigenvalues auto": lambda W=W: spectrum.eigenvalues(W, "auto"),
        }
        for what, fn in cases.items():
            timing = {"syrk": 1e9, "matmul": 1e9}
            for _ in range(args.repeat):  # interleaved rounds
                for name, switch in (("syrk", _mkl._checked_syrk), ("matmul", None)):
                    original = _mkl._checked_syrk
                    if switch is None:
                        _mkl._checked_syrk = lambda dtype: None  # type: ignore[assignment]
                    try:
                        timing[name] = min(timing[name], best(fn, 1))
                    finally:
                        _mkl._checked_syrk = original
            ratio = timing["matmul"] / timing["syrk"]
            print(
                f"{N:>6d}×{M:<5d} {what:28s} {timing['matmul']:7.2f}s {timing['syrk']:7.2f}s"
                f" {ratio:5.2f}x",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
