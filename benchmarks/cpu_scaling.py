"""How much a second thread buys on this machine, for compute and for memory traffic.

    python benchmarks/cpu_scaling.py [--threads 2] [--repeat 3]

Context for every multi-threaded figure in docs/benchmarks.md: T Python threads (each
with one torch thread; torch releases the GIL inside its kernels) run T copies of the
same work at once, against one copy on one thread. Two kinds of work:

* ``compute``: 400 products of 512×512 float32 matrices (BLAS, compute-bound);
* ``memory``: 3,000 in-place additions over a 4 × 98,880 float32 state (the SGLD
  sampler's state; bound by cache and memory bandwidth).

Reported: the parallel speed-up, T × (one copy's time) / (T copies' time); T is perfect,
1 means the threads only took turns. On a virtual machine whose vCPUs share a physical
core, compute-bound work gains little from a second thread.
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch


def compute() -> None:
    a, b = torch.randn(512, 512), torch.randn(512, 512)
    for _ in range(400):
        torch.mm(a, b)


def memory() -> None:
    x, y = torch.randn(4, 98_880), torch.randn(4, 98_880)
    for _ in range(3000):
        x.add_(y, alpha=1e-9)


def wall(work: Callable[[], None], copies: int) -> float:
    threads = [threading.Thread(target=work) for _ in range(copies)]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return time.perf_counter() - start


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", type=Path, default=None)
    args = p.parse_args()
    torch.set_num_threads(1)
    results = {}
    for name, work in (("compute", compute), ("memory", memory)):
        one = min(wall(work, 1) for _ in range(args.repeat))
        many = min(wall(work, args.threads) for _ in range(args.repeat))
        speedup = args.threads * one / many
        results[name] = {"one_s": one, "parallel_s": many, "speedup": speedup}
        print(
            f"{name:8s} one copy {one:.3f} s, {args.threads} copies on {args.threads} threads"
            f" {many:.3f} s: speed-up {speedup:.2f} of {args.threads}"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
