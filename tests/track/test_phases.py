"""Phases read from the run store; the PhaseDetector inside a Monitor; ``status`` exits 1."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from layerscope.cli import main
from layerscope.functional.phases import CONVERGED, OVERFIT, UNJUDGED, PhaseRules
from layerscope.functional.phases import UNDER as UNDER_TRAINED
from layerscope.results import ScanResult
from layerscope.track import Alert, Monitor, RunStore
from layerscope.track.phases import PhaseDetector, phases_from_history, run_phases

from .conftest import mlp

RULES = PhaseRules(trap_scale=1.0, trap_growth=1.5)


def _scan(step: int) -> ScanResult:
    """Two layers: 'a' steady; 'b' with a trap growing ×1.6 per 1,000 steps from 6,000."""
    grow = 0.2 * 1.6 ** max(0, step // 1000 - 5)
    layers = pd.DataFrame(
        {
            "layer_id": [0, 1],
            "name": ["a.weight", "b.weight"],
            "kind": "dense",
            "N": 64,
            "M": 32,
            "alpha": [3.0, 2.5],
            "trap_scale": [0.0, grow],
            "log_norm": [1.0, 1.0 + 0.05 * step / 1000],
            "num_traps": [0, int(grow > 1)],
            "ERG_gap": [3, -2],
        }
    )
    return ScanResult(layers, pd.DataFrame(columns=["name", "shape", "reason"]), {}, {})


def test_phases_from_the_store_and_one_alert_per_entry(store: RunStore) -> None:
    detector = PhaseDetector(RULES)
    run_id = store.start_run("syn")
    fired: list[Alert] = []
    for step in range(0, 15_000, 1000):
        store.log_scan(run_id, step, _scan(step))
        new = detector(store, run_id, step)
        for alert in new:  # the tracker stores them; the detector only reports new ones
            store.log_alert(
                run_id,
                alert.step,
                alert.level,
                alert.message,
                alert.evidence,
                evidence_step=alert.evidence_step,
            )
        fired += new
    result = run_phases(store, "syn", RULES)
    assert result.phase == OVERFIT
    [alert] = fired
    first_raw = result.layers.query("name == 'b.weight' and raw == @OVERFIT")["step"].min()
    assert alert.evidence_step == first_raw == result.since
    assert alert.step == first_raw + 1000  # two scans spanning x1.1 of training time
    stored = store.alerts("syn")
    assert stored[["step", "evidence_step"]].values.tolist() == [[alert.step, first_raw]]
    assert alert.level == "warning" and "b.weight" in alert.message
    [layer] = alert.evidence["layers"]
    assert layer["name"] == "b.weight" and layer["ERG_gap"] == -2 and layer["num_traps"] == 1
    assert layer["trap_scale"] >= RULES.trap_scale
    changes = result.changes()
    assert changes["phase"].tolist()[-1] == OVERFIT
    current = result.current_layers().set_index("name")["phase"]
    assert current.to_dict() == {"a.weight": CONVERGED, "b.weight": OVERFIT}


def test_no_scans_and_missing_metrics() -> None:
    empty = phases_from_history(pd.DataFrame(columns=["step", "name", "alpha"]), "e")
    assert empty.phase == "unknown" and empty.since is None and empty.evidence()["layers"] == []
    history = pd.DataFrame({"step": np.arange(0, 10_000, 1000), "name": "w", "alpha": 3.0})
    result = phases_from_history(history, "noTraps", RULES)
    assert OVERFIT not in set(result.layers["raw"]) and result.phase == UNJUDGED
    assert "metrics='all'" in result.reason


def _shift_and_scan(monitor: Monitor, model: torch.nn.Module, steps: int) -> None:
    """A mean shift growing on the middle layer: structure that survives shuffling (a trap)."""
    layer = model[2]
    for i in range(steps):
        with torch.no_grad():
            layer.weight += 0.02 * 1.5**i
        monitor.step(1000 * i)


def test_default_detector_in_a_monitor_warns_logs_hooks_and_status_exits_1(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    model = mlp()
    received: list[Alert] = []
    with (
        caplog.at_level(logging.WARNING, logger="layerscope.track.monitor"),
        Monitor(
            model,
            every=1000,
            run="shift",
            store=db,
            metrics="all",
            background=False,
            on_alert=received.append,
            rules={"trap_growth": 1.5},
        ) as monitor,
    ):
        assert isinstance(monitor.tracker.detector, PhaseDetector)
        assert monitor.tracker.detector.rules == RULES
        _shift_and_scan(monitor, model, 12)
    assert len(received) == 1 and "2.weight" in received[0].message
    assert "over-fitting" in caplog.text
    with RunStore(db) as store:
        assert store.alerts("shift")["level"].tolist() == ["warning"]
    assert main(["status", "shift", "--store", str(db)]) == 1
    out = capsys.readouterr().out
    assert "Phases" in out and "over-fitting" in out


def test_status_exits_1_on_an_over_fitting_phase_without_stored_alerts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = tmp_path / "runs.db"
    with RunStore(db) as store:
        run_id = store.start_run("calm")
        for step in range(0, 12_000, 1000):
            store.log_scan(run_id, step, _scan(0))
    assert main(["status", "calm", "--store", str(db)]) == 0
    assert "no alerts" in capsys.readouterr().out
    with RunStore(db) as store:
        run_id = store.start_run("hot")
        for step in range(0, 40_000, 1000):
            store.log_scan(run_id, step, _scan(step))
        assert run_phases(store, "hot").phase == OVERFIT  # with the default rules
    assert main(["status", "hot", "--store", str(db), "-q"]) == 1
    assert main(["status", "hot", "--store", str(db)]) == 1
    out = capsys.readouterr().out
    assert "replayed" in out and "not stored" in out


def test_detector_option_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="detector must be callable"):
        Monitor(mlp(), store=tmp_path / "x.db", detector="nonsense")  # type: ignore[arg-type]
    with Monitor(mlp(), store=tmp_path / "x.db", detector=None) as monitor:
        assert monitor.tracker.detector is None
    with pytest.raises(ValueError, match="unknown phase rule"):
        Monitor(mlp(), store=tmp_path / "x.db", rules={"windw": 3})
    with pytest.raises(ValueError, match="growth must be > 1"):
        Monitor(mlp(), store=tmp_path / "x.db", rules={"growth": 0.5})


def test_cannot_judge_is_logged_with_its_reason_and_jumps_reach_the_report(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Never silent: a Monitor logs the cannot-judge state with its reason; a jumping tail
    fit is listed by the report's training view."""
    from layerscope.report.html import run_html
    from layerscope.track.view import read_run

    db = tmp_path / "runs.db"
    with (
        caplog.at_level(logging.INFO, logger="layerscope.track.phases"),
        Monitor(mlp(), every=1000, run="young", store=db, background=False) as monitor,
    ):
        monitor.step(1000)
    assert "is cannot-judge at step 1000" in caplog.text and "none is that early" in caplog.text
    with RunStore(db) as store:
        run_id = store.start_run("jumpy")
        for step in range(0, 8000, 1000):
            scan = _scan(0)
            scan.layers.loc[0, "alpha"] = 18.0 if step == 5000 else 3.0
            store.log_scan(run_id, step, scan)
        view = read_run(store, "jumpy")
    assert view.phases.jumps()[["step", "name"]].values.tolist() == [[5000, "a.weight"]]
    assert UNDER_TRAINED not in set(view.phases.layers["raw"])
    html = run_html(view)
    assert "Alpha jumps (1)" in html and "a.weight" in html
