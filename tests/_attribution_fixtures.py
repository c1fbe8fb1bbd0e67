"""A planted fine-tune: a tiny GPT-2 built here, tuned on 4 known documents of 40."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import torch

V = 64
NUM_DOCS = 40
TRUE = (3, 11, 25, 37)


def documents() -> torch.Tensor:
    """40 documents of 24 uniformly random tokens (seeded)."""
    return torch.randint(0, V, (NUM_DOCS, 24), generator=torch.Generator().manual_seed(1))


def tiny_gpt2(seed: int = 0, n_embd: int = 32) -> Any:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=V, n_positions=32, n_embd=n_embd, n_layer=2, n_head=2
    )
    return transformers.GPT2LMHeadModel(config).eval()


def finetune(model: Any, docs: torch.Tensor, *, adam: bool = False, steps: int = 30) -> Any:
    """A copy of ``model`` trained full-batch on ``docs`` (SGD lr 0.1, or AdamW lr 1e-3)."""
    tuned = copy.deepcopy(model).train()
    params = [p for p in tuned.parameters() if p.requires_grad]
    opt = (
        torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
        if adam
        else torch.optim.SGD(params, lr=0.1)
    )
    for _ in range(steps):
        opt.zero_grad()
        tuned(docs, labels=docs).loss.backward()
        opt.step()
    return tuned.eval()


def delta(base: Any, tuned: Any) -> dict[str, torch.Tensor]:
    params = dict(base.named_parameters())
    return {n: p.detach() - params[n].detach() for n, p in tuned.named_parameters()}


def tokenizer(unknown: str = "w0") -> Any:
    """A word-level tokenizer mapping "wK" to id K (K < 64), built here (no download)."""
    pytest.importorskip("tokenizers")
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {f"w{k}": k for k in range(V)}
    if unknown not in vocab:
        vocab = {**{f"w{k}": k for k in range(V - 1)}, unknown: V - 1}
    raw = Tokenizer(models.WordLevel(vocab, unk_token=unknown))
    raw.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    return PreTrainedTokenizerFast(tokenizer_object=raw, unk_token=unknown)


def text(ids: torch.Tensor) -> str:
    return " ".join(f"w{int(k)}" for k in ids)


def save(model: Any, directory: Path, tok: Any = None) -> Path:
    model.save_pretrained(directory)
    if tok is not None:
        tok.save_pretrained(directory)
    return directory
