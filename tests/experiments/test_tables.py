"""The experiments' one markdown table renderer."""

from __future__ import annotations

import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from experiments.tables import markdown


def test_cells_missing_whole_and_formatted() -> None:
    frame = pd.DataFrame({"a": [1.0, float("nan")], "b": [0.123456, 12.3456], "c": ["x", None]})
    frame["d"] = pd.array([3, None], dtype="Int64")
    assert markdown(frame).splitlines() == [
        "| a | b | c | d |",
        "|---|---|---|---|",
        "| 1 | 0.123 | x | 3 |",
        "| — | 12.3 | — | — |",
    ]
    assert markdown(frame, fmt="").splitlines()[3] == "| — | 12.3456 | — | — |"
