"""Monitor: scans every N steps, never blocks or raises into training, keeps to its budget."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import torch
from torch import nn

import layerscope
from _hf_models import tiny_config
from layerscope.track import Alert, Monitor, RunStore
from layerscope.track import monitor as monitor_module
from layerscope.track.monitor import snapshot

from .conftest import mlp


def _train(model: nn.Module, monitor: Monitor, steps: int, pause: float = 0.0) -> None:
    """A few SGD steps of a regression, logging the loss every step."""
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    gen = torch.Generator().manual_seed(1)
    x, y = torch.randn(64, 16, generator=gen), torch.randn(64, 8, generator=gen)
    for step in range(steps):
        loss = nn.functional.mse_loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        monitor.step(step, train_loss=loss.item())
        time.sleep(pause)


@pytest.fixture
def slow_scan(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[float]]:
    """Make every scan take at least 0.3 s; yields the start times of the scans."""
    starts: list[float] = []

    def scan(source: Any, **kwargs: Any) -> layerscope.ScanResult:
        starts.append(time.perf_counter())
        time.sleep(0.3)
        return layerscope.scan(source, **kwargs)

    monkeypatch.setattr(monitor_module, "scan", scan)
    yield starts


def test_foreground_scans_every_n_steps(store: RunStore) -> None:
    model = mlp()
    with Monitor(model, every=10, run="fg", store=store, background=False) as monitor:
        _train(model, monitor, 25)
    steps = store.steps("fg")
    assert list(steps["step"]) == [0, 10, 20] and set(steps["status"]) == {"ok"}
    hist = store.layer_history("fg", ("alpha", "verdict"))
    assert len(hist) == 9 and hist["alpha"].notna().all()
    assert list(store.scalar_history("fg")["step"]) == list(range(25))
    assert monitor.stats.scans == 3 and monitor.stats.errors == 0
    assert store.run_meta("fg")["every"] == 10


def test_every_counts_multiples_not_calls(store: RunStore) -> None:
    model = mlp()
    with Monitor(model, every=10, run="r", store=store, background=False) as monitor:
        for step in (3, 7, 12, 15, 31, 32, 40):
            monitor.step(step)
    assert list(store.steps("r")["step"]) == [3, 12, 31, 40]


def test_background_scans_match_foreground(store: RunStore) -> None:
    model = mlp()
    with Monitor(model, every=10, run="bg", store=store) as monitor:
        _train(model, monitor, 25, pause=0.02)
    steps = store.steps("bg")
    assert list(steps["step"]) == [0, 10, 20]
    assert set(steps["status"]) <= {"ok", "skipped"} and steps["status"].iloc[0] == "ok"
    assert monitor.stats.scans + monitor.stats.skipped_busy == 3


def test_background_does_not_block_and_skips_when_busy(
    store: RunStore, slow_scan: list[float]
) -> None:
    model = mlp()
    monitor = Monitor(model, every=1, run="busy", store=store)
    started = time.perf_counter()
    monitor.step(0)
    monitor.step(1)  # due while the first scan is still running
    assert time.perf_counter() - started < 0.25
    monitor.close()
    steps = store.steps("busy")
    assert list(steps["status"]) == ["ok", "skipped"]
    assert steps["error"].iloc[1] == "previous scan still running"
    assert monitor.stats.skipped_busy == 1 and len(slow_scan) == 1


def test_snapshot_is_taken_when_due_not_when_scanned(
    store: RunStore, slow_scan: list[float]
) -> None:
    model = mlp()
    expected = layerscope.scan(model).layers["alpha"]
    with Monitor(model, every=5, run="snap", store=store) as monitor:
        monitor.step(0)
        with torch.no_grad():
            for p in model.parameters():
                p.mul_(0.0).add_(torch.randn_like(p))  # training moves on meanwhile
    got = store.layer_history("snap")["alpha"]
    pd.testing.assert_series_equal(got, expected.astype("float64"), check_names=False)


@pytest.mark.parametrize("background", [True, False])
def test_failing_scan_is_recorded_never_raised(
    store: RunStore,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    background: bool,
) -> None:
    def broken(source: Any, **kwargs: Any) -> layerscope.ScanResult:
        raise RuntimeError("eigensolver exploded")

    monkeypatch.setattr(monitor_module, "scan", broken)
    model = mlp()
    log = caplog.at_level(logging.ERROR, logger="layerscope.track.monitor")
    with log, Monitor(model, every=5, run="err", store=store, background=background) as monitor:
        _train(model, monitor, 12)
    steps = store.steps("err")
    assert list(steps["step"]) == [0, 5, 10] and set(steps["status"]) <= {"error", "skipped"}
    assert steps["error"].iloc[0] == "RuntimeError: eigensolver exploded"
    assert monitor.stats.errors >= 1
    assert "scan at step 0 failed" in caplog.text
    assert len(store.scalar_history("err")) == 12  # training and logging went on


def test_failing_snapshot_is_recorded_never_raised(store: RunStore) -> None:
    class Exploding(nn.Linear):
        def named_parameters(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("device lost")

    model = nn.Sequential(Exploding(16, 16))
    with Monitor(model, every=1, run="snap-err", store=store) as monitor:
        monitor.step(0)
    assert store.steps("snap-err")["error"].iloc[0] == "RuntimeError: device lost"


def test_time_budget_limits_scanning(store: RunStore, slow_scan: list[float]) -> None:
    model = mlp()
    budget = 0.25
    start = time.perf_counter()
    with Monitor(
        model, every=1, run="budget", store=store, time_budget=budget, background=False
    ) as monitor:
        _train(model, monitor, 40, pause=0.01)
    elapsed = time.perf_counter() - start
    stats = monitor.stats
    assert stats.skipped_budget > 0 and stats.scans >= 1
    assert stats.scan_seconds <= budget * elapsed + 0.4  # at most one scan over the budget
    statuses = store.steps("budget")["status"].value_counts()
    assert statuses["ok"] == stats.scans and statuses["skipped"] == stats.skipped_budget


def test_scans_are_deterministic_and_leave_rng_alone(store: RunStore) -> None:
    model = mlp()
    torch.manual_seed(123)
    before = torch.get_rng_state()
    for run in ("a", "b"):
        with Monitor(model, every=1, run=run, store=store, metrics="all", background=False) as m:
            m.step(0)
    assert torch.equal(torch.get_rng_state(), before)
    metrics = ("alpha", "num_traps", "rand_distance")
    pd.testing.assert_frame_equal(
        store.layer_history("a", metrics), store.layer_history("b", metrics)
    )


def test_snapshot_scans_like_the_live_model() -> None:
    transformers = pytest.importorskip("transformers")
    config = tiny_config("gpt2")
    torch.manual_seed(0)
    model = transformers.GPT2LMHeadModel(config)  # Conv1D (transposed), fused QKV, tied head
    copy = snapshot(model)
    assert all(p.device.type == "cpu" and not p.requires_grad for p in copy.parameters())
    live, snap = layerscope.scan(model).layers, layerscope.scan(copy).layers
    pd.testing.assert_frame_equal(live, snap)
    assert any(live["name"].str.contains("c_attn"))


def test_detector_alerts_reach_store_log_and_hook(
    store: RunStore, caplog: pytest.LogCaptureFixture
) -> None:
    received: list[Alert] = []

    def detector(db: RunStore, run_id: int, step: int) -> list[Alert]:
        alpha = db.layer_history(run_id)["alpha"]
        return [Alert(step, "warning", "collapse ahead", {"min_alpha": float(alpha.min())})]

    def explode(db: RunStore, run_id: int, step: int) -> list[Alert]:
        raise KeyError("detector bug")

    model = mlp()
    with caplog.at_level(logging.WARNING, logger="layerscope.track.monitor"):
        with Monitor(
            model, every=5, run="al", store=store, detector=detector, on_alert=received.append
        ) as monitor:
            _train(model, monitor, 6, pause=0.05)
        with Monitor(model, every=5, run="bug", store=store, detector=explode) as broken:
            broken.step(0)
    alerts = store.alerts("al")
    assert list(alerts["message"]) == ["collapse ahead"] * len(received) and received
    assert "min_alpha" in alerts["evidence"].iloc[0]
    assert "alert at step 0: collapse ahead" in caplog.text
    assert "alert check at step 0 failed" in caplog.text
    assert list(store.steps("bug")["status"]) == ["ok"]


def test_store_by_path_is_opened_and_closed(tmp_path: Path) -> None:
    path = tmp_path / "sub.db"
    with Monitor(mlp(), every=1, run="p", store=path, background=False) as monitor:
        monitor.step(0, acc=0.5)
    with pytest.raises(RuntimeError, match="closed"):
        monitor.step(1)
    with RunStore(path) as store:
        assert store.has_step("p", 0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"every": 0}, "every must be a positive integer"),
        ({"time_budget": 1.5}, "time_budget"),
        ({"metrics": "nonsense"}, "nonsense"),
        ({"jobz": 2}, "unknown scan option"),
    ],
)
def test_invalid_options(store: RunStore, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Monitor(mlp(), store=store, **kwargs)


def test_non_numeric_scalar_is_a_clear_error(store: RunStore) -> None:
    monitor = Monitor(mlp(), every=100, run="s", store=store, background=False)
    with pytest.raises(ValueError, match="scalar 'note' must be a number"):
        monitor.step(0, note="hello")
    monitor.close()


@pytest.mark.parametrize(
    ("kwargs", "metrics", "has_traps"),
    [
        ({}, "all", True),  # the phase detector needs the traps group
        ({"detector": None}, "default", False),
        ({"metrics": "default"}, "default", False),
    ],
)
def test_default_metrics_follow_the_detector(
    store: RunStore, kwargs: dict[str, Any], metrics: str, has_traps: bool
) -> None:
    model = mlp()
    with Monitor(model, every=1, run="m", store=store, background=False, **kwargs) as monitor:
        monitor.step(0)
    assert store.run_meta("m")["metrics"] == metrics
    hist = store.layer_history("m", ("alpha", "trap_scale"))
    assert hist["trap_scale"].notna().all() == has_traps
