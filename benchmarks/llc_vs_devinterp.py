"""layerscope's LLC estimator vs devinterp 1.3.2 and a hand-written SGLD loop, in one run.

    OMP_NUM_THREADS=2 python benchmarks/llc_vs_devinterp.py [--quick] [--out results.json]
    OMP_NUM_THREADS=1 python benchmarks/llc_vs_devinterp.py --tables   # docs/llc.md tables

Speed: a ≈100k-parameter MLP (64 → 256 → 256 → 64, ReLU) on synthetic regression data
(4096 samples from a random teacher plus unit noise), 4 chains × 200 draws, no burn-in,
batch 32 and 256, the same step size, localization and nβ = B/ln B everywhere, and the
same torch thread budget for every contender (``--threads``, default 1 and 2:
``torch.set_num_threads``). Timed: devinterp's ``sample`` with its ``LLCEstimator``
(chains one after another, ``cores=1``; with ``--devinterp-cores`` also ``cores=T``, its
multiprocessing pool), a raw SGLD loop written by hand (autograd + in-place update, one
chain after another, no diagnostics, no baseline), and ``layerscope.probes.llc.estimate``
vectorised (vmap) and looped, its default ``threads`` (the torch thread budget: blocks of
chains in parallel threads). Each timing is the best of ``--repeat`` interleaved rounds.

Accuracy: reduced-rank regression at a trained w* (n = 4000, Gaussian NLL) against the
closed form of Aoyagi & Watanabe (2005): devinterp with its default baseline (mean loss
on ``num_chains`` batches) vs layerscope's default (baseline on each step's minibatch),
same settings (4 chains × 300 draws after 300 burn-in, batch 64, ε = 0.02/nβ, γ = 1).
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import platform
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _devinterp import devinterp_llc
from _rrr import gaussian_nll, rrr_problem
from layerscope.probes import llc

CHAINS, DRAWS = 4, 200
RRR_CASES = ((6, 4, 6, 0), (6, 4, 6, 2), (3, 4, 10, 1), (10, 4, 3, 1), (3, 10, 4, 2))
TARGET_VS_DEVINTERP = 1.5
TARGET_VS_RAW = 1.2


def mlp_problem(n: int = 4096) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 64)
    )
    x = torch.randn(n, 64)
    with torch.no_grad():
        y = model(x) + torch.randn(n, 64)
    return model, x, y


def copy_module(model: nn.Module) -> nn.Module:
    return copy.deepcopy(model)


def raw_sgld(model: nn.Module, loader: DataLoader, step: float, nbeta: float) -> float:
    """The minimal loop: per chain, a copy of the model; loss → backward → in-place update."""
    total = torch.zeros(())
    for chain in range(CHAINS):
        torch.manual_seed(chain)
        copy = copy_module(model)
        params = list(copy.parameters())
        start = [p.detach().clone() for p in params]
        batches = iter(loader)
        for _ in range(DRAWS):
            try:
                x, y = next(batches)
            except StopIteration:
                batches = iter(loader)
                x, y = next(batches)
            loss = 0.5 * ((copy(x) - y) ** 2).sum(1).mean()
            grads = torch.autograd.grad(loss, params)
            total += loss.detach()
            with torch.no_grad():
                for p, g, p0 in zip(params, grads, start, strict=True):
                    drift = (p - p0).add_(g, alpha=nbeta)
                    p.add_(drift, alpha=-0.5 * step)
                    p.add_(torch.randn_like(p), alpha=math.sqrt(step))
    return float(total)


def devinterp_run(
    model: nn.Module,
    loader: DataLoader,
    step: float,
    nbeta: float,
    draws: int,
    burnin: int,
    seed: int = 0,
    cores: int = 1,
) -> float:
    """devinterp 1.3.2's LLC mean at its default baseline (``probes._devinterp``)."""
    results, _ = devinterp_llc(
        model,
        loader,
        chains=CHAINS,
        draws=draws,
        burnin=burnin,
        step=step,
        nbeta=nbeta,
        seed=seed,
        cores=cores,
    )
    return float(results["llc/mean"])


def interleaved_best(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, float]:
    """Best wall time of each function over ``repeat`` rounds, the functions interleaved
    within a round so that load from other processes hits them alike."""
    best = dict.fromkeys(fns, math.inf)
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return best


def speed(batch: int, repeat: int, threads: int, devinterp_cores: bool) -> dict[str, float]:
    """Best-of-``repeat`` wall times with a torch thread budget of ``threads``."""
    torch.set_num_threads(threads)
    model, x, y = mlp_problem()
    loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
    nbeta = batch / math.log(batch)
    step = 1e-5
    kw = {
        "num_chains": CHAINS,
        "num_draws": DRAWS,
        "burnin": 0,
        "step_size": step,
        "localization": 1.0,
        "nbeta": nbeta,
    }
    fns: dict[str, Callable[[], Any]] = {
        "devinterp": lambda: devinterp_run(model, loader, step, nbeta, DRAWS, 0),
        "raw_loop": lambda: raw_sgld(model, loader, step, nbeta),
        "layerscope_vmap": lambda: llc.estimate(model, loader, gaussian_nll, vectorize=True, **kw),
        "layerscope_loop": lambda: llc.estimate(model, loader, gaussian_nll, vectorize=False, **kw),
    }
    if threads > 1:  # layerscope held to one thread inside the same process
        fns["layerscope_threads1"] = lambda: llc.estimate(
            model, loader, gaussian_nll, vectorize=False, threads=1, **kw
        )
    if devinterp_cores and threads > 1:
        fns["devinterp_cores"] = lambda: devinterp_run(
            model, loader, step, nbeta, DRAWS, 0, cores=threads
        )
    out = interleaved_best(fns, repeat)
    out["params"] = float(sum(p.numel() for p in model.parameters()))
    out["threads"] = float(threads)
    return out


def report(batch: int, t: dict[str, float]) -> None:
    """Print one (batch, thread budget) row of timings and the two target ratios."""
    steps = CHAINS * DRAWS
    print(
        f"batch {batch}, {t['threads']:.0f} torch thread(s) ({t['params']:.0f} params,"
        f" {CHAINS} chains x {DRAWS} draws):"
    )
    keys = ("devinterp", "devinterp_cores", "raw_loop", "layerscope_vmap", "layerscope_loop")
    for key in (*keys, "layerscope_threads1"):
        if key in t:
            print(f"  {key:16s} {t[key]:7.3f} s  {1e3 * t[key] / steps:6.3f} ms/chain-step")
    best = min(t["layerscope_vmap"], t["layerscope_loop"])
    print(
        "  devinterp / layerscope (vmap, loop = the CPU default) ="
        f" {t['devinterp'] / t['layerscope_vmap']:.2f}x,"
        f" {t['devinterp'] / t['layerscope_loop']:.2f}x (target >= {TARGET_VS_DEVINTERP}x)"
    )
    print(
        f"  best layerscope / raw_loop = {best / t['raw_loop']:.2f}x (target <= {TARGET_VS_RAW}x)"
    )


def accuracy(cases: tuple[tuple[int, int, int, int], ...]) -> list[dict[str, Any]]:
    rows = []
    batch, draws = 64, 300
    nbeta = batch / math.log(batch)
    for case in cases:
        model, x, y = rrr_problem(*case, train_steps=1500)
        loader = DataLoader(TensorDataset(x, y), batch_size=batch, shuffle=True)
        truth = llc.rrr_learning_coefficient(*case)
        theirs = devinterp_run(model, loader, 0.02 / nbeta, nbeta, draws, draws)
        ours = llc.estimate(model, loader, gaussian_nll, num_draws=draws, burnin=draws)
        rows.append(
            {
                "case": "x".join(map(str, case)),
                "truth": truth,
                "devinterp": theirs,
                "devinterp_rel": theirs / truth - 1,
                "layerscope": ours.mean,
                "layerscope_rel": ours.mean / truth - 1,
                "warnings": len(ours.warnings),
            }
        )
    return rows


def default_accuracy() -> list[str]:
    """docs/llc.md's accuracy table: library defaults, three data seeds per RRR case."""
    lines = []
    cases = ((6, 4, 6, 0), (5, 4, 5, 0), (6, 4, 6, 2), (5, 3, 5, 1), (8, 3, 8, 1))
    for case in (*cases, *RRR_CASES[2:]):
        truth = llc.rrr_learning_coefficient(*case)
        rel, warned = [], 0
        for seed in (0, 1, 2):
            model, x, y = rrr_problem(*case, seed=seed, train_steps=1500)
            res = llc.estimate(model, (x, y), gaussian_nll, seed=seed)
            rel.append(res.mean / truth - 1)
            warned += bool(res.warnings)
        errors = " ".join(f"{v:+.0%}" for v in rel)
        mean_abs = sum(abs(v) for v in rel) / len(rel)
        lines.append(
            f"| {'x'.join(map(str, case))} | {truth:g} | {errors} | {mean_abs:.0%} | {warned}/3 |"
        )
    return lines


def step_sweep() -> list[str]:
    """docs/llc.md's sweep: ε·nβ over 100x for nβ = B/ln B and n/ln n (case 6x4x6x2)."""
    case = (6, 4, 6, 2)
    truth = llc.rrr_learning_coefficient(*case)
    model, x, y = rrr_problem(*case, train_steps=1500)
    batch, n = 128, len(x)
    lines = []
    for label, nbeta in (("B/ln B", batch / math.log(batch)), ("n/ln n", n / math.log(n))):
        for product in (0.002, 0.006, 0.02, 0.06, 0.2):
            res = llc.estimate(model, (x, y), gaussian_nll, nbeta=nbeta, step_size=product / nbeta)
            d = res.diagnostics
            why = "; ".join(w.split(" (")[0].split(":")[0] for w in res.warnings) or "-"
            lines.append(
                f"| {label} = {nbeta:.0f} | {product} | {res.step_size:.1e} | {res.mean:.2f}"
                f" ({res.mean / truth - 1:+.0%}) | {d.acceptance:.2f} | {d.drift:+.2f}"
                f" | {d.r_hat:.2f} | {why} |"
            )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="batch 32 only, 2 RRR cases")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument(
        "--devinterp-cores", action="store_true", help="also time devinterp's cores=T pool"
    )
    parser.add_argument("--no-accuracy", action="store_true", help="timings only")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--tables", action="store_true", help="only docs/llc.md's accuracy and sweep tables"
    )
    args = parser.parse_args()
    if args.tables:
        torch.set_num_threads(1)
        print("\n".join(default_accuracy()))
        print("\n".join(step_sweep()))
        return
    results: dict[str, Any] = {
        "machine": platform.processor() or platform.machine(),
        "torch": torch.__version__,
        "speed": {},
    }
    for threads in args.threads:
        for batch in (32,) if args.quick else (32, 256):
            t = speed(batch, args.repeat, threads, args.devinterp_cores)
            results["speed"][f"batch{batch}_threads{threads}"] = t
            report(batch, t)
    torch.set_num_threads(1)
    if args.no_accuracy:
        if args.out:
            args.out.write_text(json.dumps(results, indent=2))
        return
    rows = accuracy(RRR_CASES[:2] if args.quick else RRR_CASES)
    results["accuracy"] = rows
    print("RRR (M x H x N x r): closed form, devinterp default baseline, layerscope default")
    for r in rows:
        print(
            f"  {r['case']:9s} {r['truth']:6.2f}  devinterp {r['devinterp']:6.2f}"
            f" ({r['devinterp_rel']:+.0%})  layerscope {r['layerscope']:6.2f}"
            f" ({r['layerscope_rel']:+.0%}, {r['warnings']} warnings)"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
