"""track_checkpoints: layouts and step order, incremental re-runs, corrupt files, follow mode."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from layerscope.track import RunStore, TrackEvent, find_checkpoints, track_checkpoints
from layerscope.track.checkpoints import Checkpoint, checkpoint_step

from .conftest import state_dict

Writer = Callable[[Path, int], Path]


def _pt(root: Path, step: int) -> Path:
    path = root / f"step_{step:06d}.pt"
    torch.save(state_dict(step), path)
    return path


def _safetensors(root: Path, step: int) -> Path:
    path = root / f"model_{step}.safetensors"
    save_file(state_dict(step), str(path))
    return path


def _lightning(root: Path, step: int) -> Path:
    path = root / f"epoch={step // 100}-step={step}.ckpt"
    torch.save({"state_dict": state_dict(step), "epoch": step // 100, "global_step": step}, path)
    return path


def _ckpt_pth(root: Path, step: int) -> Path:
    path = root / f"ckpt_{step}.pth"
    torch.save({"model": state_dict(step), "optimizer": {"lr": 0.1}}, path)
    return path


def _hf_trainer(root: Path, step: int) -> Path:
    path = root / f"checkpoint-{step}"
    path.mkdir()
    save_file(state_dict(step), str(path / "model.safetensors"))
    (path / "trainer_state.json").write_text("{}")
    return path


LAYOUTS = {
    "pt": _pt,
    "safetensors": _safetensors,
    "lightning": _lightning,
    "ckpt_pth": _ckpt_pth,
    "hf_trainer": _hf_trainer,
}


@pytest.mark.parametrize(
    ("name", "is_dir", "step"),
    [
        ("checkpoint-1000", True, 1000),
        ("global_step300", True, 300),
        ("step_000500.pt", False, 500),
        ("model_700.safetensors", False, 700),
        ("epoch=3-step=1200.ckpt", False, 1200),
        ("epoch=3-step=1200-v1.ckpt", False, 1200),
        ("epoch=3-step=1200-val_loss=0.25.ckpt", False, 1200),
        ("ckpt_42.pth", False, 42),
        ("iter_9.bin", False, 9),
        ("model-00001-of-00002.safetensors", False, None),
        ("last.ckpt", False, None),
        ("optimizer.pt", False, None),
        ("step_5.txt", False, None),
        ("runs", True, None),
    ],
)
def test_step_from_name(tmp_path: Path, name: str, is_dir: bool, step: int | None) -> None:
    path = tmp_path / name
    if is_dir:
        path.mkdir()
    else:
        path.write_bytes(b"")
    assert checkpoint_step(path) == step


def test_found_in_numeric_step_order(tmp_path: Path) -> None:
    for name in ("checkpoint-1000", "checkpoint-900", "checkpoint-10000"):
        (tmp_path / name).mkdir()
    for name in ("step_000050.pt", "model_2000.safetensors", "notes.txt", "checkpoint-900.pt"):
        (tmp_path / name).write_bytes(b"")
    found = find_checkpoints(tmp_path)
    assert [c.step for c in found] == [50, 900, 1000, 2000, 10000]
    assert found[1].path == tmp_path / "checkpoint-900"  # a directory wins a tie


@pytest.mark.parametrize("layout", sorted(LAYOUTS))
def test_each_layout_scanned_in_step_order(tmp_path: Path, store: RunStore, layout: str) -> None:
    root = tmp_path / "ckpts"
    root.mkdir()
    paths = {step: LAYOUTS[layout](root, step) for step in (1000, 200, 30)}
    events: list[TrackEvent] = []
    assert track_checkpoints(root, "run", store, progress=events.append) == [30, 200, 1000]
    steps = store.steps("run")
    assert list(steps["step"]) == [30, 200, 1000] and set(steps["status"]) == {"ok"}
    assert list(steps["source"]) == [str(paths[s].resolve()) for s in (30, 200, 1000)]
    hist = store.layer_history("run")
    assert len(hist) == 9 and hist["alpha"].notna().all()
    assert [(e.step, e.status, e.done, e.total) for e in events] == [
        (30, "ok", 1, 3),
        (200, "ok", 2, 3),
        (1000, "ok", 3, 3),
    ]


def test_rerun_scans_only_new_checkpoints(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    for step in (10, 20):
        _pt(tmp_path, step)
    assert track_checkpoints(tmp_path, "run", db, metrics="all") == [10, 20]
    with RunStore(db) as store:
        first = store.steps("run")
    assert track_checkpoints(tmp_path, "run", db) == []
    _pt(tmp_path, 15)
    _pt(tmp_path, 30)
    assert track_checkpoints(tmp_path, "run", db) == [15, 30]
    with RunStore(db) as store:
        again = store.steps("run").set_index("step")
    assert list(again.index) == [10, 15, 20, 30]
    for step, wall in zip(first["step"], first["wall_time"], strict=True):
        assert again.loc[step, "wall_time"] == wall  # untouched


def test_corrupt_checkpoint_recorded_and_skipped(tmp_path: Path, store: RunStore) -> None:
    _pt(tmp_path, 100)
    bad = tmp_path / "step_000200.pt"
    bad.write_bytes(b"\x00garbage" * 64)
    _pt(tmp_path, 300)
    events: list[TrackEvent] = []
    assert track_checkpoints(tmp_path, "run", store, progress=events.append) == [100, 300]
    steps = store.steps("run").set_index("step")
    assert steps.loc[200, "status"] == "error"
    assert "cannot read torch checkpoint" in steps.loc[200, "error"]
    assert [e.status for e in events] == ["ok", "error", "ok"]
    assert track_checkpoints(tmp_path, "run", store) == []  # unchanged: not retried
    os.remove(bad)
    _pt(tmp_path, 200)  # rewritten: its fingerprint changes, so it is tried again
    assert track_checkpoints(tmp_path, "run", store) == [200]
    assert store.has_step("run", 200, str(bad.resolve()))


def test_follow_picks_up_a_checkpoint_written_later(tmp_path: Path, store: RunStore) -> None:
    _safetensors(tmp_path, 1)
    stop = threading.Event()
    seen: list[int] = []

    def on_event(event: TrackEvent) -> None:
        seen.append(event.step)
        if event.step == 2:
            stop.set()

    def write_later() -> None:
        time.sleep(0.3)
        _safetensors(tmp_path, 2)

    writer = threading.Thread(target=write_later)
    writer.start()
    scanned = track_checkpoints(
        tmp_path,
        "run",
        store,
        follow=True,
        poll_seconds=0.05,
        settle_seconds=0.0,
        max_polls=200,
        stop=stop,
        progress=on_event,
    )
    writer.join()
    assert scanned == [1, 2] and seen == [1, 2]


def test_follow_waits_for_checkpoints_to_settle(tmp_path: Path, store: RunStore) -> None:
    _pt(tmp_path, 5)
    old = time.time() - 60
    os.utime(tmp_path / "step_000005.pt", (old, old))
    _pt(tmp_path, 6)  # just written: may still be in progress
    scanned = track_checkpoints(
        tmp_path, "run", store, follow=True, poll_seconds=0.0, settle_seconds=30.0, max_polls=2
    )
    assert scanned == [5]


def test_invalid_arguments(tmp_path: Path, store: RunStore) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        track_checkpoints(tmp_path / "nope", "run", store)
    with pytest.raises(ValueError, match="unknown scan option"):
        track_checkpoints(tmp_path, "run", store, colour="red")
    with pytest.raises(ValueError, match="no run 42"):
        track_checkpoints(tmp_path, 42, store)


def test_on_checkpoint_hook_sees_new_scans_and_failures_stay_pending(
    tmp_path: Path, store: RunStore
) -> None:
    for step in (10, 20, 30):
        _pt(tmp_path, step)
    seen: list[int] = []

    def hook(db: RunStore, run_id: int, ckpt: Checkpoint) -> None:
        assert db is store and ckpt.path.name == f"step_{ckpt.step:06d}.pt"
        if ckpt.step == 20 and not seen.count(20):
            seen.append(20)
            raise RuntimeError("hook failed")
        seen.append(ckpt.step)
        db.log_scalars(run_id, ckpt.step, extra=ckpt.step / 10)

    with pytest.raises(RuntimeError, match="hook failed"):
        track_checkpoints(tmp_path, "run", store, on_checkpoint=hook)
    assert store.steps("run")["step"].tolist() == [10]  # 20 not stored: still pending
    assert track_checkpoints(tmp_path, "run", store, on_checkpoint=hook) == [20, 30]
    assert seen == [10, 20, 20, 30]
    assert store.scalar_history("run")["extra"].tolist() == [1.0, 2.0, 3.0]
