"""One tracker core: every option reaches every entry point, one alert path everywhere."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from layerscope.cli import main
from layerscope.functional.phases import PhaseRules
from layerscope.track import (
    Alert,
    LayerscopeHFCallback,
    LayerscopeLightningCallback,
    Monitor,
    RunStore,
    track_checkpoints,
)
from layerscope.track.llc import LLCTracker
from layerscope.track.options import TrackOptions
from layerscope.track.tracker import replay

from .conftest import mlp


def _detector(store: RunStore, run_id: int, step: int) -> list[Alert]:
    return [Alert(step, "info", f"seen {step}", {"x": 1}, evidence_step=step - 1)]


def _hook(alert: Alert) -> None:
    """An on_alert hook (module level, so the callbacks stay picklable)."""


def _every_option(tmp_path: Path) -> dict[str, Any]:
    """A non-default value for every TrackOptions field, and a scan option."""
    return {
        "every": 7,
        "store": tmp_path / "runs.db",
        "metrics": ("powerlaw", "norms", "traps"),
        "detector": _detector,
        "rules": PhaseRules(growth=3.0),
        "on_alert": _hook,
        "time_budget": 0.5,
        "background": False,
        "seed": 11,
        "probe": torch.zeros(2, 16),
        "llc": LLCTracker(data=[torch.zeros(1)], loss_fn=lambda m, b: torch.zeros(()), every=9),
        "meta": {"lr": 0.1},
        "include": ("0.*",),
    }


def test_the_option_fields_are_the_ones_this_test_passes(tmp_path: Path) -> None:
    fields = {f.name for f in dataclasses.fields(TrackOptions)} - {"scan"}
    assert fields == set(_every_option(tmp_path)) - {"include"}


def _check(options: TrackOptions, given: dict[str, Any]) -> None:
    for name, value in given.items():
        if name == "include":
            assert options.scan["include"] == value
            assert options.scan_kwargs()["include"] == value
        else:
            assert getattr(options, name) is value or getattr(options, name) == value, name


@pytest.mark.parametrize("entry", ["monitor", "hf", "lightning"])
def test_every_monitor_option_passes_through_each_live_entry_point(
    entry: str, tmp_path: Path
) -> None:
    given = _every_option(tmp_path)
    model = mlp()
    if entry == "monitor":
        with Monitor(model, run="m", **given) as monitor:
            _check(monitor.options, given)
        return
    every = given.pop("every")
    cls = LayerscopeHFCallback if entry == "hf" else LayerscopeLightningCallback
    callback = cls(every, run="c", **given)
    _check(callback.options, {**given, "every": every})
    callback._start(model, "c", entry)  # what on_train_begin / on_fit_start do
    assert callback.monitor is not None
    _check(callback.monitor.options, {k: v for k, v in given.items() if k != "meta"})
    with RunStore(given["store"]) as store:
        assert store.run_meta("c")["lr"] == 0.1 and store.run_meta("c")["framework"] == entry
    callback.close()


@pytest.fixture
def shifting(tmp_path: Path) -> Path:
    """Checkpoints of an MLP whose middle layer gets a growing mean shift (a growing trap
    while the weights grow): steps 0, 1000, ..., 11000."""
    d = tmp_path / "ck"
    d.mkdir()
    model = mlp()
    for i in range(12):
        with torch.no_grad():
            model[2].weight += 0.02 * 1.5**i
        torch.save(model.state_dict(), d / f"step_{1000 * i}.pt")
    return d


def test_track_checkpoints_takes_the_same_options(shifting: Path, tmp_path: Path) -> None:
    seen: list[Alert] = []
    given = {
        k: v for k, v in _every_option(tmp_path).items() if k not in TrackOptions().live_only()
    }
    given = {**given, "on_alert": seen.append}
    for name in ("every", "time_budget", "background", "probe", "llc"):
        given.pop(name)
    track_checkpoints(shifting, "t", **given)
    with RunStore(given["store"]) as store:
        assert store.run_meta("t")["lr"] == 0.1
        names = set(store.layer_history("t")["name"])
        assert names == {"0.weight"}  # the scan option reached the scan
        alerts = store.alerts("t")
    assert len(seen) == 12 and alerts["step"].tolist() == list(range(0, 12_000, 1000))
    assert alerts["evidence_step"].tolist() == [s - 1 for s in alerts["step"]]
    with pytest.raises(ValueError, match=r"probe need.* a live model"):
        track_checkpoints(shifting, "t", store=given["store"], probe=torch.zeros(1, 16))


def test_track_cli_stores_alerts_as_the_monitor_does(
    shifting: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = str(tmp_path / "cli.db")
    rule = ["--rule", "trap_growth=1.5"]
    assert main(["track", str(shifting), "--run", "cli", "--store", db, "-q", *rule]) == 1
    with Monitor(mlp(), run="live", store=db, every=1000, background=False,
                 rules={"trap_growth": 1.5}) as monitor:  # fmt: skip
        for i in range(12):
            with torch.no_grad():
                monitor.model[2].weight += 0.02 * 1.5**i
            monitor.step(1000 * i)
    with RunStore(db) as store:
        cli, live = store.alerts("cli"), store.alerts("live")
    assert len(cli) == 1
    assert cli[["step", "evidence_step", "message"]].equals(
        live[["step", "evidence_step", "message"]]
    )
    assert cli["evidence_step"].iloc[0] < cli["step"].iloc[0]
    capsys.readouterr()
    assert main(["status", "cli", "--store", db, "--format", "json", *rule]) == 1
    data = json.loads(capsys.readouterr().out)
    assert data["schema_version"] == 1 and data["phase"] == "over-fitting"
    assert data["exit_code"] == 1 and data["alerts"][0]["stored"] is True
    assert data["alerts"][0]["evidence_step"] == int(cli["evidence_step"].iloc[0])
    assert [s["step"] for s in data["steps"]] == list(range(0, 12_000, 1000))
    assert (
        data["steps"][0]["phase"] == "cannot-judge"
        and "none is that early" in data["steps"][0]["reason"]
    )


def test_replay_of_a_run_tracked_without_the_detector(shifting: Path, tmp_path: Path) -> None:
    db = tmp_path / "r.db"
    assert main(["track", str(shifting), "--run", "r", "--store", str(db), "-q",
                 "--no-detector", "--all", "--rule", "trap_growth=1.5"]) == 1  # fmt: skip
    options = TrackOptions(rules={"trap_growth": 1.5})
    with RunStore(db) as store:
        assert len(store.alerts("r")) == 0
        [alert] = replay(store, "r", options)
        assert replay(store, "r", options) == []  # stored once
        assert store.alerts("r")["step"].tolist() == [alert.step]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rule", "growth=0.5"], "growth must be > 1"),
        (["--rule", "windw=3"], "unknown phase rule(s) windw"),
        (["--rule", "trap_scale"], "expected NAME=VALUE"),
        (["--rule", "trap_scale=big"], "is not a number"),
        (["--rules", "missing.toml"], "missing.toml: cannot read the rules"),
    ],
)
def test_bad_rules_are_one_line_errors(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "x.db"
    RunStore(db).start_run("r")
    assert main(["status", "r", "--store", str(db), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and message in err


def test_rules_file_and_help_document_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text("[phases]\ngrowth = 3.0\npersist = 1.2\n")
    db = tmp_path / "x.db"
    RunStore(db).start_run("r")
    assert main(["status", "r", "--store", str(db), "--rules", str(rules), "-q"]) == 0
    for command in ("track", "status"):
        with pytest.raises(SystemExit):
            main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "exit codes: 0" in text and "1 it has an alert" in text and "over-fitting" in text
