"""Where a ``metrics="all"`` scan spends its time, matrix by matrix, and the best ratio it allows.

    python benchmarks/traps_floor.py [--quick] [--ww-json results.json] [--workers 2] [--cpu]

On the synthetic Llama block of ``vs_weightwatcher.py`` (full shapes by default, one
block; ``--quick`` for 1024/2816), each analysed matrix's work is timed in parts, on one
thread, with layerscope's own functions:

* ``original``: the spectrum of W (``spectrum.eigenvalues``, "auto", the default
  precision, or "float32" with ``--precision float32``);
* ``shuffle``: the seeded element shuffle (``spectrum.shuffle_entries``);
* ``gram32`` and ``eig32``: the float32 Gram of the shuffled copy and its eigensolver;
* ``fits``: every metric of ``metrics="all"`` computed from the two spectra;

and the parts of ``traps="fast"`` (:mod:`layerscope.fast_traps`):

* ``shuffle_fast``: the shared rotated permutation (the first matrix of each size also
  pays its ``randperm``, later ones only the gather);
* ``fast``: the float32 Gram, block Lanczos, SLQ bulk and the Cholesky certificate;
* ``fits_fast``: the metrics on the original and the estimated shuffled spectrum.

Each part is timed as wall time and as CPU time of the calling thread
(``time.thread_time``, one thread): on a machine shared with other processes the wall
time includes waiting for a core, the CPU time does not (``--cpu`` sums that instead).

The *floor* of an "all" scan is ``original + eig32``: the original spectrum (what the
default scan needs anyway) plus the shuffled matrix's eigensolver alone, i.e. with a
free shuffle and a free Gram. Divided by ``--workers`` (the scan's parallel workers), it
bounds the wall time; given WeightWatcher's time for ``analyze(randomize=True,
mp_fit=True, detX=True)`` on the same block (``--ww-json``: a ``vs_weightwatcher.py
--out`` file), it bounds the speedup any implementation built on this eigensolver can
reach.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

import _models
from layerscope import fast_traps, spectrum
from layerscope import metrics as registry

PARTS = ("original", "shuffle", "gram32", "eig32", "fits")
PRECISION = ["auto"]  # --precision of the original spectrum
FAST_PARTS = ("shuffle_fast", "fast", "fits_fast")
CPU = [False]  # --cpu: report thread CPU time instead of wall time


def clock(fn: Callable[[], Any]) -> tuple[float, Any]:
    """(seconds, result): wall time, or this thread's CPU time with ``--cpu``."""
    timer = time.thread_time if CPU[0] else time.perf_counter
    start = timer()
    out = fn()
    return timer() - start, out


def time_matrix(
    W: torch.Tensor, seed: int, perms: fast_traps.SharedPermutations
) -> dict[str, float]:
    """The parts of an "all" analysis of one matrix, exact and fast, in seconds."""
    batch = (W if W.shape[0] >= W.shape[1] else W.mT).unsqueeze(0)
    N, M = batch.shape[1:]
    t: dict[str, float] = {}
    precision: spectrum.Precision = "float32" if PRECISION[0] == "float32" else "auto"
    t["original"], evals = clock(lambda: spectrum.eigenvalues(batch, precision))
    gen = torch.Generator().manual_seed(seed)
    t["shuffle"], shuffled = clock(lambda: spectrum.shuffle_entries(batch, gen))
    t["gram32"], X = clock(lambda: spectrum.gram(shuffled, torch.float32))
    t["eig32"], lam = clock(lambda: torch.linalg.eigvalsh(X, UPLO="U"))
    rand = lam.double().reshape(-1).clamp_min(0).sort().values.numpy()
    spectra = registry.LayerSpectra(evals, N, M, rand, rand)
    t["fits"], _ = clock(lambda: registry.compute_row(spectra, registry.resolve("all")))
    t["shuffle_fast"], fast_in = clock(lambda: perms.shuffle(batch[0], seed))
    t["fast"], est = clock(lambda: fast_traps.fast_spectrum(fast_in, torch.Generator()))
    spectra = registry.LayerSpectra(evals, N, M, est.evals, est.evals)
    t["fits_fast"], _ = clock(lambda: registry.compute_row(spectra, registry.resolve("all")))
    t["certified"] = float(est.certified)
    return t


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="hidden 1024 / intermediate 2816")
    parser.add_argument("--ww-json", type=Path, help="vs_weightwatcher.py --out file (llama)")
    parser.add_argument("--workers", type=int, default=2, help="the scan's parallel workers")
    parser.add_argument("--cpu", action="store_true", help="thread CPU time, not wall time")
    parser.add_argument(
        "--precision",
        choices=("auto", "float32"),
        default="auto",
        help="precision of the original spectrum (the scan option; auto is the default)",
    )
    args = parser.parse_args()
    CPU[0] = args.cpu
    PRECISION[0] = args.precision
    torch.set_num_threads(1)
    perms = fast_traps.SharedPermutations(0)
    shape = _models.one_block(args.quick)
    tensors = _models.llama_tensors(shape)
    rows = []
    for seed, (name, W) in enumerate(tensors.items()):
        if W.ndim != 2 or "embed" in name or "lm_head" in name or min(W.shape) < 64:
            continue
        rows.append((name, time_matrix(W, seed, perms)))
        parts = "  ".join(f"{p} {rows[-1][1][p]:6.2f}" for p in (*PARTS, *FAST_PARTS))
        print(f"{name:34s} {tuple(W.shape)!s:14s} {parts}", flush=True)
    total = {p: sum(r[p] for _, r in rows) for p in (*PARTS, *FAST_PARTS)}
    floor = total["original"] + total["eig32"]
    work = sum(total[p] for p in PARTS)
    fast = total["original"] + sum(total[p] for p in FAST_PARTS)
    print(f"{'CPU' if args.cpu else 'wall'} time, one thread")
    print("sum: " + "  ".join(f"{p} {total[p]:.2f} s" for p in (*PARTS, *FAST_PARTS)))
    certified = sum(r["certified"] for _, r in rows)
    print(f"traps='fast' work {fast:.2f} s ({certified:.0f}/{len(rows)} counts certified)")
    print(f"all-scan work {work:.2f} s; floor (original + eig32) {floor:.2f} s;")
    print(
        f"  with {args.workers} workers: work {work / args.workers:.2f} s, "
        f"floor {floor / args.workers:.2f} s, fast {fast / args.workers:.2f} s"
    )
    if args.ww_json is not None:
        timings = json.loads(args.ww_json.read_text())["models"]["llama"]["timings"]
        ww = timings["traps+mp+erg"]["ww_module"]["s"]
        print(
            f"WeightWatcher traps+mp+erg {ww:.1f} s: the floor allows at most "
            f"{ww / (floor / args.workers):.1f}x; the whole work "
            f"{ww / (work / args.workers):.1f}x; traps='fast' {ww / (fast / args.workers):.1f}x"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
