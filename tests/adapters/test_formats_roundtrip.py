"""Every format a model is commonly saved in yields the same names and tensors."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from layerscope.adapters import open_source


def _module(model: torch.nn.Module, tmp_path: Path) -> Any:
    return model


def _compiled(model: torch.nn.Module, tmp_path: Path) -> Any:
    return torch.compile(model, backend="eager")  # only wraps: compiles on first call


def _mapping(model: torch.nn.Module, tmp_path: Path) -> Any:
    return model.state_dict()


def _numpy_mapping(model: torch.nn.Module, tmp_path: Path) -> Any:
    return {name: tensor.numpy() for name, tensor in model.state_dict().items()}


def _torch_save(model: torch.nn.Module, tmp_path: Path) -> Any:
    torch.save(model.state_dict(), tmp_path / "model.pt")
    return tmp_path / "model.pt"


def _torch_save_legacy(model: torch.nn.Module, tmp_path: Path) -> Any:
    path = tmp_path / "model.pth"
    torch.save(model.state_dict(), path, _use_new_zipfile_serialization=False)
    return str(path)


def _compiled_state_dict(model: torch.nn.Module, tmp_path: Path) -> Any:
    torch.save(torch.compile(model, backend="eager").state_dict(), tmp_path / "compiled.ckpt")
    return tmp_path / "compiled.ckpt"


def _save_file(model: Any, tmp_path: Path) -> Any:
    tensors = model.state_dict()
    if model.config.tie_word_embeddings:  # safetensors stores a shared tensor once
        del tensors["lm_head.weight"]
    save_file(tensors, tmp_path / "weights.safetensors")
    return tmp_path / "weights.safetensors"


def _hf_sharded(model: Any, tmp_path: Path) -> Any:
    model.save_pretrained(tmp_path / "hf", max_shard_size="50KB")
    assert (tmp_path / "hf" / "model.safetensors.index.json").is_file()
    return tmp_path / "hf"


def _hf_single(model: Any, tmp_path: Path) -> Any:
    model.save_pretrained(tmp_path / "hf")
    assert (tmp_path / "hf" / "model.safetensors").is_file()
    return tmp_path / "hf"


def _hub_bin(shard_size: str) -> Callable[[torch.nn.Module, Path], Any]:
    """``pytorch_model*.bin`` as written by huggingface_hub (transformers 5 writes safetensors)."""

    def write(model: torch.nn.Module, tmp_path: Path) -> Any:
        hub = pytest.importorskip("huggingface_hub")
        (tmp_path / "hf").mkdir()
        hub.save_torch_state_dict(
            model.state_dict(), tmp_path / "hf", safe_serialization=False, max_shard_size=shard_size
        )
        return tmp_path / "hf"

    return write


FORMATS = {
    "module": _module,
    "compiled-module": _compiled,
    "mapping": _mapping,
    "numpy-mapping": _numpy_mapping,
    "torch.save": _torch_save,
    "torch.save-legacy": _torch_save_legacy,
    "compiled-state-dict": _compiled_state_dict,
    "save_file": _save_file,
    "hf-sharded-safetensors": _hf_sharded,
    "hf-single-safetensors": _hf_single,
    "hf-sharded-bin": _hub_bin("50KB"),
    "hf-single-bin": _hub_bin("5GB"),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
@pytest.mark.parametrize("tied", [True, False], ids=["tied", "untied"])
def test_format_yields_model_state_dict(
    fmt: str,
    tied: bool,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    assert_matches_model: Callable[[Any, torch.nn.Module], None],
) -> None:
    model = request.getfixturevalue("llama_tied" if tied else "llama_untied")
    source = open_source(FORMATS[fmt](model, tmp_path))
    assert_matches_model(source, model)
    assert list(source) == list(source)  # re-iterable, same layers each time


@pytest.mark.parametrize("fmt", ["torch.save", "save_file", "hf-sharded-safetensors", "mapping"])
def test_bf16_stays_bf16(
    fmt: str,
    llama_bf16: torch.nn.Module,
    tmp_path: Path,
    assert_matches_model: Callable[[Any, torch.nn.Module], None],
) -> None:
    source = open_source(FORMATS[fmt](llama_bf16, tmp_path))
    assert {layer.dtype for layer in source} == {"bfloat16"}
    assert all(layer.load().dtype == torch.bfloat16 for layer in source)
    assert_matches_model(source, llama_bf16)


def test_hf_sharded_safetensors_has_several_shards(llama_untied: Any, tmp_path: Path) -> None:
    source = open_source(_hf_sharded(llama_untied, tmp_path))
    assert "shards" in source.description
    assert len(source) == len(llama_untied.state_dict())
