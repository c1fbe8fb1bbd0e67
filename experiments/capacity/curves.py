"""How the memorized bits of each capacity run grow with the steps: the traces as curves.

A capacity reading is a lower bound until more steps stop raising it, so the question
for every long run is whether its curve has flattened (Morris et al. 2025, arXiv
2505.24832, train "usually around 1M steps"). This reads the JSON-lines traces that
``experiments.capacity.run --trace`` writes (one line per model and evaluation), tells
the runs apart by their settings, prints per run the last reading and the growth over
its last two evaluations, and draws bits per parameter against steps, one line per run.

The parameter count is GPT-2's with tied embeddings: V·d + S·d (token and position
embeddings) + L·(12d² + 13d) (per block: attention 3d² + 3d and d² + d, MLP 4d² + 4d and
4d² + d, two LayerNorms 4d) + 2d (final LayerNorm); the tests check it against
``GPT2LMHeadModel``.

    python -m experiments.capacity.curves docs/memorization/capacity-sweep-trace.jsonl \\
        --min-budget 160000 --out docs/memorization/capacity-curves.png
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from experiments.tables import markdown, save_figure

# One run: its model, data set, seed and recipe. A trace line's "lr" is the rate of its
# step (the schedule's), so the peak rate is not part of the key; the width sets it here.
RUN = ["layers", "width", "vocab", "seq_len", "dtype", "samples", "seed", "max_steps",
       "batch", "decay", "clip"]  # fmt: skip


def parameters(layers: int, width: int, vocab: int, seq_len: int) -> int:
    """GPT-2's parameter count with a tied unembedding (see the module docstring)."""
    d = width
    return vocab * d + seq_len * d + layers * (12 * d * d + 13 * d) + 2 * d


def read(files: Sequence[Path]) -> pd.DataFrame:
    """Every trace line, one row per run and evaluation (a repeated line kept once), with
    the parameter count and bits per parameter."""
    lines = pd.concat([pd.read_json(f, lines=True) for f in files], ignore_index=True)
    defaults = {"clip": 0.0, "batch": 128, "decay": "none", "dtype": "float32"}
    for column, value in defaults.items():  # older traces lack later settings
        lines[column] = lines[column].fillna(value) if column in lines else value
    lines = lines.drop_duplicates([*RUN, "step"], keep="last")
    shape = lines[["layers", "width", "vocab", "seq_len"]].astype(int)
    lines["params"] = [parameters(*row) for row in shape.itertuples(index=False)]
    lines["bits_per_param"] = lines["bits"] / lines["params"]
    return lines.sort_values([*RUN, "step"], ignore_index=True)


def runs(lines: pd.DataFrame) -> pd.DataFrame:
    """Per run: steps reached, last bits/parameter and its growth over the last two
    evaluations (relative; NaN with one evaluation), and whether it reached its budget."""
    out = []
    for key, f in lines.groupby(RUN, sort=True, dropna=False):
        last = f["bits_per_param"].to_numpy()
        growth = last[-1] / last[-2] - 1 if len(last) >= 2 else float("nan")
        reached = int(f["step"].iloc[-1])
        out.append(
            {
                **dict(zip(RUN, key, strict=True)),
                "params": int(f["params"].iloc[0]),
                "evaluations": len(f),
                "step": reached,
                "finished": reached >= int(f["max_steps"].iloc[0]),
                "bits_per_param": float(last[-1]),
                "last_growth": float(growth),
            }
        )
    return pd.DataFrame(out)


def plot(lines: pd.DataFrame, out: Path) -> None:
    """Bits per parameter against steps (log axis): one panel per width, one line per run,
    colour by step budget, line style by N; an open circle where a run is still going."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    widths = sorted(lines["width"].unique())
    fig, axes = plt.subplots(1, len(widths), figsize=(5.2 * len(widths), 4.8), sharey=True,
                             squeeze=False)  # fmt: skip
    budgets = sorted(lines["max_steps"].unique())
    colours = {b: plt.get_cmap("tab10")(i % 10) for i, b in enumerate(budgets)}
    dashes = ["-", "--", ":", "-."]
    styles = {n: dashes[i % 4] for i, n in enumerate(sorted(lines["samples"].unique()))}
    for ax, width in zip(axes[0], widths, strict=True):
        mine = lines[lines["width"] == width]
        for key, f in mine.groupby(RUN, sort=True, dropna=False):
            run = dict(zip(RUN, key, strict=True))
            label = f"N {run['samples']}, seed {run['seed']}, {int(run['max_steps']):,} steps"
            colour = colours[run["max_steps"]]
            ax.plot(f["step"], f["bits_per_param"], styles[run["samples"]], color=colour,
                    marker=".", label=label)  # fmt: skip
            if int(f["step"].iloc[-1]) < int(run["max_steps"]):
                ax.plot(f["step"].iloc[-1:], f["bits_per_param"].iloc[-1:], "o", mfc="none",
                        color=colour, ms=10)  # fmt: skip
        params = int(mine["params"].iloc[0])
        ax.set(xscale="log", xlabel="steps", title=f"width {width} ({params:,} parameters)")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no crowded labels
        ax.legend(fontsize=7, loc="upper left")
    axes[0][0].set(ylabel="memorized bits / parameter")
    fig.suptitle("memorized bits per parameter during each run (open circle: still running)")
    fig.tight_layout()
    save_figure(fig, out)


def main(argv: Sequence[str] | None = None) -> int:
    """Print one row per run (markdown); write the figure."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("trace", type=Path, nargs="+", help="JSON lines of capacity.run --trace")
    p.add_argument("--width", type=int, action="append", help="only these widths (repeat)")
    p.add_argument("--min-budget", type=int, default=0, help="only runs of at least N steps")
    p.add_argument("--out", type=Path, help="figure (PNG)")
    args = p.parse_args(argv)
    missing = [str(f) for f in args.trace if not f.is_file()]
    if missing:
        p.error(f"no such trace: {', '.join(missing)}")
    lines = read(args.trace)
    lines = lines[lines["max_steps"] >= args.min_budget]
    if args.width:
        lines = lines[lines["width"].isin(args.width)]
    if lines.empty:
        p.error("no run in the traces matches --width / --min-budget")
    print(markdown(runs(lines)))
    if args.out is not None:
        plot(lines, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
