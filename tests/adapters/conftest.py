"""Tiny real models (built from configs, no network) shared by the adapter tests."""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import pytest
import torch

from _hf_models import tiny_config


def _llama(tie: bool) -> torch.nn.Module:
    transformers = pytest.importorskip("transformers")
    config = tiny_config("llama", tie_word_embeddings=tie)
    torch.manual_seed(0)
    return transformers.LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def llama_tied() -> torch.nn.Module:
    return _llama(tie=True)


@pytest.fixture(scope="session")
def llama_untied() -> torch.nn.Module:
    return _llama(tie=False)


@pytest.fixture(scope="session")
def llama_bf16(llama_untied: torch.nn.Module) -> torch.nn.Module:
    return copy.deepcopy(llama_untied).to(torch.bfloat16)


@pytest.fixture(scope="session")
def gpt2() -> torch.nn.Module:
    transformers = pytest.importorskip("transformers")
    config = tiny_config(
        "gpt2", n_layer=2, vocab_size=100, n_positions=64, bos_token_id=0, eos_token_id=0
    )
    torch.manual_seed(0)
    return transformers.GPT2LMHeadModel(config).eval()


@pytest.fixture(scope="session")
def bert() -> torch.nn.Module:
    transformers = pytest.importorskip("transformers")
    config = tiny_config("bert", num_hidden_layers=2, vocab_size=100, max_position_embeddings=64)
    torch.manual_seed(0)
    return transformers.BertModel(config).eval()


def _same_storage(a: torch.Tensor, b: torch.Tensor) -> bool:
    return a.data_ptr() == b.data_ptr() and a.shape == b.shape


@pytest.fixture
def assert_matches_model() -> Callable[[Any, torch.nn.Module], None]:
    """Check a source yields exactly the model's state dict (tied duplicates may be dropped).

    Shapes and dtypes announced by each layer must match the tensor ``load()`` returns,
    and ``load()`` must return a CPU tensor in the stored dtype.
    """

    def check(source: Any, model: torch.nn.Module) -> None:
        expected = model.state_dict()
        loaded = {}
        for layer in source:
            tensor = layer.load()
            assert tensor.device.type == "cpu"
            assert layer.shape == tuple(tensor.shape), layer.name
            assert layer.dtype == str(tensor.dtype).removeprefix("torch."), layer.name
            assert layer.name not in loaded, f"{layer.name} yielded twice"
            loaded[layer.name] = tensor
        assert len(source) == len(loaded)
        for name, tensor in loaded.items():
            assert name in expected, f"unexpected {name}"
            assert tensor.dtype == expected[name].dtype, name
            assert torch.equal(tensor, expected[name]), name
        for name, tensor in expected.items():
            if name not in loaded:
                tied = [other for other in loaded if _same_storage(expected[other], tensor)]
                assert tied, f"{name} missing and not tied to a yielded tensor"

    return check
