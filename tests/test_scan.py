"""scan(): statuses, selection, determinism, parallelism, formats and result files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import layerscope
from layerscope.results import ID_COLUMNS, ScanResult


def _heavy(n: int, m: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.distributions.StudentT(3.0).sample((n, m)) * 0.1 + 0.01 * torch.randn(
        n, m, generator=g
    )


@pytest.fixture(scope="module")
def model() -> nn.Module:
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 96), nn.Conv2d(8, 16, 3))
    with torch.no_grad():
        net[2].weight.copy_(_heavy(96, 128, 1))
    return net


def test_rows_identifiers_first_and_skipped_listed(model: nn.Module) -> None:
    res = layerscope.scan(model)
    assert tuple(res.layers.columns[: len(ID_COLUMNS)]) == ID_COLUMNS
    assert list(res.layers["name"]) == ["0.weight", "2.weight", "3.weight"]
    assert (res.layers["status"] == "ok").all()
    assert set(res.skipped["name"]) == {"0.bias", "2.bias", "3.bias"}
    assert res.summary["num_analysed"] == 3
    assert set(res.layers["verdict"]) <= {"ok", "under-trained", "over-trained", "traps"}


def test_bad_layers_get_status_and_scan_goes_on() -> None:
    sd = {
        "good.weight": torch.randn(64, 32),
        "nan.weight": torch.full((64, 32), float("nan")),
        "zero.weight": torch.zeros(64, 32),
        "tiny.weight": torch.randn(3, 2),
    }
    res = layerscope.scan(sd)
    status = dict(zip(res.layers["name"], res.layers["status"], strict=True))
    assert status["good.weight"] == "ok"
    assert "NaN" in status["nan.weight"]
    assert status["zero.weight"] == "all zeros"
    assert status["tiny.weight"].startswith("too small")
    assert res.summary["num_failed"] == 3


def test_selection_options(model: nn.Module) -> None:
    res = layerscope.scan(model, include=["2.*"], kinds=["linear"])
    assert list(res.layers["name"]) == ["2.weight"]
    reasons = set(res.skipped["reason"])
    assert any("--include" in r for r in reasons)
    res = layerscope.scan(model, min_size=70)
    assert list(res.layers["name"]) == ["2.weight"]


def test_seed_reproducible_and_jobs_equivalent(model: nn.Module) -> None:
    a = layerscope.scan(model, metrics="all", seed=3)
    b = layerscope.scan(model, metrics="all", seed=3, jobs=2)
    cols = [c for c in a.layers.columns if c not in ("reason",)]
    pd.testing.assert_frame_equal(a.layers[cols], b.layers[cols])
    assert "num_traps" in a.layers and "rand_distance" in a.layers


def test_default_metrics_skip_traps(model: nn.Module) -> None:
    res = layerscope.scan(model)
    assert "num_traps" not in res.layers
    assert {"alpha", "detX_num", "ERG_gap", "num_spikes", "log_norm"} <= set(res.layers.columns)


def test_same_result_from_every_format(model: nn.Module, tmp_path: Path) -> None:
    sd = {k: v.detach().clone() for k, v in model.state_dict().items()}
    torch.save(sd, tmp_path / "m.pt")
    save_file(sd, str(tmp_path / "m.safetensors"))
    ref = layerscope.scan(model).layers
    for src in (sd, tmp_path / "m.pt", tmp_path / "m.safetensors"):
        got = layerscope.scan(src).layers.sort_values("name").reset_index(drop=True)
        want = ref.sort_values("name").reset_index(drop=True)
        pd.testing.assert_series_equal(got["alpha"], want["alpha"])
        pd.testing.assert_series_equal(got["log_norm"], want["log_norm"])


def test_bf16_weights_are_scanned(tmp_path: Path) -> None:
    w = _heavy(128, 64, 5)
    save_file({"fc.weight": w.to(torch.bfloat16)}, str(tmp_path / "b.safetensors"))
    res = layerscope.scan(tmp_path / "b.safetensors")
    ref = layerscope.scan({"fc.weight": w.to(torch.bfloat16).float()})
    assert res.layers.loc[0, "dtype"] == "bfloat16"
    assert res.layers.loc[0, "alpha"] == pytest.approx(ref.layers.loc[0, "alpha"], rel=1e-12)


def test_result_files_round_trip(model: nn.Module, tmp_path: Path) -> None:
    res = layerscope.scan(model, metrics="all")
    res.to_json(tmp_path / "r.json")
    res.to_csv(tmp_path / "r.csv")
    res.to_parquet(tmp_path / "r.parquet")
    back = ScanResult.from_json(tmp_path / "r.json")
    np.testing.assert_allclose(back.layers["alpha"], res.layers["alpha"])
    assert json.loads((tmp_path / "r.json").read_text())["schema_version"] == 1
    assert pd.read_parquet(tmp_path / "r.parquet")["alpha"].tolist() == res.layers["alpha"].tolist()
    assert len(pd.read_csv(tmp_path / "r.csv")) == len(res.layers)
    assert not list(tmp_path.glob(".*.tmp"))


def test_invalid_options_raise_value_error(model: nn.Module) -> None:
    with pytest.raises(ValueError, match="unknown metric"):
        layerscope.scan(model, metrics=["nope"])
    with pytest.raises(ValueError, match="jobs"):
        layerscope.scan(model, jobs=0)
    with pytest.raises(ValueError, match="unknown scan option"):
        layerscope.scan(model, not_an_option=1)


def test_progress_callback(model: nn.Module) -> None:
    events: list[layerscope.ProgressEvent] = []
    layerscope.scan(model, progress=events.append)
    assert [e.done for e in events] == [1, 2, 3] and events[-1].total == 3


def test_keep_spectra(model: nn.Module) -> None:
    res = layerscope.scan(model, keep_spectra=True)
    ev = res.spectra["2.weight"]
    ref = np.linalg.svd(model[2].weight.detach().double().numpy(), compute_uv=False) ** 2
    np.testing.assert_allclose(ev, np.sort(ref), rtol=1e-6, atol=1e-9)


def test_tied_weights_listed_not_scanned_twice(tmp_path: Path) -> None:
    emb = nn.Embedding(100, 32)
    head = nn.Linear(32, 100, bias=False)
    head.weight = emb.weight
    model = nn.ModuleDict({"emb": emb, "head": head})
    torch.save(model.state_dict(), tmp_path / "tied.pt")
    for src in (model, tmp_path / "tied.pt"):
        res = layerscope.scan(src)
        assert res.layers["name"].tolist() == ["emb.weight"]
        reason = res.skipped.set_index("name").loc["head.weight", "reason"]
        assert reason == "tied to emb.weight (same storage)"
