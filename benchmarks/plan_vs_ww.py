"""``layerscope plan prune`` vs the AlphaPruning repository's route (WeightWatcher alphas).

    python benchmarks/plan_vs_ww.py [--quick | --blocks 1] [--sparsity 0.7]

The AlphaPruning repository (Lu et al., NeurIPS 2024) gets one alpha per matrix from
``weightwatcher.WeightWatcher(model=blocks).analyze()`` and maps block means to sparsities.
Here both routes run on the same synthetic Llama-shaped model (``benchmarks/_models.py``:
2 blocks of hidden 4096 / intermediate 11008, or 1 block of 1024 / 2816 with ``--quick``):

* WeightWatcher 0.7.7 ``analyze()`` on the ``nn.Module``, then the same allocation formula
  (``layerscope.control.allocate``, block means; the formula costs microseconds);
* ``layerscope.control.prune_plan`` on the sharded safetensors directory (scan + plan).

Prints both times, their ratio, and the largest difference between the two plans
(``--mapping layer``, the default here, exposes per-matrix alpha differences; the paper's
default is ``block``).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

from _models import (
    LLAMA_FULL,
    LLAMA_QUICK,
    LlamaShape,
    import_weightwatcher,
    llama_tensors,
    module_from_tensors,
    quiet,
    write_sharded,
)
from layerscope.control import allocate, prune_plan
from layerscope.control.plan import block_of


def ww_plan(module: object, sparsity: float, mapping: str) -> dict[str, float]:
    ww = import_weightwatcher()
    with quiet():
        details = ww.WeightWatcher(model=module).analyze()
    names = [f"{n}.weight" for n in details["longname"]]
    alphas = details["alpha"].to_numpy(dtype=float)
    sizes = (details["N"] * details["M"]).to_numpy(dtype=float)
    blocks = [block_of(n) if mapping == "block" else n for n in names]
    means = {
        b: float(np.mean([a for a, c in zip(alphas, blocks, strict=True) if c == b]))
        for b in set(blocks)
    }
    scores = [means[b] for b in blocks]
    return dict(zip(names, allocate(scores, sizes, sparsity, 0.2), strict=True))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1 block of 1024/2816")
    parser.add_argument("--sparsity", type=float, default=0.7, help="target mean sparsity")
    parser.add_argument(
        "--mapping", choices=("block", "layer"), default="layer", help="plan mapping (both routes)"
    )
    parser.add_argument("--blocks", type=int, help="blocks of the full shape (default 2)")
    args = parser.parse_args()
    shape = LLAMA_QUICK if args.quick else LLAMA_FULL
    if args.blocks and not args.quick:
        shape = LlamaShape(shape.hidden, shape.intermediate, args.blocks, shape.heads)
    tensors = llama_tensors(shape)
    module = module_from_tensors(tensors)
    with tempfile.TemporaryDirectory() as tmp:
        directory = write_sharded(tensors, Path(tmp) / "llama", shape)
        t0 = time.perf_counter()
        ww = ww_plan(module, args.sparsity, args.mapping)
        t_ww = time.perf_counter() - t0
        t0 = time.perf_counter()
        plan = prune_plan(directory, sparsity=args.sparsity, mapping=args.mapping, device="cpu")
        ls = plan.layers
        t_ls = time.perf_counter() - t0
    common = sorted(set(ww) & set(ls))
    diff = max(abs(ww[n] - ls[n]) for n in common)
    print(f"model: {shape}, {len(common)} matrices planned by both")
    print(f"WeightWatcher analyze + allocation: {t_ww:.2f} s")
    print(f"layerscope prune_plan:              {t_ls:.2f} s")
    print(f"ratio WeightWatcher / layerscope:   {t_ww / t_ls:.2f}x")
    print(f"largest |sparsity difference|:      {diff:.2e}")


if __name__ == "__main__":
    main()
