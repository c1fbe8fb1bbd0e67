"""RunStore: round trips, schema version, refusing foreign files, one transaction per step."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import layerscope
from layerscope.track import RunStore
from layerscope.track.store import SCHEMA_VERSION

from .conftest import fake_scan, mlp


def test_schema_version_and_wal_recorded(tmp_path: Path) -> None:
    path = tmp_path / "runs.db"
    with RunStore(path) as store:
        assert store.schema_version == SCHEMA_VERSION == 1
    conn = sqlite3.connect(path)
    assert conn.execute("SELECT version FROM schema_version").fetchall() == [(1,)]
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.close()
    with RunStore(path) as again:  # reopening keeps one version row
        assert again.schema_version == 1


def test_refuses_other_files(tmp_path: Path) -> None:
    text = tmp_path / "notes.db"
    text.write_text("not a database at all " * 100)
    with pytest.raises(ValueError, match="not a layerscope run store"):
        RunStore(text)
    other = tmp_path / "other.db"
    sqlite3.connect(other).execute("CREATE TABLE t (x)").connection.commit()
    with pytest.raises(ValueError, match="not a layerscope run store"):
        RunStore(other)
    newer = tmp_path / "newer.db"
    RunStore(newer).close()
    conn = sqlite3.connect(newer)
    conn.execute("UPDATE schema_version SET version = 99")
    conn.commit()
    conn.close()
    with pytest.raises(ValueError, match="schema version 99"):
        RunStore(newer)
    with pytest.raises(ValueError, match="no layerscope run store"):
        RunStore(tmp_path / "missing.db", create=False)


def test_runs_resume_and_meta(store: RunStore) -> None:
    first = store.start_run("a", {"lr": 5e-4})
    assert store.start_run("b") != first
    assert store.start_run("a", {"wd": 0.0}) == first
    assert store.run_meta("a") == {"lr": 5e-4, "wd": 0.0}
    runs = store.runs()
    assert list(runs["name"]) == ["a", "b"]
    assert list(runs.columns[:4]) == ["id", "name", "created", "meta"]
    with pytest.raises(ValueError, match="no run 'zzz'"):
        store.steps("zzz")
    with pytest.raises(ValueError, match="non-empty"):
        store.start_run("")


def test_layer_history_round_trip(store: RunStore) -> None:
    run = store.start_run("r")
    for step in (0, 10, 20):
        store.log_scan(run, step, fake_scan(step), source=f"ckpt-{step}")
    hist = store.layer_history(run, ("alpha", "num_spikes", "verdict", "ERG_gap"))
    assert list(hist.columns) == ["step", "name", "alpha", "num_spikes", "verdict", "ERG_gap"]
    assert list(hist["step"]) == [0] * 4 + [10] * 4 + [20] * 4
    assert list(hist["name"][:4]) == [f"layers.{i}.weight" for i in range(4)]
    expected = [2.0 + i + s / 1000 for s in (0, 10, 20) for i in range(4)]
    np.testing.assert_allclose(hist["alpha"], expected)
    assert hist["alpha"].dtype == np.float64 and hist["num_spikes"].dtype == np.float64
    assert set(hist["verdict"]) == {"ok"}
    assert hist["ERG_gap"].isna().all()  # NaN is not stored, and comes back as NaN
    assert list(store.layer_history(run, "alpha", since=10)["step"].unique()) == [20]
    everything = store.layer_history(run, None)
    assert {"alpha", "status", "verdict", "num_spikes"} <= set(everything.columns)
    steps = store.steps(run)
    assert list(steps["step"]) == [0, 10, 20]
    assert list(steps["source"]) == ["ckpt-0", "ckpt-10", "ckpt-20"]
    assert set(steps["status"]) == {"ok"}
    np.testing.assert_allclose(steps["alpha"], [3.5, 3.51, 3.52])  # summary columns
    assert store.has_step(run, 10) and store.has_step(run, 10, "ckpt-10")
    assert not store.has_step(run, 10, "elsewhere") and not store.has_step(run, 5)


def test_real_scan_round_trip(store: RunStore) -> None:
    result = layerscope.scan(mlp(), metrics="all")
    store.log_scan(store.start_run("real"), 7, result)
    hist = store.layer_history("real", ("alpha", "num_traps", "status"))
    pd.testing.assert_series_equal(
        hist["alpha"], result.layers["alpha"].astype("float64"), check_names=False
    )
    assert list(hist["name"]) == list(result.layers["name"])
    assert list(hist["status"]) == ["ok"] * 3


def test_relogging_a_step_replaces_it(store: RunStore) -> None:
    store.start_run("r")
    store.log_scan("r", 5, fake_scan(5, num_layers=4))
    store.log_scan("r", 5, fake_scan(6, num_layers=2))
    hist = store.layer_history("r")
    assert len(hist) == 2 and hist["alpha"].iloc[0] == pytest.approx(2.006)
    store.log_error("r", 5, "boom", source="x.pt", fingerprint="1:2:3")
    assert store.layer_history("r").empty
    row = store.steps("r").iloc[0]
    assert (row["status"], row["error"], row["fingerprint"]) == ("error", "boom", "1:2:3")
    assert not store.has_step("r", 5)
    store.log_skip("r", 6, "previous scan still running")
    assert list(store.steps("r")["status"]) == ["error", "skipped"]


def test_scalars_and_alerts(store: RunStore) -> None:
    run = store.start_run("r")
    store.log_scalars(run, 0, train_loss=1.0, test_acc=np.float32(0.5))
    store.log_scalars(run, 1, train_loss=torch.tensor(0.5), test_acc=float("nan"))
    store.log_scalars(run, 1, train_loss=0.25)  # re-logging a key replaces it
    hist = store.scalar_history(run)
    assert list(hist.columns) == ["step", "test_acc", "train_loss"]
    assert list(hist["train_loss"]) == [1.0, 0.25]
    assert hist["test_acc"].iloc[0] == 0.5 and np.isnan(hist["test_acc"].iloc[1])
    with pytest.raises(ValueError, match="scalar 'x' must be a number"):
        store.log_scalars(run, 2, x="high")
    store.log_alert(run, 3, "warning", "alpha < 2 with traps", {"layers": ["fc1"], "alpha": 1.2})
    with pytest.raises(ValueError, match="alert level"):
        store.log_alert(run, 3, "panic", "no")
    alerts = store.alerts(run)
    assert list(alerts["level"]) == ["warning"]
    assert alerts["evidence"].iloc[0] == {"layers": ["fc1"], "alpha": 1.2}
    assert store.runs()["num_alerts"].iloc[0] == 1


def test_empty_histories_have_columns(store: RunStore) -> None:
    run = store.start_run("empty")
    assert list(store.layer_history(run, ("alpha", "D")).columns) == ["step", "name", "alpha", "D"]
    assert list(store.scalar_history(run).columns) == ["step"]
    assert store.steps(run).empty and store.alerts(run).empty


def test_failed_transaction_leaves_nothing(store: RunStore) -> None:
    run = store.start_run("r")
    bad = fake_scan(1)
    bad.layers = bad.layers.drop(columns="kind")  # fails after the step row is written
    with pytest.raises(KeyError):
        store.log_scan(run, 1, bad)
    assert store.steps(run).empty and store.layer_history(run).empty
