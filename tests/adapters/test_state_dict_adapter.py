"""State dicts in memory and torch checkpoint files: containers, pickle safety, corruption."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from layerscope.adapters import SourceError, open_source

RAN: list[str] = []


def _record(what: str) -> str:
    RAN.append(what)
    return what


class Gadget:
    """Unpickles by calling ``os.system``: harmless here (touches a file), but arbitrary code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.system, (f"touch {self.marker}",))


class Recorder:
    """Unpickles by calling a harmless function that records it ran."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (_record, ("unpickled",))


def _weights() -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {"layer.weight": torch.randn(4, 3), "layer.bias": torch.randn(4)}


def _names(source: Any) -> list[str]:
    return [layer.name for layer in source]


def test_mapping_with_numpy_arrays() -> None:
    array = np.arange(12, dtype=np.float32).reshape(3, 4)
    readonly = np.arange(6, dtype=np.float64).reshape(2, 3)
    readonly.flags.writeable = False
    source = open_source({"a.weight": array, "b.weight": readonly.T, "labels": np.array(["x"])})
    layers = {layer.name: layer for layer in source}
    assert set(layers) == {"a.weight", "b.weight"}  # non-numeric arrays are not weights
    assert layers["a.weight"].shape == (3, 4)
    assert layers["a.weight"].dtype == "float32"
    assert torch.equal(layers["a.weight"].load(), torch.from_numpy(array))
    assert layers["b.weight"].dtype == "float64"
    assert np.array_equal(layers["b.weight"].load().numpy(), readonly.T)


def test_nested_mapping_flattened_and_non_tensors_ignored() -> None:
    weights = _weights()
    source = open_source({"encoder": {"layer": weights}, "step": 7, "note": "hi"})
    assert _names(source) == ["encoder.layer.layer.weight", "encoder.layer.layer.bias"]
    assert source.description == "state dict (2 tensors)"


@pytest.mark.parametrize("key", ["state_dict", "model_state_dict", "model", "module", "ema"])
def test_checkpoint_container_unwrapped(key: str, tmp_path: Path) -> None:
    weights = _weights()
    checkpoint = {
        key: weights,
        "epoch": 3,
        "optimizer": {"state": {0: {"exp_avg": torch.zeros(4, 3)}}, "param_groups": []},
    }
    torch.save(checkpoint, tmp_path / "run.ckpt")
    for source in (open_source(checkpoint), open_source(tmp_path / "run.ckpt")):
        assert _names(source) == list(weights)


def test_lightning_checkpoint(tmp_path: Path) -> None:
    weights = {f"model.{name}": tensor for name, tensor in _weights().items()}
    checkpoint = {
        "epoch": 3,
        "global_step": 120,
        "pytorch-lightning_version": "2.4.0",
        "state_dict": weights,
        "optimizer_states": [{"state": {}, "param_groups": [{"lr": 0.1}]}],
        "lr_schedulers": [],
        "hyper_parameters": {"lr": 0.1, "hidden": 64},
    }
    torch.save(checkpoint, tmp_path / "epoch=3.ckpt")
    source = open_source(tmp_path / "epoch=3.ckpt")
    layers = {layer.name: layer for layer in source}
    assert set(layers) == set(weights)
    assert torch.equal(layers["model.layer.weight"].load(), weights["model.layer.weight"])


def test_ddp_and_compile_prefixes_stripped(tmp_path: Path) -> None:
    weights = {f"module._orig_mod.{name}": tensor for name, tensor in _weights().items()}
    torch.save(weights, tmp_path / "ddp.pt")
    assert _names(open_source(tmp_path / "ddp.pt")) == list(_weights())


def test_checkpoint_loaded_safely_and_memory_mapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    torch.save(_weights(), tmp_path / "w.pt")
    calls: list[dict[str, Any]] = []
    real_load = torch.load

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append(kwargs)
        return real_load(*args, **kwargs)

    monkeypatch.setattr(torch, "load", spy)
    source = open_source(tmp_path / "w.pt")
    assert len(source) == 2
    assert calls == [{"map_location": "cpu", "weights_only": True, "mmap": True}]


def test_malicious_pickle_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    torch.save({"w": torch.ones(2, 2), "payload": Gadget(marker)}, tmp_path / "evil.pt")
    with pytest.raises(SourceError) as excinfo:
        open_source(tmp_path / "evil.pt")
    message = str(excinfo.value)
    assert not marker.exists()
    assert "evil.pt" in message
    assert "allow_unsafe_pickle=True" in message
    assert "--unsafe-pickle" in message
    assert "\n" not in message


def test_unsafe_flag_allows_arbitrary_pickle(tmp_path: Path) -> None:
    torch.save({"w": torch.ones(2, 2), "payload": Recorder()}, tmp_path / "custom.pt")
    RAN.clear()
    with pytest.raises(SourceError, match="unsafe-pickle"):
        open_source(tmp_path / "custom.pt")
    assert RAN == []
    source = open_source(tmp_path / "custom.pt", allow_unsafe_pickle=True)
    assert RAN == ["unpickled"]
    assert _names(source) == ["w"]


def test_pickled_module_goes_to_module_adapter(tmp_path: Path) -> None:
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4, 2))
    torch.save(model, tmp_path / "whole.pth")
    with pytest.raises(SourceError, match=r"whole\.pth.*unsafe"):
        open_source(tmp_path / "whole.pth")
    source = open_source(tmp_path / "whole.pth", allow_unsafe_pickle=True)
    types = {layer.name: layer.module_type for layer in source}
    assert types == {
        "0.weight": "Conv2d",
        "0.bias": "Conv2d",
        "2.weight": "Linear",
        "2.bias": "Linear",
    }
    assert "whole.pth" in source.description


@pytest.mark.parametrize("keep", [10, 200, -40], ids=["header", "middle", "tail"])
@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_truncated_checkpoint(keep: int, legacy: bool, tmp_path: Path) -> None:
    torch.save(_weights(), tmp_path / "full.pt", _use_new_zipfile_serialization=not legacy)
    data = (tmp_path / "full.pt").read_bytes()
    (tmp_path / "cut.pt").write_bytes(data[:keep])
    with pytest.raises(SourceError, match=r"cut\.pt") as excinfo:
        open_source(tmp_path / "cut.pt")
    assert "\n" not in str(excinfo.value)


def test_garbage_checkpoint(tmp_path: Path) -> None:
    (tmp_path / "junk.bin").write_bytes(b"not a checkpoint at all" * 20)
    with pytest.raises(SourceError, match=r"junk\.bin"):
        open_source(tmp_path / "junk.bin")


def test_checkpoint_without_tensors(tmp_path: Path) -> None:
    torch.save({"epoch": 3}, tmp_path / "meta.pt")
    with pytest.raises(SourceError, match=r"meta\.pt holds no tensors"):
        open_source(tmp_path / "meta.pt")
