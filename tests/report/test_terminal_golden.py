"""Golden outputs of the terminal tables of ``compare`` and ``diff``.

The inputs are plain data (rows a user would see, incl. an untouched layer, a shaky fit,
a LoRA update of rank 8 and missing values), so the expected text is exact: a change
to a table shows up here as a diff to review. ``diff`` runs through the command line on
saved scan results; ``compare`` renders a result with the same console the CLI uses on a
pipe. Regenerate after an intended change with ``LAYERSCOPE_UPDATE_GOLDEN=1``.
"""

from __future__ import annotations

import io
import os
from pathlib import Path

import pandas as pd
import pytest
from rich.console import Console

from layerscope.cli import main
from layerscope.compare_result import (
    DUPLICATED_COLUMNS,
    MISMATCH_COLUMNS,
    CompareResult,
    rank_worst,
    summarize_compare,
)
from layerscope.report.terminal_compare import render_compare
from layerscope.results import ScanResult, summarize

GOLDEN = Path(__file__).parent / "golden"
NAN = float("nan")


def check_golden(name: str, text: str) -> None:
    # Rich pads centred titles with spaces; editors strip them, so compare without.
    text = "".join(f"{line.rstrip()}\n" for line in text.splitlines())
    path = GOLDEN / name
    if os.environ.get("LAYERSCOPE_UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text(), f"{name} changed; see the module docstring"


def plain(render: object) -> str:
    """What the CLI prints on a pipe: no colour, no terminal codes, fixed width."""
    buffer = io.StringIO()
    console = Console(file=buffer, width=220, color_system=None, force_terminal=False)
    render(console)  # type: ignore[operator]
    return buffer.getvalue()


def _compare_result(rows: list[dict[str, object]], mode: str) -> CompareResult:
    layers = pd.DataFrame.from_records(rows)
    layers.insert(0, "layer_id", range(len(layers)))
    duplicated = pd.DataFrame(
        [("tuned", "layers.1.weight", "layers.3.weight", 2.5e-7)], columns=list(DUPLICATED_COLUMNS)
    )
    mismatch = pd.DataFrame(columns=list(MISMATCH_COLUMNS))
    summary = summarize_compare(layers, duplicated, ["head.weight"], [], mismatch)
    summary["worst"] = rank_worst(layers)
    meta = {"base": "base", "tuned": "tuned", "mode": mode}
    return CompareResult(layers, duplicated, ["head.weight"], [], mismatch, summary, meta)


DENSE_ROWS: list[dict[str, object]] = [
    {
        "name": "layers.0.weight", "kind": "linear", "N": 256, "M": 128, "status": "ok",
        "alpha": 7.4123, "rel_update": 0.021034, "update_rank": 128, "base_alpha": 3.5149,
        "tuned_alpha": 3.6021, "delta_alpha": 0.0872, "fit_quality": "good",
        "verdict": "under-trained", "reason": "alpha 7.41 > 6: near-random spectrum",
    },
    {
        "name": "layers.1.weight", "kind": "linear", "N": 256, "M": 128, "status": "untouched",
        "alpha": NAN, "rel_update": 0.0, "update_rank": NAN, "base_alpha": 3.1,
        "tuned_alpha": 3.1, "delta_alpha": 0.0, "fit_quality": None,
        "verdict": "untouched", "reason": "update ‖ΔW‖/‖W‖ = 0.0e+00 ≤ 1e-06",
    },
    {
        "name": "layers.2.weight", "kind": "attention-q", "N": 128, "M": 128, "status": "ok",
        "alpha": 3.2051, "rel_update": 0.0052, "update_rank": 120, "base_alpha": 2.9,
        "tuned_alpha": 2.7549, "delta_alpha": -0.1451, "fit_quality": "flat-ks",
        "verdict": "ok", "reason": "alpha 3.21 in [2, 6] (shaky fit: flat-ks, tail n=14)",
    },
    {
        "name": "layers.3.weight", "kind": "linear", "N": 256, "M": 128, "status": "ok",
        "alpha": 1.6, "rel_update": 1.3e-4, "update_rank": 64, "base_alpha": 2.2,
        "tuned_alpha": 1.95, "delta_alpha": -0.25, "fit_quality": "good",
        "verdict": "over-trained", "reason": "alpha 1.60 < 2: very heavy tail",
    },
]  # fmt: skip

LORA_ROWS: list[dict[str, object]] = [
    {
        "name": "encoder.layer.0.attention.self.query.weight", "kind": "lora", "N": 384,
        "M": 384, "status": "ok", "lora_rank": 16, "alpha": 4.3187, "rel_update": 0.01834,
        "update_rank": 16, "base_alpha": 5.1312, "tuned_alpha": 5.0874, "delta_alpha": -0.0438,
        "fit_quality": "good", "verdict": "ok", "reason": "alpha 4.32 in [2, 6]",
    },
    {
        "name": "encoder.layer.0.attention.self.key.weight", "kind": "lora", "N": 384,
        "M": 384, "status": "ok", "lora_rank": 8, "alpha": NAN, "rel_update": 0.01297,
        "update_rank": 8, "base_alpha": 4.7721, "tuned_alpha": 5.2183, "delta_alpha": 0.4462,
        "fit_quality": None, "verdict": "low-rank",
        "reason": "rank 8: too few eigenvalues for a tail fit",
    },
]  # fmt: skip


@pytest.mark.parametrize(("rows", "mode"), [(DENSE_ROWS, "dense"), (LORA_ROWS, "lora")])
def test_compare_tables(rows: list[dict[str, object]], mode: str) -> None:
    result = _compare_result(rows, mode)
    check_golden(f"compare_{mode}.txt", plain(lambda c: render_compare(result, c)))


def _scan(alphas: dict[str, float], verdicts: dict[str, str], traps: dict[str, int]) -> ScanResult:
    names = list(alphas)
    layers = pd.DataFrame(
        {
            "layer_id": range(len(names)),
            "name": names,
            "kind": "linear",
            "N": 64,
            "M": 32,
            "status": "ok",
            "verdict": [verdicts[n] for n in names],
            "alpha": [alphas[n] for n in names],
            "num_traps": [traps.get(n, 0) for n in names],
        }
    )
    skipped = pd.DataFrame(columns=["name", "shape", "reason"])
    return ScanResult(layers, skipped, summarize(layers), {"source": "run"})


def test_diff_table_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    a = _scan(
        {"fc1.weight": 3.1234, "fc2.weight": 2.5, "fc3.weight": 5.9, "old.weight": 4.0},
        {"fc1.weight": "ok", "fc2.weight": "ok", "fc3.weight": "ok", "old.weight": "ok"},
        {},
    )
    b = _scan(
        {"fc1.weight": 3.0049, "fc2.weight": 1.8766, "fc3.weight": 6.412, "new.weight": NAN},
        {"fc1.weight": "ok", "fc2.weight": "over-trained", "fc3.weight": "under-trained",
         "new.weight": "unknown"},
        {"fc2.weight": 3},
    )  # fmt: skip
    a.to_json(tmp_path / "a.json")
    b.to_json(tmp_path / "b.json")
    assert main(["diff", str(tmp_path / "a.json"), str(tmp_path / "b.json")]) == 0
    check_golden("diff.txt", capsys.readouterr().out)
