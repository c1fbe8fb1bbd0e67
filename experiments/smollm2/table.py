"""Markdown tables of the SmolLM2 pruning study from its results or logs.

    PYTHONPATH=src:. python -m experiments.smollm2.table smollm2.json [more.json | run.log ...]

Reads the study's JSON (``rows``) or its log (one JSON row per line, for a run stopped
early). One table: a row per (method, S), a column per allocation, each cell the
perplexity (mean ± std over calibration seeds, with the number of seeds when it is more
than one; magnitude pruning has no seed). The best allocation of a row is in bold, and the
last column counts, over the seeds, in how many the best non-uniform allocation beat
uniform (paired by seed).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ORDER = ("uniform", "alpha", "alpha_peak", "alpha_median", "alpha_farms")


def read_rows(paths: Iterable[Path]) -> pd.DataFrame:
    """Every pruned row of the files (JSON results or JSON-lines logs), de-duplicated."""
    rows: list[dict[str, Any]] = []
    for path in paths:
        text = path.read_text()
        try:
            rows += json.loads(text)["rows"]
        except (json.JSONDecodeError, KeyError, TypeError):
            rows += [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    frame = pd.DataFrame([r for r in rows if r.get("method") != "dense"])
    keys = ["method", "allocation", "sparsity", "seed"]
    return frame.drop_duplicates(subset=keys, keep="last").reset_index(drop=True)


def _cell(values: np.ndarray, best: bool) -> str:
    text = (
        f"{values.mean():,.1f}"
        if values.size == 1
        else (f"{values.mean():,.1f} ± {values.std(ddof=1):,.1f} ({values.size})")
    )
    return f"**{text}**" if best else text


def _wins(group: pd.DataFrame, allocations: Sequence[str]) -> str:
    """Seeds in which the best non-uniform allocation (by mean) beat uniform."""
    table = group.pivot_table(index="seed", columns="allocation", values="ppl", dropna=False)
    others = [a for a in allocations if a != "uniform" and a in table]
    if "uniform" not in table or not others:
        return ""
    best = min(others, key=lambda a: table[a].mean())
    both = table[["uniform", best]].dropna()
    return f"{best}: {int((both[best] < both['uniform']).sum())}/{len(both)}"


def markdown(frame: pd.DataFrame) -> str:
    """The table (module docstring)."""
    frame = frame.assign(seed=frame["seed"].fillna(-1))
    allocations = [a for a in ORDER if a in set(frame["allocation"])]
    head = ["method", "S", *allocations, "best non-uniform beats uniform (seeds)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for (method, s), group in frame.groupby(["method", "sparsity"], sort=True):
        means = {a: group.loc[group["allocation"] == a, "ppl"].mean() for a in allocations}
        best = min((m, a) for a, m in means.items() if np.isfinite(m))[1]
        cells = []
        for a in allocations:
            v = group.loc[group["allocation"] == a, "ppl"].to_numpy(dtype=float)
            cells.append(_cell(v, a == best) if v.size else "")
        lines.append(
            f"| {method} | {s} | " + " | ".join(cells) + f" | {_wins(group, allocations)} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("files", type=Path, nargs="+", help="study JSON results or logs")
    args = p.parse_args(argv)
    print(markdown(read_rows(args.files)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
