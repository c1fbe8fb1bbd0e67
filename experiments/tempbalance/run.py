"""The TempBalance study: tuned uniform learning rate vs TempBalance vs TempBalance + FARMS.

Protocol (equal tuning budget): every arm gets the same grid of peak learning rates, each
trained with the tuning seeds and scored by mean validation accuracy; each arm's best lr is
then trained with the evaluation seeds and scored once on the test set. A seed fixes the
training subset, initialisation and batch order for all arms, so arms are compared paired
by seed: paired t-test (``scipy.stats.ttest_rel``) and Wilcoxon signed-rank test
(``scipy.stats.wilcoxon``, exact; with 5 seeds its smallest two-sided p is 2/2⁵ = 0.0625).

    PYTHONPATH=src:. OMP_NUM_THREADS=1 python -m experiments.tempbalance.run \
        --out /tmp/tempbalance.json            # 45 runs, ≈ 4 s of CPU each

Writes a JSON (``schema_version`` 1) and prints the tables in Markdown.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from experiments.tempbalance.data import load_images, split
from experiments.tempbalance.train import ARMS, Config, train_run
from layerscope.results import atomic_write

LRS = (0.01, 0.02, 0.05, 0.1, 0.2)
TUNE_SEEDS = (100, 101)
SEEDS = (0, 1, 2, 3, 4)
PAIRS = (("tb", "uniform"), ("tb_farms", "uniform"), ("tb_farms", "tb"))


def _std(values: Sequence[float]) -> float | None:
    """Sample standard deviation (ddof 1); None for a single value."""
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def paired(a: Sequence[float], b: Sequence[float]) -> dict[str, float]:
    """Mean and std of a − b over seeds, paired t-test and exact Wilcoxon p-values."""
    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    d = x - y
    if np.all(d == 0):  # both tests are undefined; no evidence of a difference
        return {"mean_diff": 0.0, "std_diff": 0.0, "t": 0.0, "p_t": 1.0, "p_wilcoxon": 1.0}
    t = stats.ttest_rel(x, y)
    w = stats.wilcoxon(x, y, method="exact" if np.all(d != 0) else "auto")
    return {
        "mean_diff": float(d.mean()),
        "std_diff": float(d.std(ddof=1)),
        "t": float(t.statistic),
        "p_t": float(t.pvalue),
        "p_wilcoxon": float(w.pvalue),
    }


Train = Callable[[Any, str, float, int, str], dict[str, Any]]


def tune(
    data: Callable[[int], Any],
    train: Train,
    arms: Sequence[str],
    lrs: Sequence[float],
    seeds: Sequence[int],
) -> tuple[dict[str, dict[str, list[float]]], dict[str, float]]:
    """Validation accuracy of every (arm, lr, tuning seed); each arm's best lr (first on ties).

    ``data(seed)`` builds a seed's splits, ``train(data, arm, lr, seed, on)`` trains one run
    and returns its ``acc`` on ``on`` (``val`` or ``test``).
    """
    splits = {s: data(s) for s in seeds}
    scores: dict[str, dict[str, list[float]]] = {}
    best: dict[str, float] = {}
    for arm in arms:
        scores[arm] = {
            str(lr): [train(splits[s], arm, lr, s, "val")["acc"] for s in seeds] for lr in lrs
        }
        means = [float(np.mean(scores[arm][str(lr)])) for lr in lrs]
        best[arm] = lrs[int(np.argmax(means))]
    return scores, best


def compare(
    data: Callable[[int], Any],
    train: Train,
    arms: Sequence[str],
    lrs: Sequence[float],
    tune_seeds: Sequence[int],
    seeds: Sequence[int],
    fixed: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """Tune every arm's lr on validation (or take it from ``fixed``: arm -> lr, e.g. the lrs
    an earlier run tuned), then train the evaluation seeds and test; paired statistics."""
    fixed = dict(fixed or {})
    tuned = [a for a in arms if a not in fixed]
    scores, best = tune(data, train, tuned, lrs, tune_seeds)
    best |= {a: lr for a, lr in fixed.items() if a in arms}
    runs: dict[str, list[dict[str, Any]]] = {a: [] for a in arms}
    for s in seeds:
        split_s = data(s)
        for arm in arms:
            runs[arm].append({"seed": s, **train(split_s, arm, best[arm], s, "test")})
    acc = {a: [r["acc"] for r in runs[a]] for a in arms}
    summary = {
        a: {"lr": best[a], "mean": float(np.mean(v)), "std": _std(v)} for a, v in acc.items()
    }
    pairs = [(a, b) for a, b in PAIRS if a in acc and b in acc and len(seeds) > 1]
    tests = {f"{a}-{b}": paired(acc[a], acc[b]) for a, b in pairs}
    return {
        "schema_version": 1,
        "lrs": list(lrs),
        "fixed_lrs": fixed,
        "tune_seeds": list(tune_seeds),
        "seeds": list(seeds),
        "tuning": scores,
        "test": runs,
        "summary": summary,
        "paired": tests,
    }


def study(
    cfg: Config,
    arms: Sequence[str] = tuple(ARMS),
    lrs: Sequence[float] = LRS,
    tune_seeds: Sequence[int] = TUNE_SEEDS,
    seeds: Sequence[int] = SEEDS,
    fixed: Mapping[str, float] | None = None,
) -> dict[str, Any]:
    """The low-data CNN study (:func:`compare` on MNIST with :func:`train_run`)."""
    images = load_images()
    result = compare(
        partial(split, *images, cfg.per_class),
        partial(train_run, cfg),
        arms,
        lrs,
        tune_seeds,
        seeds,
        fixed,
    )
    return {"schema_version": 1, "config": asdict(cfg)} | result


def markdown(result: dict[str, Any]) -> str:
    """Tuning table, test summary and paired tests as Markdown."""
    lrs = result["lrs"]
    lines = ["| arm | " + " | ".join(f"lr {lr}" for lr in lrs) + " |"]
    lines.append("|---" * (len(lrs) + 1) + "|")
    for arm, row in result["tuning"].items():
        cells = [f"{np.mean(row[str(lr)]):.2f}" for lr in lrs]
        lines.append(f"| {arm} | " + " | ".join(cells) + " |")
    lines += ["", "| arm | lr | test accuracy (%) | per seed |", "|---|---|---|---|"]
    for arm, s in result["summary"].items():
        per_seed = ", ".join(f"{r['acc']:.2f}" for r in result["test"][arm])
        std = "" if s["std"] is None else f" ± {s['std']:.2f}"
        lines.append(f"| {arm} | {s['lr']} | {s['mean']:.2f}{std} | {per_seed} |")
    lines += ["", "| pair | mean diff | t | p (t-test) | p (Wilcoxon) |", "|---|---|---|---|---|"]
    for pair, p in result["paired"].items():
        lines.append(
            f"| {pair} | {p['mean_diff']:+.2f} ± {p['std_diff']:.2f} | {p['t']:.2f} "
            f"| {p['p_t']:.3f} | {p['p_wilcoxon']:.3f} |"
        )
    return "\n".join(lines)


def add_protocol_args(p: argparse.ArgumentParser, lrs: Sequence[float]) -> None:
    """The options every study shares: output, lr grid, seeds, arms, fixed lrs."""
    p.add_argument("--out", type=Path, required=True, help="write the results JSON to FILE")
    p.add_argument("--lrs", type=float, nargs="+", default=lrs, help="peak learning rates to tune")
    p.add_argument("--tune-seeds", type=int, nargs="+", default=TUNE_SEEDS, help="tuning seeds")
    p.add_argument("--seeds", type=int, nargs="+", default=SEEDS, help="evaluation seeds")
    p.add_argument("--arms", nargs="+", choices=tuple(ARMS), default=tuple(ARMS), help="arms")
    p.add_argument(
        "--lr",
        nargs="+",
        default=[],
        metavar="ARM=LR",
        help="train these arms at these lrs without tuning (e.g. the lrs of an earlier run)",
    )


def fixed_lrs(p: argparse.ArgumentParser, items: Sequence[str]) -> dict[str, float]:
    """Parse ``--lr ARM=LR`` items (argparse error on a bad one)."""
    fixed = {}
    for item in items:
        arm, _, lr = item.partition("=")
        if arm not in ARMS or not lr:
            p.error(f"--lr {item}: expected ARM=LR with ARM one of {', '.join(ARMS)}")
        fixed[arm] = float(lr)
    return fixed


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--per-class", type=int, default=Config.per_class, help="training images per class"
    )
    p.add_argument("--epochs", type=int, default=Config.epochs, help="training epochs")
    add_protocol_args(p, LRS)
    args = p.parse_args(argv)
    cfg = replace(Config(), per_class=args.per_class, epochs=args.epochs)
    fixed = fixed_lrs(p, args.lr)
    result = study(cfg, args.arms, args.lrs, args.tune_seeds, args.seeds, fixed)
    atomic_write(args.out, lambda f: f.write(json.dumps(result, indent=1).encode()))
    print(markdown(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
