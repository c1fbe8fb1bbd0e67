"""The capacity traces as curves: runs told apart, parameter counts, growth, the figure."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from experiments.capacity import curves
from experiments.capacity import run as cap

from layerscope.probes.memorization import count_parameters


@pytest.mark.parametrize(("layers", "width", "vocab", "seq_len"), [(1, 8, 16, 32), (2, 32, 64, 64)])
def test_the_parameter_count_is_gpt2s(layers: int, width: int, vocab: int, seq_len: int) -> None:
    model = cap.build_model(cap.Config(layers=layers, width=width, vocab=vocab, seq_len=seq_len))
    assert curves.parameters(layers, width, vocab, seq_len) == count_parameters(model)


def _line(seed: int, step: int, bits: float, **change: object) -> str:
    run = {"layers": 1, "width": 8, "vocab": 16, "seq_len": 32, "dtype": "float32"}
    run |= {"samples": 64, "seed": seed, "max_steps": 300, "batch": 128, "decay": "cosine"}
    run |= {"clip": 0.0, "lr": 0.01, "step": step, "bits": bits} | change
    return json.dumps(run) + "\n"


@pytest.fixture
def trace(tmp_path: Path) -> Path:
    path = tmp_path / "trace.jsonl"
    lines = [_line(0, 100, 1000.0), _line(0, 200, 1100.0), _line(0, 300, 1210.0)]
    lines += [_line(0, 300, 1210.0)]  # the same evaluation written twice (a resumed run)
    lines += [_line(1, 100, 900.0), _line(1, 200, 990.0)]  # still running
    old = json.loads(_line(0, 100, 500.0, samples=128))
    del old["clip"], old["batch"]  # a trace from before these settings
    lines += [json.dumps(old) + "\n"]
    path.write_text("".join(lines))
    return path


def test_runs_are_told_apart_with_their_last_growth(trace: Path) -> None:
    lines = curves.read([trace])
    assert len(lines) == 6  # the repeated line once
    table = curves.runs(lines).set_index(["samples", "seed"])
    params = curves.parameters(1, 8, 16, 32)
    assert table.loc[(64, 0), "bits_per_param"] == pytest.approx(1210.0 / params)
    assert table.loc[(64, 0), "last_growth"] == pytest.approx(0.1)
    assert bool(table.loc[(64, 0), "finished"]) and not bool(table.loc[(64, 1), "finished"])
    assert table.loc[(64, 1), "step"] == 200
    old = table.loc[(128, 0)]
    assert (old["clip"], old["batch"], old["evaluations"]) == (0.0, 128, 1)


def test_the_command_prints_the_runs_and_draws_them(
    trace: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "curves.png"
    assert curves.main([str(trace), "--out", str(out)]) == 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert capsys.readouterr().out.count("\n| 1 | 8 |") == 3
    with pytest.raises(SystemExit) as stop:
        curves.main([str(trace), "--min-budget", "1000"])
    assert stop.value.code == 2
    with pytest.raises(SystemExit) as stop:
        curves.main([str(tmp_path / "none.jsonl")])
    assert stop.value.code == 2
    assert "no such trace" in capsys.readouterr().err
