"""Shared helpers of the tracking tests: tiny models, state dicts and synthetic scans."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from layerscope.results import ScanResult
from layerscope.track import RunStore


def mlp(seed: int = 0) -> nn.Module:
    """A small MLP whose three weight matrices all scan quickly."""
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(16, 32), nn.ReLU(), nn.Linear(32, 32), nn.ReLU(), nn.Linear(32, 8)
    )


def state_dict(seed: int) -> dict[str, torch.Tensor]:
    """A detached state dict of :func:`mlp` (distinct weights per seed)."""
    return {k: v.detach().clone() for k, v in mlp(seed).state_dict().items()}


def fake_scan(step: int, num_layers: int = 4) -> ScanResult:
    """A synthetic ScanResult (no eigensolver): alpha of layer i at step s is 2 + i + s/1000."""
    names = [f"layers.{i}.weight" for i in range(num_layers)]
    layers = pd.DataFrame(
        {
            "layer_id": range(num_layers),
            "name": names,
            "kind": "dense",
            "N": 64,
            "M": 32,
            "status": "ok",
            "verdict": "ok",
            "alpha": [2.0 + i + step / 1000 for i in range(num_layers)],
            "num_spikes": np.arange(num_layers, dtype=np.int64),
            "ERG_gap": [np.nan] * num_layers,
        }
    )
    summary = {"num_layers": num_layers, "alpha": float(layers["alpha"].mean())}
    return ScanResult(layers, pd.DataFrame(columns=["name", "shape", "reason"]), summary, {})


@pytest.fixture
def store(tmp_path: Path) -> Iterator[RunStore]:
    db = RunStore(tmp_path / "runs.db")
    yield db
    db.close()
