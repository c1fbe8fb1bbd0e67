"""open_source: dispatch on the kind of source, and the errors for what it cannot open."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from layerscope import adapters
from layerscope.adapters import SourceError, open_source


def test_public_api() -> None:
    assert sorted(adapters.__all__) == [
        "LayerWeights",
        "Source",
        "SourceError",
        "SourceLike",
        "open_source",
    ]
    assert issubclass(SourceError, ValueError)


def test_nonexistent_path(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"does not exist: .*nope\.safetensors"):
        open_source(tmp_path / "nope.safetensors")


def test_unknown_extension(tmp_path: Path) -> None:
    (tmp_path / "model.xyz").write_bytes(b"\x00")
    with pytest.raises(SourceError, match=r"\.xyz") as excinfo:
        open_source(str(tmp_path / "model.xyz"))
    message = str(excinfo.value)
    for suffix in (".safetensors", ".pt", ".pth", ".bin", ".ckpt"):
        assert suffix in message
    assert "model.xyz" in message


def test_unsupported_object() -> None:
    with pytest.raises(SourceError, match="int"):
        open_source(3)  # type: ignore[arg-type]


@pytest.mark.parametrize("suffix", [".pt", ".pth", ".bin", ".ckpt", ".PT"])
def test_checkpoint_suffixes(suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"weights{suffix}"
    torch.save({"w": torch.ones(2, 3)}, path)
    source = open_source(path)
    assert [layer.shape for layer in source] == [(2, 3)]
    assert source.description == f"torch checkpoint weights{suffix} (1 tensor)"


def test_descriptions(tmp_path: Path) -> None:
    save_file({"w": torch.ones(2)}, tmp_path / "model.safetensors")
    assert (
        open_source(tmp_path / "model.safetensors").description
        == "safetensors file model.safetensors"
    )
    assert (
        open_source(tmp_path).description
        == f"safetensors file model.safetensors in {tmp_path.name}/"
    )
    assert open_source(torch.nn.Linear(2, 2)).description == "torch module Linear"
