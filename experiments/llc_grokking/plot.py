"""Plot LLC, test loss and accuracies of llc_grokking CSVs; print a summary table.

"after" in the table = from the first step with test accuracy ≥ 99 % on (for a run
that never gets there: the second half of the run).

    python -m experiments.llc_grokking.plot --out docs/llc_grokking/llc_grokking.png \\
        "seed 0=docs/llc_grokking/seed0.csv" "no weight decay=docs/llc_grokking/wd0.csv"
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

from experiments.tables import markdown, save_figure


def summary(runs: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """Per run: the LLC peak (step, value, accuracies there), the first step with test
    accuracy ≥ 99 %, the largest and mean LLC from then on relative to the peak, and the
    Spearman correlation of LLC and test loss from the peak on."""
    rows = []
    for label, f in runs.items():
        peak = int(np.argmax(f["llc"]))
        grokked = f["test_acc"].to_numpy() >= 0.99
        first = int(np.argmax(grokked)) if grokked.any() else None
        after = f["llc"].iloc[first:] if first is not None else f["llc"].iloc[len(f) // 2 :]
        rho = spearmanr(f["llc"].iloc[peak:], f["test_loss"].iloc[peak:]).statistic
        rows.append(
            {
                "run": label,
                "peak_step": int(f["step"].iloc[peak]),
                "peak_llc": float(f["llc"].iloc[peak]),
                "train_acc@peak": float(f["train_acc"].iloc[peak]),
                "test_acc@peak": float(f["test_acc"].iloc[peak]),
                "step_test_acc≥0.99": int(f["step"].iloc[first]) if first is not None else None,
                "max_after/peak": float(after.max() / f["llc"].iloc[peak]),
                "mean_after/peak": float(after.mean() / f["llc"].iloc[peak]),
                "final_llc": float(f["llc"].iloc[-1]),
                "spearman(llc,test_loss)": float(rho),
                "max_llc_warnings": int(f["llc_warnings"].max()),
            }
        )
    return pd.DataFrame(rows)


def plot(runs: dict[str, pd.DataFrame], out: Path) -> None:
    """Top row: LLC (left axis) and test loss (right axis); bottom row: accuracies."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        2, len(runs), figsize=(3.6 * len(runs), 5.2), sharex="col", squeeze=False
    )
    for k, (label, frame) in enumerate(runs.items()):
        top, bottom = axes[0, k], axes[1, k]
        top.errorbar(frame["step"], frame["llc"], yerr=frame["llc_std"], color="C3", lw=1.2)
        top.set_title(label, fontsize=10)
        top.set_ylim(0, None)
        loss = top.twinx()
        loss.semilogy(frame["step"], frame["test_loss"], color="C0", lw=1, ls="--")
        if k == 0:
            top.set_ylabel("LLC on training data", color="C3")
        if k == len(runs) - 1:
            loss.set_ylabel("test loss (dashed)", color="C0")
        bottom.plot(frame["step"], frame["train_acc"], label="train acc", color="C2")
        bottom.plot(frame["step"], frame["test_acc"], label="test acc", color="C1")
        bottom.set_xlabel("step")
        bottom.set_ylim(-0.02, 1.02)
    axes[1, 0].legend(loc="center right", fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    save_figure(fig, out)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("runs", nargs="+", help="LABEL=CSV (one panel column each)")
    p.add_argument("--out", type=Path, required=True, help="PNG to write")
    args = p.parse_args(argv)
    runs = {}
    for spec in args.runs:
        label, sep, path = spec.rpartition("=")
        if not sep:
            p.error(f"run {spec!r}: expected LABEL=CSV")
        runs[label] = pd.read_csv(path)
    plot(runs, args.out)
    print(markdown(summary(runs)))
    print(f"figure: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
