"""Where an LLC sampling step spends its time, part by part, and the best ratio it allows.

    OMP_NUM_THREADS=1 python benchmarks/llc_floor.py [--batches 32 256] [--repeat 5]

The workload of ``llc_vs_devinterp.py`` (a ≈100k-parameter MLP, 4 chains, batch B, one
torch thread). Each part of one 4-chain step of ``layerscope.probes.llc`` is timed alone
over 200 repetitions with layerscope's own code (best of ``--repeat``):

* ``batch``: the next minibatch (a DataLoader of a TensorDataset, read by gathers);
* ``gradients``: loss, forward and backward of the four chains (the CPU default path,
  one chain after another), written into the drift buffers;
* ``noise``: the four chains' Gaussian draws (torch's ``normal_``, one generator each);
* ``update``: w − w* (the localization's pull) and w ← w + √ε·ξ − c·h, three passes
  over the ``(4, D)`` state;
* ``baseline``: the paired baseline, one no-grad forward pass at w*;
* ``diagnostics``: ‖w − w*‖² and the MALA acceptance terms.

The *floor* is ``batch + gradients + noise + update``: what any SGLD sampler must do per
step (devinterp 1.3.2 too, which also fetches the batch once per chain). Against
devinterp's whole run on the same work (timed in this process), ``floor`` bounds the
speedup of any sampler built on torch's CPU kernels; ``floor + baseline`` bounds ours,
which takes the baseline on every step's minibatch for accuracy (docs/llc.md).
"""

from __future__ import annotations

import argparse
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from layerscope.probes import llc
from layerscope.probes._llc_data import batches
from layerscope.probes._sgld_block import Block, Noise, make_blocks, sq_norms
from layerscope.probes._sgld_grads import BlockGrads, Layout
from layerscope.probes._sgld_settings import SamplerSettings
from llc_vs_devinterp import CHAINS, DRAWS, devinterp_run, gaussian_nll, mlp_problem

STEP, GAMMA = 1e-5, 1.0
FLOOR = ("batch", "gradients", "noise", "update")


def best_of(fn: Callable[[], Any], repeat: int, inner: int = DRAWS) -> float:
    """Best time of ``inner`` calls of ``fn``, over ``repeat`` tries, per call."""
    fn()
    best = math.inf
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - start) / inner)
    return best


def parts(batch_size: int, repeat: int) -> dict[str, float]:
    """Seconds per 4-chain step of each part, and the whole runs, for one batch size."""
    model, x, y = mlp_problem()
    loader = DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=True)
    nbeta = batch_size / math.log(batch_size)
    s = SamplerSettings(CHAINS, DRAWS, STEP, GAMMA, nbeta, seed=0, vectorize=False)
    at_w0 = BlockGrads.copy_at_w0(model, torch.device("cpu"))
    layout = Layout.of(model, torch.device("cpu"))
    block: Block = make_blocks(model, gaussian_nll, s, layout, (1, None), at_w0)[0]
    stream = batches(loader, None, seed=0)
    one = next(stream)
    h, prev, noise = block.grad_bufs[0], block.grad_bufs[1], block.noise.bufs[0]
    block._locate(h)
    into = 1 / block.scale

    def gradients() -> None:
        block.grads.looped(block.w, one, h, into)

    def update() -> None:
        # The step's three passes, with factors too small to move w.
        torch.sub(block.w, block.grads.layout.w0, out=h)
        block.w.add_(noise, alpha=1e-30)
        block.w.add_(h, alpha=1e-30)

    def diagnostics() -> None:
        block.records["dist"].append(sq_norms(h))
        block._correction(h, prev, noise)  # (prev grows by h each time: no matter)

    noisy = Noise(block.w, block.noise.gens, None)
    out = {
        "batch": best_of(lambda: next(stream), repeat),
        "gradients": best_of(gradients, repeat),
        "noise": best_of(lambda: noisy.at(0, last=True), repeat),
        "update": best_of(update, repeat),
        "baseline": best_of(lambda: block.grads.baseline(one), repeat),
        "diagnostics": best_of(diagnostics, repeat),
    }
    kw = {"num_chains": CHAINS, "num_draws": DRAWS, "burnin": 0, "step_size": STEP}
    kw |= {"localization": GAMMA, "nbeta": nbeta}
    runs: dict[str, Callable[[], Any]] = {
        "devinterp_run": lambda: devinterp_run(model, loader, STEP, nbeta, DRAWS, 0),
        "layerscope_run": lambda: llc.estimate(model, loader, gaussian_nll, **kw),
    }
    for name, fn in runs.items():
        out[name] = best_of(fn, repeat, inner=1) / DRAWS
    return out


def report(batch_size: int, t: dict[str, float]) -> dict[str, float]:
    floor = sum(t[k] for k in FLOOR)
    ours = floor + t["baseline"]
    print(f"batch {batch_size}, 1 thread, per 4-chain step (ms):")
    for key in (*FLOOR, "baseline", "diagnostics"):
        print(f"  {key:12s} {1e3 * t[key]:7.3f}")
    print(f"  floor        {1e3 * floor:7.3f}   (+ baseline {1e3 * ours:7.3f})")
    print(
        f"  whole runs: devinterp {1e3 * t['devinterp_run']:7.3f},"
        f" layerscope {1e3 * t['layerscope_run']:7.3f}"
        f" ({t['devinterp_run'] / t['layerscope_run']:.2f}x)"
    )
    bound, ours_bound = t["devinterp_run"] / floor, t["devinterp_run"] / ours
    print(f"  best ratio any sampler: {bound:.2f}x; with the paired baseline: {ours_bound:.2f}x")
    return {"floor": floor, "bound": bound, "bound_with_baseline": ours_bound}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batches", type=int, nargs="+", default=[32, 256])
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    results = {}
    for b in args.batches:
        t = parts(b, args.repeat)
        results[str(b)] = {**t, **report(b, t)}
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
