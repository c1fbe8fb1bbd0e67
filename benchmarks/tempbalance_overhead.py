"""TempBalance's cost: one recomputation of every layer's alpha against a training epoch.

    PYTHONPATH=src python benchmarks/tempbalance_overhead.py [--batches 50] [--batch-size 128]

A small VGG-style CNN (conv 3→64→128→256→256, 3×3, then a linear head) trained with SGD on
random CIFAR-sized inputs (32×32×3, 10 classes; the data does not change the cost). One
"epoch" is ``--batches`` optimizer steps; TempBalance recomputes once per epoch in the
paper's setting. Prints the epoch time, the recomputation time (median-tail ``alpha`` and
``alpha_farms``) and their ratio.
"""

from __future__ import annotations

import argparse
import time

import torch

from layerscope.control import TempBalance, layer_param_groups


def _model() -> torch.nn.Module:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for a, b in ((3, 64), (64, 128), (128, 256), (256, 256)):
        layers += [torch.nn.Conv2d(a, b, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
    return torch.nn.Sequential(*layers, torch.nn.Flatten(), torch.nn.Linear(256 * 2 * 2, 10))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=50, help="optimizer steps per epoch")
    parser.add_argument("--batch-size", type=int, default=128, help="examples per step")
    args = parser.parse_args()
    model = _model()
    opt = torch.optim.SGD(layer_param_groups(model, lr=0.05), lr=0.05, momentum=0.9)
    x = torch.randn(args.batch_size, 3, 32, 32)
    y = torch.randint(0, 10, (args.batch_size,))
    t0 = time.perf_counter()
    for _ in range(args.batches):
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    epoch = time.perf_counter() - t0
    print(f"epoch ({args.batches} steps of {args.batch_size}): {epoch:.2f} s")
    for metric in ("alpha", "alpha_farms"):
        tb = TempBalance(opt, model, every=args.batches, metric=metric)
        t0 = time.perf_counter()
        tb.recompute()
        cost = time.perf_counter() - t0
        print(f"recompute ({metric}): {cost:.3f} s = {100 * cost / epoch:.2f}% of the epoch")


if __name__ == "__main__":
    main()
