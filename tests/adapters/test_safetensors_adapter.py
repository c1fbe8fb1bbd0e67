"""Single .safetensors files: header-only metadata, one tensor per load, corruption."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from layerscope.adapters import SourceError, open_source
from layerscope.adapters import safetensors as st_adapter


def _write(path: Path) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    tensors = {
        "_orig_mod.proj.weight": torch.randn(8, 4),
        "emb.weight": torch.randn(16, 4).to(torch.bfloat16),
        "half.weight": torch.randn(3, 3).to(torch.float16),
        "steps": torch.arange(5),
    }
    save_file(tensors, path)
    return tensors


class _SpyHandle:
    """Wraps a ``safe_open`` handle and counts tensor reads."""

    def __init__(self, handle: Any, reads: list[str]) -> None:
        self._handle = handle
        self._reads = reads

    def __enter__(self) -> _SpyHandle:
        self._handle.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._handle.__exit__(*exc)

    def keys(self) -> list[str]:
        return list(self._handle.keys())

    def get_slice(self, key: str) -> Any:
        return self._handle.get_slice(key)

    def get_tensor(self, key: str) -> torch.Tensor:
        self._reads.append(key)
        return self._handle.get_tensor(key)


@pytest.fixture
def tensor_reads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of tensors whose data the safetensors adapter reads during a test."""
    reads: list[str] = []
    real_open = st_adapter.safe_open
    monkeypatch.setattr(
        st_adapter, "safe_open", lambda *a, **k: _SpyHandle(real_open(*a, **k), reads)
    )
    return reads


def test_header_only_until_load(tmp_path: Path, tensor_reads: list[str]) -> None:
    tensors = _write(tmp_path / "m.safetensors")
    source = open_source(tmp_path / "m.safetensors")
    assert len(source) == 4
    layers = {layer.name: layer for layer in source}
    assert tensor_reads == []
    assert layers["proj.weight"].shape == (8, 4)  # _orig_mod. stripped
    assert layers["emb.weight"].dtype == "bfloat16"
    assert layers["half.weight"].dtype == "float16"
    assert layers["steps"].dtype == "int64"
    assert layers["proj.weight"].module_type is None
    assert layers["proj.weight"].config is None
    assert tensor_reads == []
    emb = layers["emb.weight"].load()
    assert tensor_reads == ["emb.weight"]
    assert emb.dtype == torch.bfloat16
    assert torch.equal(emb, tensors["emb.weight"])
    assert source.description == "safetensors file m.safetensors"


@pytest.mark.parametrize("keep", [0, 5, 40, -16], ids=["empty", "size", "header", "data"])
def test_truncated_file(keep: int, tmp_path: Path) -> None:
    _write(tmp_path / "full.safetensors")
    data = (tmp_path / "full.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(data[:keep])
    with pytest.raises(SourceError, match=r"cut\.safetensors") as excinfo:
        open_source(tmp_path / "cut.safetensors")
    assert "\n" not in str(excinfo.value)


def test_file_removed_after_open(tmp_path: Path) -> None:
    _write(tmp_path / "m.safetensors")
    source = open_source(tmp_path / "m.safetensors")
    layer = next(iter(source))
    (tmp_path / "m.safetensors").unlink()
    with pytest.raises(SourceError, match=r"m\.safetensors"):
        layer.load()
