"""Tiny Hugging Face configurations shared by the tests (built locally, no download).

``tiny_config("llama", vocab_size=128)`` gives the family's small default with overrides;
tests that depend on a size pass it explicitly.
"""

from __future__ import annotations

from typing import Any

import pytest

DEFAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "llama": (
        "LlamaConfig",
        {
            "hidden_size": 64,
            "intermediate_size": 128,
            "num_hidden_layers": 2,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 256,
        },
    ),
    "gpt2": (
        "GPT2Config",
        {"n_embd": 32, "n_layer": 1, "n_head": 2, "vocab_size": 64, "n_positions": 16},
    ),
    "bert": (
        "BertConfig",
        {
            "hidden_size": 32,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 64,
            "vocab_size": 64,
            "max_position_embeddings": 16,
        },
    ),
}


def tiny_config(family: str, **overrides: Any) -> Any:
    """A small ``transformers`` config of ``family`` (llama, gpt2, bert); skips the test
    when transformers is not installed."""
    transformers = pytest.importorskip("transformers")
    name, values = DEFAULTS[family]
    return getattr(transformers, name)(**{**values, **overrides})
