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
    # every metric by default: the phase detector reads the trap scale
    assert RunStore(db).layer_history("r", ("trap_scale",))["trap_scale"].notna().all()
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


LLC_FLAGS = [
    "--llc-data", "_llc_fixtures:make_loader", "--llc-loss", "nll-gauss",
    "--llc-model", "_llc_fixtures:build_model", "--llc-chains", "2", "--llc-draws", "10",
    "--llc-burnin", "5", "--llc-seed", "4", "--llc-device", "cpu",
]  # fmt: skip


@pytest.fixture
def llc_ckpts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import _llc_fixtures

    d = tmp_path / "llc"
    d.mkdir()
    for step in (10, 20, 30):
        torch.save(_llc_fixtures.build_model(seed=step).state_dict(), d / f"step_{step}.pt")
    return d


def test_track_llc_stores_each_new_checkpoint(
    llc_ckpts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import _llc_fixtures
    from layerscope.cli._llc_inputs import nll_gauss_loss
    from layerscope.probes.llc import estimate

    db = str(tmp_path / "runs.db")
    argv = ["track", str(llc_ckpts), "--run", "r", "--store", db, *LLC_FLAGS]
    assert main(argv) in (0, 1)
    llc = RunStore(db).scalar_history("r").set_index("step")
    assert llc.index.tolist() == [10, 20, 30] and llc["llc_warnings"].notna().all()
    model = _llc_fixtures.build_model(seed=20).eval()
    direct = estimate(
        model, _llc_fixtures.make_loader(), nll_gauss_loss, num_chains=2, num_draws=10,
        burnin=5, seed=4,
    )  # fmt: skip
    assert llc.loc[20, "llc"] == pytest.approx(direct.mean, rel=1e-12)
    captured = capsys.readouterr()
    assert "llc step 30" in captured.err
    assert f"{llc.loc[20, 'llc']:.2f}" in captured.out  # status shows the llc column
    torch.save(_llc_fixtures.build_model(seed=40).state_dict(), llc_ckpts / "step_40.pt")
    assert main(argv) in (0, 1)
    err = capsys.readouterr().err
    assert "llc step 40" in err and "llc step 10" not in err  # only the new one
    assert RunStore(db).scalar_history("r")["step"].tolist() == [10, 20, 30, 40]


def test_track_llc_every_and_errors(
    llc_ckpts: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "runs.db")
    argv = ["track", str(llc_ckpts), "--run", "r", "--store", db, "-q", *LLC_FLAGS]
    html = tmp_path / "r.html"
    assert main([*argv, "--llc-every", "2", "--html", str(html)]) in (0, 1)
    assert RunStore(db).scalar_history("r")["step"].tolist() == [10, 30]
    assert "llc_std" in html.read_text()  # the report charts the stored scalars
    capsys.readouterr()
    instance = [a if a != "_llc_fixtures:build_model" else "_llc_fixtures:trained" for a in argv]
    assert main([*instance, "--run", "other"]) in (0, 1)  # a module instance is fine too
    assert main([*argv[:6], "--llc-loss", "mse"]) == 2
    assert "--llc-data pkg.module:make_loader" in capsys.readouterr().err
    assert main([*argv, "--run", "misfit", "--llc-model", "torch.nn:Identity"]) == 2
    assert (
        "step_10.pt: does not fit the model (unexpected key '0.weight'" in capsys.readouterr().err
    )
    assert len(RunStore(db).steps("misfit")) == 0  # not stored: retried on the next run
    assert main([*argv, "--llc-data", "nosuch:make"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "nosuch:make: cannot import" in err
