"""One markdown renderer for the experiments' summary tables."""

from __future__ import annotations

import math

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
