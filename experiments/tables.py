"""One markdown renderer for the experiments' summary tables, and one figure writer."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pandas as pd


def _cell(value: object, fmt: str) -> str:
    """A missing value as "—", a whole float as an integer, other floats with ``fmt``."""
    if value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if isinstance(value, float):
        return str(int(value)) if value.is_integer() else format(value, fmt)
    return str(value)


def markdown(frame: pd.DataFrame, fmt: str = ".3g") -> str:
    """A GitHub-flavoured markdown table of ``frame`` (floats formatted with ``fmt``;
    ``""`` prints them as Python does)."""
    lines = ["| " + " | ".join(map(str, frame.columns)) + " |"]
    lines.append("|" + "---|" * len(frame.columns))
    rows = frame.astype(object).itertuples(index=False)
    lines += ["| " + " | ".join(_cell(v, fmt) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def save_figure(fig: Any, out: Path, dpi: int = 110) -> None:
    """Write a matplotlib figure to ``out`` through a temporary file and a rename (no
    half-written figure), then close it."""
    import matplotlib.pyplot as plt

    tmp = out.with_suffix(".tmp" + out.suffix)
    fig.savefig(tmp, dpi=dpi)
    tmp.replace(out)
    plt.close(fig)
