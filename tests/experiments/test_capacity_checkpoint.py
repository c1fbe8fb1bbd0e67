"""A capacity run stopped by its time limit and resumed from its checkpoint is, bit for
bit, the run that never stopped; a checkpoint of another run is refused in one line."""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest
import torch

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from experiments.capacity import checkpoint as ckpt
from experiments.capacity import run as cap

# Two stacked models (N = 4 and 8), a cosine decay, three evaluations.
ARGS = ["--vocab", "16", "--seq-len", "16", "--width", "16", "--sizes", "4,8", "--lr", "0.01"]
ARGS += ["--max-steps", "300", "--eval-every", "100", "--decay", "cosine", "--clip", "1.0"]


def _cfgs(**change: object) -> list[cap.Config]:
    base = {"vocab": 16, "seq_len": 16, "width": 16, "lr": 0.01, "max_steps": 300}
    base |= {"eval_every": 100, "decay": "cosine", "clip": 1.0} | change
    return [cap.Config(samples=n, **base) for n in (4, 8)]  # type: ignore[arg-type]


def _params(path: Path) -> dict[str, torch.Tensor]:
    return dict(torch.load(path, weights_only=True)["params"])


def test_a_run_stopped_twice_and_resumed_is_the_run_never_stopped(tmp_path: Path) -> None:
    whole = cap.train_group(_cfgs(), tmp_path / "whole.jsonl", tmp_path / "whole.pt")
    parts = tmp_path / "parts.pt"
    trace = tmp_path / "parts.jsonl"
    # A zero time limit stops at the first evaluation of each call: steps 100, 200, then done.
    assert cap.train_group(_cfgs(), trace, parts, time_limit=0.0) is None
    first = _params(parts)
    assert cap.train_group(_cfgs(), trace, parts, time_limit=0.0) is None
    assert any(not torch.equal(first[n], p) for n, p in _params(parts).items())  # it moved on
    resumed = cap.train_group(_cfgs(), trace, parts, time_limit=0.0)
    assert whole is not None and resumed is not None and len(resumed) == 2
    for a, b in zip(whole, resumed, strict=True):
        assert {k: v for k, v in a.items() if k != "seconds"} == {
            k: v for k, v in b.items() if k != "seconds"
        }  # bits and final loss equal as floats, not approximately
    end, again = _params(tmp_path / "whole.pt"), _params(parts)
    assert all(torch.equal(end[n], again[n]) for n in end)
    assert trace.read_text() == (tmp_path / "whole.jsonl").read_text()
    steps = [json.loads(line)["step"] for line in trace.read_text().splitlines()]
    assert steps == [100, 100, 200, 200, 300, 300]


def test_a_finished_checkpoint_gives_its_rows_again_without_training(tmp_path: Path) -> None:
    where = tmp_path / "run.pt"
    rows = cap.train_group(_cfgs(), None, where)
    saved = where.stat().st_mtime_ns
    again = cap.train_group(_cfgs(), None, where)
    assert rows is not None and again is not None
    assert [r["memorized_bits"] for r in rows] == [r["memorized_bits"] for r in again]
    assert where.stat().st_mtime_ns == saved  # nothing trained, nothing written


def test_the_cli_stops_with_status_3_and_the_same_command_finishes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    whole, parts = tmp_path / "whole.csv", tmp_path / "parts.csv"
    assert cap.main([*ARGS, "--out", str(whole)]) == 0
    lines = [x for x in capsys.readouterr().err.splitlines() if ": step " in x]
    assert [x.split(",")[0] for x in lines] == [
        f"layers 1 width 16: step {s} of 300" for s in (100, 200, 300)
    ]
    last = [float(b.replace(",", "")) for b in lines[-1].split("memorized bits ")[1].split(", ")]
    assert last == pytest.approx(pd.read_csv(whole)["memorized_bits"].tolist(), abs=0.5)
    resume = [*ARGS, "--out", str(parts), "--checkpoint-dir", str(tmp_path / "ck")]
    assert cap.main([*resume, "--time-limit", "0"]) == cap.STOPPED
    assert not parts.exists() or len(pd.read_csv(parts)) == 0  # no row before the end
    assert (tmp_path / "ck" / "L1-W16-N4+8-s0.pt").exists()
    assert cap.main([*resume, "--time-limit", "0"]) == cap.STOPPED
    assert cap.main(resume) == 0
    a, b = pd.read_csv(whole), pd.read_csv(parts)
    columns = [c for c in cap.COLUMNS if c != "seconds"]
    pd.testing.assert_frame_equal(a[columns], b[columns])


def test_a_checkpoint_of_another_run_is_refused_in_one_line(tmp_path: Path) -> None:
    where = tmp_path / "run.pt"
    assert cap.train_group(_cfgs(), None, where, time_limit=0.0) is None
    with pytest.raises(ckpt.CheckpointError, match=r"run\.pt: saved for another run "):
        cap.train_group(_cfgs(max_steps=600), None, where)
    with pytest.raises(ckpt.CheckpointError, match=r"max_steps 300 ≠ 600"):
        cap.train_group(_cfgs(max_steps=600), None, where)
    with pytest.raises(ckpt.CheckpointError, match=r"samples 4 ≠ 5"):
        cap.train_group([replace(c, samples=c.samples + 1) for c in _cfgs()], None, where)
    with pytest.raises(ckpt.CheckpointError, match=r"2 models ≠ 1"):
        cap.train_group(_cfgs()[:1], None, where)
    broken = tmp_path / "broken.pt"
    broken.write_text("not a checkpoint")
    with pytest.raises(ckpt.CheckpointError, match=r"broken\.pt: not a capacity checkpoint \("):
        cap.train_group(_cfgs(), None, broken)


def test_the_cli_names_the_refused_checkpoint_and_exits(tmp_path: Path) -> None:
    resume = [*ARGS, "--out", str(tmp_path / "a.csv"), "--checkpoint-dir", str(tmp_path)]
    assert cap.main([*resume, "--time-limit", "0"]) == cap.STOPPED
    other = [a if a != "300" else "600" for a in resume]  # --max-steps 600
    with pytest.raises(SystemExit, match=r"L1-W16-N4\+8-s0\.pt: saved for another run"):
        cap.main(other)


def test_a_time_limit_needs_a_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cap.main([*ARGS, "--time-limit", "10"])
    assert stop.value.code == 2
    assert "--time-limit needs --checkpoint-dir" in capsys.readouterr().err
    with pytest.raises(ValueError, match="a time limit needs a checkpoint"):
        cap.train_group(_cfgs(), time_limit=1.0)


def test_a_checkpoint_older_than_a_setting_reads_it_as_its_default(tmp_path: Path) -> None:
    where = tmp_path / "run.pt"
    assert cap.train_group(_cfgs(clip=0.0), None, where, time_limit=0.0) is None
    payload = torch.load(where, weights_only=True)
    for config in payload["configs"]:
        del config["clip"]  # written before --clip existed
    torch.save(payload, where)
    assert cap.train_group(_cfgs(clip=0.0), None, where, time_limit=0.0) is None  # goes on
    with pytest.raises(ckpt.CheckpointError, match=r"clip 0\.0 ≠ 1\.0"):
        cap.train_group(_cfgs(clip=1.0), None, where)
