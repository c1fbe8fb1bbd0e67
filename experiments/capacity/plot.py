"""The capacity plateau of a sweep: a table per model size and a two-panel figure.

Morris et al. (2025), "How much do language models memorize?" (arXiv 2505.24832),
figure 1 and §4: a model's capacity is the height of the plateau its total memorized
bits reach as the data set grows; capacity over parameters is bits per parameter, and
their slope of capacity against parameters across sizes is ≈ 3.6.

For each model size this takes, at every data-set size N, the mean over seeds of the
memorized bits, and reads the plateau as the largest of those means; the interval is
the lowest and highest single seed at that N, and ``of_data`` the share of that
data set's entropy the plateau holds (near 1: the data, not the model, set the
point). Across sizes, the slope of the plateau against the parameter count is fitted
through the origin by least squares (slope = Σ pᵢ·bᵢ / Σ pᵢ²), with a bootstrap
interval over the sizes.

Rows of several budgets (``steps``) are read apart: :func:`budgets` gives, per size, N and
budget, bits/parameter and its change from the previous budget per doubling of the steps
(a point that moves by less than 1 % per doubling is taken as converged), and
``--largest-budget`` reads each size's plateau at its largest budget only,
``--best-budget`` at the budget where it is highest (every reading is a lower bound of
the capacity, so the highest is the tightest).

    python -m experiments.capacity.plot docs/memorization/capacity-sweep.csv \\
        --out docs/memorization/capacity-sweep.png
    python -m experiments.capacity.plot docs/memorization/capacity-{sweep,budget}.csv \\
        --largest-budget --out docs/memorization/capacity-converged.png
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.tables import markdown, save_figure

PAPER_BITS_PER_PARAM = 3.6
# Rows that agree on the model's shape and the training recipe are seeds and N of one
# size; a column of the recipe that an older CSV lacks is left out of the key.
SHAPE = ["layers", "width", "vocab", "seq_len", "dtype"]
RECIPE = ["lr", "batch", "decay", "clip"]


def read(files: list[Path]) -> pd.DataFrame:
    """The rows of every CSV; rows from before ``clip`` was a column ran without clipping."""
    rows = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    if "clip" in rows.columns:
        rows["clip"] = rows["clip"].fillna(0.0)
    return rows


def size_keys(rows: pd.DataFrame) -> list[str]:
    """The columns that tell one model size (and recipe) from another in ``rows``."""
    return SHAPE + [c for c in RECIPE if c in rows.columns]


def plateaus(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per model size: the plateau N, its bits and bits/parameter, seed range."""
    out = []
    keys = size_keys(rows)
    for size, f in rows.groupby(keys, sort=True, dropna=False):
        by_n = f.groupby("samples")["memorized_bits"]
        means = by_n.mean()
        best = int(means.idxmax())
        at = f[f["samples"] == best]
        params = int(f["params"].iloc[0])
        out.append(
            {
                **dict(zip(keys, size, strict=True)),
                "params": params,
                "sizes": ",".join(str(int(n)) for n in means.index),
                "plateau_N": best,
                "seeds": len(at),
                "plateau_bits": round(float(means.max())),
                "bits_low": round(float(at["memorized_bits"].min())),
                "bits_high": round(float(at["memorized_bits"].max())),
                "of_data": float(means.max() / at["data_bits"].iloc[0]),
                "bits_per_param": float(means.max()) / params,
                "bpp_low": float(at["memorized_bits"].min()) / params,
                "bpp_high": float(at["memorized_bits"].max()) / params,
                "steps": int(at["steps"].max()),
            }
        )
    return pd.DataFrame(out)


def largest_budget(rows: pd.DataFrame) -> pd.DataFrame:
    """Each size's rows at the largest number of steps it was trained for."""
    most = rows.groupby(size_keys(rows), dropna=False)["steps"].transform("max")
    return rows[rows["steps"] == most]


def best_budget(rows: pd.DataFrame) -> pd.DataFrame:
    """Each size's rows at the budget whose plateau (largest seed-mean over N) is highest.

    Every memorized-bit reading is a lower bound of the model's capacity (it stored at
    least that much), so the highest one is the tightest; a longer budget is not always
    it, because a size that has not converged can hold more of a small N at a short
    budget than of a larger N at a long one. Selecting over budgets also picks up the
    seed noise of the winner, so read it next to ``largest_budget``.
    """
    kept = []
    for _, f in rows.groupby(size_keys(rows), sort=True, dropna=False):
        means = f.groupby(["steps", "samples"])["memorized_bits"].mean()
        kept.append(f[f["steps"] == means.groupby(level="steps").max().idxmax()])
    return pd.concat(kept)


def budgets(rows: pd.DataFrame) -> pd.DataFrame:
    """Per size, data-set size N and budget: bits/parameter (mean over seeds, seed range)
    and its relative change from the previous budget of the same size and N divided by
    log₂ of the steps' ratio (the change per doubling; NaN at the first budget). Comparing
    like with like: the plateau's N moves with the budget, so a change taken across
    different N mixes two effects."""
    keys = [*size_keys(rows), "samples", "steps"]
    bpp = rows.assign(bpp=rows["memorized_bits"] / rows["params"])
    table = (
        bpp.groupby(keys, sort=True, dropna=False)
        .agg(params=("params", "first"), seeds=("seed", "size"), bits_per_param=("bpp", "mean"),
             bpp_low=("bpp", "min"), bpp_high=("bpp", "max"))
        .reset_index()
    )  # fmt: skip
    prev = table.groupby(keys[:-1], dropna=False)[["bits_per_param", "steps"]].shift()
    ratio = table["bits_per_param"] / prev["bits_per_param"] - 1
    table["change_per_doubling"] = ratio / np.log2(table["steps"] / prev["steps"])
    return table


def slope(params: np.ndarray, bits: np.ndarray, draws: int = 2000) -> tuple[float, float, float]:
    """Least-squares slope through the origin, and its 95 % bootstrap interval over sizes."""
    fit = float(params @ bits / (params @ params))
    rng = np.random.default_rng(0)
    picks = rng.integers(0, len(params), size=(draws, len(params)))
    boot = (params[picks] * bits[picks]).sum(1) / (params[picks] ** 2).sum(1)
    return fit, float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))


def plot(rows: pd.DataFrame, table: pd.DataFrame, out: Path) -> None:
    """Left: memorized bits against N per size (mean over seeds, each seed a dot).
    Right: plateau against parameters, with our slope and the paper's 3.6 bits/param."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    keys = size_keys(rows)
    for size, f in rows.groupby(keys, sort=True, dropna=False):
        means = f.groupby("samples")["memorized_bits"].mean()
        params = int(f["params"].iloc[0])
        s = dict(zip(keys, size, strict=True))
        lr = f", lr {s['lr']:.2g}" if "lr" in s else ""
        label = f"{params:,} params, V {s['vocab']}{lr}, {s['dtype']}"
        (line,) = left.plot(means.index, means.values, marker="o", label=label)
        left.scatter(f["samples"], f["memorized_bits"], s=8, color=line.get_color(), alpha=0.5)
        left.axhline(PAPER_BITS_PER_PARAM * params, color=line.get_color(), ls=":", lw=0.8)
    left.set(xscale="log", yscale="log", xlabel="data-set size N (sequences)")
    left.set(ylabel="memorized bits", title="memorized bits vs N (dotted: 3.6 bits/param)")
    left.legend(fontsize=8)
    p = table["params"].to_numpy(float)
    b = table["plateau_bits"].to_numpy(float)
    err = np.vstack([b - table["bits_low"], table["bits_high"] - b])
    right.errorbar(p, b, yerr=err, fmt="o", label="plateau (seed range)")
    fit, lo, hi = slope(p, b)
    grid = np.linspace(0, p.max() * 1.05, 50)
    right.plot(grid, fit * grid, label=f"fit: {fit:.2f} bits/param [{lo:.2f}, {hi:.2f}]")
    right.plot(grid, PAPER_BITS_PER_PARAM * grid, ls="--", label="paper: 3.6 bits/param")
    right.set(xlabel="parameters", ylabel="plateau (bits)", title="capacity vs parameters")
    right.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, out)


def main(argv: Sequence[str] | None = None) -> int:
    """Print the plateau table (markdown) and the fitted slope; write the figure."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("csv", type=Path, nargs="+", help="rows of experiments.capacity.run")
    p.add_argument("--out", type=Path, help="figure (PNG)")
    which = p.add_mutually_exclusive_group()
    which.add_argument(
        "--largest-budget",
        action="store_true",
        help="print the plateau at every budget, then read each size at its largest",
    )
    which.add_argument(
        "--best-budget",
        action="store_true",
        help="print the plateau at every budget, then read each size at its highest",
    )
    args = p.parse_args(argv)
    rows = read(args.csv)
    if args.largest_budget or args.best_budget:
        print(markdown(budgets(rows)) + "\n")
        rows = largest_budget(rows) if args.largest_budget else best_budget(rows)
    table = plateaus(rows)
    print(markdown(table))
    fit, lo, hi = slope(table["params"].to_numpy(float), table["plateau_bits"].to_numpy(float))
    print(f"\nslope through the origin: {fit:.3f} bits/param, 95 % bootstrap [{lo:.3f}, {hi:.3f}]")
    if args.out is not None:
        plot(rows, table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
