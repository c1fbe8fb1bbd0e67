"""The nn.Module adapter: module types, tied parameters, compiled wrappers, lazy CPU copies."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from layerscope.adapters import open_source
from layerscope.adapters.torch_module import TorchModuleSource


class SmallCNN(nn.Module):
    """A conv net with a depthwise conv, a 1-d conv, attention, an embedding and a shared weight."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 8)
        self.conv1d = nn.Conv1d(8, 8, kernel_size=3)
        self.stem = nn.Conv2d(3, 16, kernel_size=3)
        self.depthwise = nn.Conv2d(16, 16, kernel_size=3, groups=16, bias=False)
        self.norm = nn.BatchNorm2d(16)
        self.attn = nn.MultiheadAttention(8, num_heads=2)
        self.head = nn.Linear(8, 10)
        self.head.weight = self.embed.weight  # tied
        self.scale = nn.Parameter(torch.ones(1))  # a parameter on the root module


def _by_name(source: Any) -> dict[str, Any]:
    return {layer.name: layer for layer in source}


def test_module_types_and_shapes() -> None:
    model = SmallCNN()
    layers = _by_name(open_source(model))
    assert layers["stem.weight"].module_type == "Conv2d"
    assert layers["depthwise.weight"].module_type == "Conv2d"
    assert layers["depthwise.weight"].shape == (16, 1, 3, 3)
    assert "depthwise.bias" not in layers
    assert layers["conv1d.weight"].module_type == "Conv1d"
    assert layers["embed.weight"].module_type == "Embedding"
    assert layers["attn.in_proj_weight"].module_type == "MultiheadAttention"
    assert layers["attn.in_proj_weight"].shape == (24, 8)
    assert layers["norm.weight"].module_type == "BatchNorm2d"
    assert layers["scale"].module_type == "SmallCNN"
    assert "norm.running_mean" not in layers  # parameters only, not buffers
    assert layers["stem.weight"].dtype == "float32"


def test_tied_parameter_listed_as_tied() -> None:
    model = SmallCNN()
    source = open_source(model)
    layers = {layer.name: layer for layer in source}
    assert layers["embed.weight"].tied_to is None
    assert layers["head.weight"].tied_to == "embed.weight"
    assert len(source) == len(layers) == len(list(model.parameters())) + 1


def test_gpt2_conv1d(gpt2: nn.Module) -> None:
    layers = _by_name(open_source(gpt2))
    c_attn = layers["transformer.h.0.attn.c_attn.weight"]
    assert c_attn.module_type == "Conv1D"
    assert c_attn.shape == (32, 96)  # HF Conv1D stores (in, out): transposed vs Linear
    assert layers["transformer.wte.weight"].module_type == "Embedding"
    assert layers["lm_head.weight"].tied_to == "transformer.wte.weight"
    assert c_attn.config is not None
    assert c_attn.config["n_head"] == 2  # HF config attached for fused-QKV splitting


def test_bert_linear(bert: nn.Module) -> None:
    layers = _by_name(open_source(bert))
    query = layers["encoder.layer.0.attention.self.query.weight"]
    assert query.module_type == "Linear"
    assert query.shape == (32, 32)


def test_compiled_module_prefix_stripped() -> None:
    model = SmallCNN()
    compiled = torch.compile(model, backend="eager")
    raw = [name for name, _ in compiled.named_parameters()]
    assert all(name.startswith("_orig_mod.") for name in raw)
    source = open_source(compiled)
    assert [layer.name for layer in source] == [layer.name for layer in open_source(model)]
    assert source.description == "torch module SmallCNN"


def test_load_is_detached_cpu_and_lazy() -> None:
    model = SmallCNN()
    layer = _by_name(open_source(model))["stem.weight"]
    with torch.no_grad():
        model.stem.weight.mul_(2.0)  # load() reads the parameter when called, not before
    tensor = layer.load()
    assert not tensor.requires_grad
    assert tensor.device.type == "cpu"
    assert torch.equal(tensor, model.stem.weight.detach())


def test_explicit_config_wins() -> None:
    source = TorchModuleSource(nn.Linear(2, 3), config={"num_attention_heads": 1})
    (layer, _bias) = list(source)
    assert layer.config == {"num_attention_heads": 1}


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_module_loads_to_cpu() -> None:
    model = SmallCNN().cuda()
    layer = _by_name(open_source(model))["stem.weight"]
    tensor = layer.load()
    assert tensor.device.type == "cpu"
    assert torch.equal(tensor, model.stem.weight.detach().cpu())
