"""RunStore across processes: a writer and a reader at once; a writer killed mid-step."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from layerscope.track import RunStore

WRITER = Path(__file__).with_name("_store_writer.py")


def _writer(db: Path, steps: int, layers: int, sleep: float) -> subprocess.Popen[str]:
    args = [sys.executable, str(WRITER), str(db), "run", str(steps), str(layers), str(sleep)]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_reader_sees_monotone_growth_while_writer_writes(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    RunStore(db).close()
    proc = _writer(db, steps=40, layers=8, sleep=0.01)
    reader = RunStore(db)
    seen: list[int] = []
    try:
        while True:
            finished = proc.poll() is not None
            if "run" in set(reader.runs()["name"]):
                hist = reader.layer_history("run", ("alpha", "num_spikes"))
                steps = reader.steps("run")
                scalars = reader.scalar_history("run")
                # every visible step is complete: 8 layers, its steps row and its scalar
                assert len(hist) == 8 * hist["step"].nunique()
                assert set(hist["step"]) <= set(steps["step"])
                assert len(scalars) >= len(steps) - 1
                seen.append(len(steps))
            time.sleep(0.005)
            if finished:
                break
    finally:
        reader.close()
    _, err = proc.communicate()
    assert proc.returncode == 0, err
    assert seen == sorted(seen) and seen[-1] == 40
    assert len(set(seen)) > 2  # the reader really read while the writer wrote


@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")
def test_killed_writer_loses_at_most_the_step_in_flight(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    layers = 400  # large steps, so the kill most likely lands inside a transaction
    proc = _writer(db, steps=10_000, layers=layers, sleep=0.0)
    assert proc.stdout is not None
    for _ in range(15):
        line = proc.stdout.readline()
        assert line.startswith("committed"), proc.stderr.read() if proc.stderr else line
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    rest = proc.stdout.read().split()
    printed = [int(w) for w in rest if w.isdigit()]
    last_committed = printed[-1] if printed else 14
    conn = sqlite3.connect(db)
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    conn.close()
    with RunStore(db) as store:
        steps = list(store.steps("run")["step"])
        hist = store.layer_history("run")
    assert steps == list(range(len(steps)))
    assert last_committed + 1 <= len(steps) <= last_committed + 2
    counts = hist.groupby("step").size()
    assert list(counts.index) == steps and (counts == layers).all()
