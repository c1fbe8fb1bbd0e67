"""Memorized bits of a causal language model: compression gain over a reference.

Morris et al. (2025), "How much do language models memorize?" (arXiv 2505.24832),
measure what a model θ stores about a sample x as the bits it saves when coding x:

    bits(x) = max(0, H_ref(x) − H_θ(x)),   H_m(x) = −log₂ p_m(x) = −Σ_t log₂ p_m(x_t | x_<t)

with the reference p_ref the uniform distribution over the vocabulary for uniformly
random data (H_ref(x) = n·log₂ V for n scored tokens: the data's true entropy, so
nothing is generalizable and every saved bit is memorized) or, for real text, a
reference model trained on other data (their "unintended memorization"). The total
over a data set, divided by the parameter count, is the capacity in bits per
parameter the paper measures (≈ 3.6 for GPT-style models).

Which tokens are scored. A causal LM without a beginning-of-sequence token has no
distribution for the first token of x, so by default tokens 2..n are scored — the
positions of the Hugging Face causal-LM loss (``labels=input_ids``) — and the
reference is scored on the same positions, so the two code lengths are comparable.
With ``bos_token_id`` every sequence is prefixed with that token and all its n
tokens are scored. The difference is at most log₂ V bits per sample (11 of 704 for
the paper's V = 2048, n = 64). We could not confirm from the paper which of the two
its figures use.

The model is evaluated in ``eval()`` mode under ``no_grad`` (mode restored). Memory
is bounded by one batch of logits: per-token log-probabilities are reduced to one
number per sample before the next batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from layerscope.probes._memorization_result import MemorizationResult
from layerscope.scan import ProgressEvent

__all__ = ["MemorizationResult", "count_parameters", "memorized_bits", "sequence_bits"]

Reference = str | nn.Module
CHUNK_ELEMENTS = 1 << 24  # logits per cross-entropy chunk: 64 MB in float32
Progress = Callable[[ProgressEvent], None]


def count_parameters(model: nn.Module) -> int:
    """Parameters of ``model``, tied/shared tensors counted once."""
    return sum(p.numel() for p in model.parameters())


def logits_of(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """``model(ids)`` as a (batch, length, V) logits tensor: a plain tensor, a
    ``transformers`` output with ``.logits``, or a tuple whose first item is the logits."""
    out = model(ids)
    if isinstance(out, torch.Tensor):
        logits = out
    elif hasattr(out, "logits"):
        logits = out.logits
    elif isinstance(out, tuple | list) and out and isinstance(out[0], torch.Tensor):
        logits = out[0]
    else:
        raise ValueError(f"{type(model).__name__} returned {type(out).__name__}, not logits")
    if logits.dim() != 3 or logits.shape[:2] != ids.shape:
        raise ValueError(
            f"{type(model).__name__}: logits of shape {tuple(logits.shape)} for input "
            f"{tuple(ids.shape)}; expected (batch, length, vocab)"
        )
    return logits


def sequence_bits(
    model: nn.Module, ids: torch.Tensor, bos_token_id: int | None = None
) -> torch.Tensor:
    """−log₂ p(x) of each row of ``ids`` (batch, n) over the scored tokens (see module doc).

    Per-token −log₂ p(x_t | x_<t) = cross-entropy(logits_{t−1}, x_t) / ln 2, in float32
    or wider, summed over t in float64. Only the model's one batch of logits is alive at
    full size: the cross-entropy runs over chunks of positions of at most
    ``CHUNK_ELEMENTS`` logits, so its float32 copy and log-softmax stay small (a whole
    batch at once peaked at 3x the logits' memory: 1.24 GB for 0.41 GB of logits).
    """
    if bos_token_id is not None:
        bos = torch.full_like(ids[:, :1], bos_token_id)
        ids = torch.cat([bos, ids], dim=1)
    logits = logits_of(model, ids)
    targets = ids[:, 1:]
    batch, scored = targets.shape
    vocab = logits.shape[-1]
    step = max(1, CHUNK_ELEMENTS // max(1, batch * vocab))
    total = torch.zeros(batch, dtype=torch.float64, device=logits.device)
    for start in range(0, scored, step):
        end = min(start + step, scored)  # logits at t predict token t + 1; the last none
        chunk, wanted = logits[:, start:end], targets[:, start:end]
        if chunk.dtype in (torch.float16, torch.bfloat16):
            chunk = chunk.float()
        nats = nn.functional.cross_entropy(
            chunk.reshape(-1, vocab), wanted.reshape(-1), reduction="none"
        )
        total += nats.view(wanted.shape).double().sum(dim=1)
    return total / math.log(2.0)


def _as_sequences(data: Any) -> list[torch.Tensor]:
    if isinstance(data, np.ndarray | torch.Tensor):
        tensor = torch.as_tensor(data)
        if tensor.dim() != 2:
            raise ValueError(
                f"data: expected (samples, length) token ids, got {tuple(tensor.shape)}"
            )
        rows = list(tensor)
    else:
        rows = [torch.as_tensor(row) for row in data]
    for i, row in enumerate(rows):
        if row.dim() != 1 or row.is_floating_point() or row.is_complex():
            raise ValueError(f"data: sample {i} is not a 1-D sequence of integer token ids")
    return [row.long() for row in rows]


def _batches(lengths: Sequence[int], batch_size: int) -> list[list[int]]:
    """Sample indices grouped by length (no padding needed), at most ``batch_size`` each."""
    order = sorted(range(len(lengths)), key=lambda i: (lengths[i], i))
    groups: list[list[int]] = []
    for i in order:
        if groups and len(groups[-1]) < batch_size and lengths[groups[-1][0]] == lengths[i]:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def _check(rows: list[torch.Tensor], bos_token_id: int | None, batch_size: int) -> None:
    if not rows:
        raise ValueError("data: no samples")
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    shortest = min(row.numel() for row in rows)
    if shortest < (1 if bos_token_id is not None else 2):
        raise ValueError(f"data: a sample of {shortest} token(s) has no token to score")


def memorized_bits(
    model: nn.Module,
    data: Any,
    *,
    reference: Reference = "uniform",
    bos_token_id: int | None = None,
    batch_size: int = 32,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> MemorizationResult:
    """Memorized bits per sample, bits(x) = max(0, H_ref(x) − H_θ(x)) (Morris et al. 2025).

    Args:
        model: a causal LM: a ``transformers`` model or any module mapping (batch, n)
            token ids to (batch, n, V) logits (or an output with ``.logits``).
        data: a (samples, n) integer array/tensor, or a sequence of 1-D token-id
            sequences (lengths may differ; equal lengths are batched together).
        reference: ``"uniform"`` (H_ref = scored tokens · log₂ V) or a reference model
            with the same vocabulary, scored on the same tokens.
        bos_token_id: prefix each sample with this token and score all its tokens;
            ``None`` (default) scores tokens 2..n.
        batch_size: samples per forward pass.
        device: where to run (default: where the model's parameters are).
        progress: called with a :class:`~layerscope.scan.ProgressEvent` after each batch.

    Returns:
        A :class:`MemorizationResult`; ``.total_bits`` and ``.bits_per_parameter``.
    """
    rows = _as_sequences(data)
    _check(rows, bos_token_id, batch_size)
    if device is None:
        device = next(iter(model.parameters()), torch.empty(0)).device
    models = [model] if isinstance(reference, str) else [model, reference]
    if isinstance(reference, str) and reference != "uniform":
        raise ValueError(f"reference must be 'uniform' or an nn.Module, got {reference!r}")
    if not isinstance(reference, str):
        _same_vocab(model, reference, rows[0][:1].unsqueeze(0).to(device))
    bits = np.zeros((len(models), len(rows)), dtype=np.float64)
    vocab = 0
    modes = [m.training for m in models]
    groups = _batches([row.numel() for row in rows], batch_size)
    try:
        for m in models:
            m.eval()
        with torch.no_grad():
            for done, group in enumerate(groups, 1):
                ids = torch.stack([rows[i] for i in group]).to(device)
                for k, m in enumerate(models):
                    bits[k, group] = sequence_bits(m, ids, bos_token_id).cpu().numpy()
                vocab = vocab or _vocab_size(model, ids[:1])
                if progress is not None:
                    progress(ProgressEvent(done, len(groups), "memorized bits"))
    finally:
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)
    scored = np.array([row.numel() - (bos_token_id is None) for row in rows], dtype=np.int64)
    ref_bits = scored * math.log2(vocab) if isinstance(reference, str) else bits[1]
    name = "uniform" if isinstance(reference, str) else type(reference).__name__
    return MemorizationResult(
        bits[0],
        np.asarray(ref_bits, dtype=np.float64),
        scored,
        name,
        vocab,
        count_parameters(model),
    )


def _vocab_size(model: nn.Module, ids: torch.Tensor) -> int:
    with torch.no_grad():
        return int(logits_of(model, ids[:, :1]).shape[-1])


def _same_vocab(model: nn.Module, reference: nn.Module, ids: torch.Tensor) -> None:
    v_model, v_ref = _vocab_size(model, ids), _vocab_size(reference, ids)
    if v_model != v_ref:
        raise ValueError(
            f"reference {type(reference).__name__} has a vocabulary of {v_ref} tokens, "
            f"the model {v_model}: the code lengths are not comparable"
        )
