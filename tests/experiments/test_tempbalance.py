"""The TempBalance study: splits, arms that differ only in their learning rates, the paired
statistics against closed forms, and a tiny study end to end."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from experiments.tempbalance import run
from experiments.tempbalance.data import load_images, split
from experiments.tempbalance.train import Config, train_run

TINY = replace(Config(), per_class=3, epochs=2, batch_size=10)


@pytest.fixture(scope="module")
def images() -> tuple[np.ndarray, np.ndarray]:
    return load_images()


def test_splits_are_disjoint_fixed_and_seeded(images: tuple[np.ndarray, np.ndarray]) -> None:
    a, b = split(*images, 5, seed=0), split(*images, 5, seed=1)
    assert a.x_train.shape == (50, 1, 28, 28) and a.x_val.shape[0] == 1000
    assert np.bincount(a.y_test.numpy()).tolist() == [200] * 10
    assert np.array_equal(a.x_test.numpy(), b.x_test.numpy())  # fixed across seeds
    assert np.array_equal(a.x_val.numpy(), b.x_val.numpy())
    assert not np.array_equal(a.x_train.numpy(), b.x_train.numpy())  # seeded subset
    rows = {
        name: {t.tobytes() for t in getattr(a, f"x_{name}").numpy()}
        for name in ("train", "val", "test")
    }
    assert not rows["train"] & rows["test"] and not rows["val"] & rows["test"]
    assert not rows["train"] & rows["val"]


def test_arms_differ_only_in_learning_rates(images: tuple[np.ndarray, np.ndarray]) -> None:
    data = split(*images, TINY.per_class, seed=3)
    flat = replace(TINY, s1=1.0, s2=1.0)  # every TempBalance factor is 1: same run as uniform
    uniform = train_run(flat, data, "uniform", 0.05, 3, "val")
    for arm in ("tb", "tb_farms"):
        same = train_run(flat, data, arm, 0.05, 3, "val")
        assert (same["acc"], same["loss"]) == (uniform["acc"], uniform["loss"])
        tuned = train_run(TINY, data, arm, 0.05, 3, "val")
        assert sorted(tuned["factors"].values())[::3] == [0.5, 1.5]  # 4 tuned layers
        assert tuned["loss"] != uniform["loss"]


def test_paired_statistics_against_closed_forms() -> None:
    a = [92.0, 91.5, 93.0, 90.0, 92.5]
    b = [91.0, 91.0, 92.0, 89.8, 91.0]
    d = np.subtract(a, b)
    t = d.mean() / (d.std(ddof=1) / np.sqrt(d.size))
    p = run.paired(a, b)
    assert p["mean_diff"] == pytest.approx(d.mean()) and p["t"] == pytest.approx(t)
    # all 5 differences positive: the exact signed-rank p is 2 · (1/2)^5
    assert p["p_wilcoxon"] == pytest.approx(2 / 32)
    assert run.paired(a, a)["p_t"] == 1.0


def test_tiny_study_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "tb.json"
    argv = ["--out", str(out), "--per-class", "3", "--epochs", "2", "--lrs", "0.01", "0.1"]
    argv += ["--tune-seeds", "7", "--seeds", "0", "1"]
    assert run.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["schema_version"] == 1 and set(result["summary"]) == {"uniform", "tb", "tb_farms"}
    for arm, s in result["summary"].items():
        val = {lr: np.mean(v) for lr, v in result["tuning"][arm].items()}
        assert val[str(s["lr"])] == max(val.values())  # the best validation lr is used
        assert [r["seed"] for r in result["test"][arm]] == [0, 1]
        assert s["mean"] == pytest.approx(np.mean([r["acc"] for r in result["test"][arm]]))


def test_fixed_lrs_skip_tuning(tmp_path: Path) -> None:
    out = tmp_path / "tb.json"
    argv = ["--out", str(out), "--per-class", "3", "--epochs", "1", "--seeds", "0"]
    argv += ["--arms", "uniform", "tb", "--lr", "uniform=0.01", "tb=0.1", "--tune-seeds", "7"]
    assert run.main(argv) == 0
    result = json.loads(out.read_text())
    assert result["tuning"] == {} and result["fixed_lrs"] == {"uniform": 0.01, "tb": 0.1}
    assert {a: s["lr"] for a, s in result["summary"].items()} == result["fixed_lrs"]
    with pytest.raises(SystemExit):
        run.main(["--out", str(out), "--lr", "sgd=0.1"])
