"""CLI: `layerscope track` (incremental) and `layerscope status` (exit 1 on alerts)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from layerscope.cli import main
from layerscope.track import RunStore


@pytest.fixture
def ckpts(tmp_path: Path) -> Path:
    d = tmp_path / "ck"
    d.mkdir()
    for step in (100, 300, 200):
        g = torch.Generator().manual_seed(step)
        torch.save({"a.weight": torch.randn(64, 32, generator=g)}, d / f"step_{step}.pt")
    return d


def test_track_then_status(ckpts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = str(tmp_path / "runs.db")
    assert main(["track", str(ckpts), "--run", "r", "--store", db, "-q"]) == 0
    assert RunStore(db).steps("r")["step"].tolist() == [100, 200, 300]
    torch.save({"a.weight": torch.randn(64, 32)}, ckpts / "step_400.pt")
    assert main(["track", str(ckpts), "--run", "r", "--store", db]) == 0
    err = capsys.readouterr().err
    assert "1 new checkpoint(s)" in err and "step 400" in err
    assert main(["status", "r", "--store", db]) == 0
    assert "no alerts" in capsys.readouterr().out
    RunStore(db).log_alert("r", 400, "warning", "alpha below 2 with traps", {})
    assert main(["status", "r", "--store", db]) == 1
    assert "alpha below 2" in capsys.readouterr().out


def test_status_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["status", "r", "--store", str(tmp_path / "missing.db")]) == 2
    assert "no layerscope run store" in capsys.readouterr().err
