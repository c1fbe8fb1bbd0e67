"""Verdicts: HTSR bands, and random-like spectra found by the MP edge, not the fragile alpha."""

from __future__ import annotations

import pytest
import torch

import layerscope
from layerscope.metrics import verdict


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("shape", [(128, 64), (512, 256), (384, 384)])
def test_gaussian_matrices_are_under_trained(seed: int, shape: tuple[int, int]) -> None:
    # i.i.d. Gaussian = the Marchenko-Pastur null: no learned structure, whatever alpha says.
    w = torch.randn(*shape, generator=torch.Generator().manual_seed(seed))
    row = layerscope.scan({"w.weight": w}).layers.iloc[0]
    assert row["num_spikes"] == 0
    assert row["verdict"] == "under-trained", row["reason"]


def test_planted_structure_is_not_random_like() -> None:
    g = torch.Generator().manual_seed(0)
    w = (
        torch.randn(512, 256, generator=g)
        + 3.0 * torch.randn(512, 4, generator=g) @ torch.randn(4, 256, generator=g) / 16
    )
    row = layerscope.scan({"w.weight": w}).layers.iloc[0]
    assert row["num_spikes"] >= 4


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"alpha": 1.5, "num_spikes": 10}, "over-trained"),
        ({"alpha": 7.0, "num_spikes": 10}, "under-trained"),
        ({"alpha": 3.0, "num_spikes": 0}, "under-trained"),
        ({"alpha": 3.0, "num_spikes": 5, "num_traps": 2}, "traps"),
        ({"alpha": 3.0, "num_spikes": 5, "num_traps": 0}, "ok"),
        ({"alpha": 3.0}, "ok"),
        ({"alpha": float("nan")}, "unknown"),
    ],
)
def test_verdict_rules(row: dict[str, float], expected: str) -> None:
    assert verdict(row)[0] == expected


def test_shaky_fit_is_said() -> None:
    _, reason = verdict(
        {"alpha": 3.0, "num_spikes": 5, "fit_quality": "flat-ks", "num_pl_spikes": 12}
    )
    assert "shaky fit" in reason
