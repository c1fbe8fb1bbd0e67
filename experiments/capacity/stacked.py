"""Train K same-shaped GPT-2 models at once, their weights stacked on a leading axis.

The capacity sweep trains many tiny models of one shape (one per data-set size and
seed). Stacking K of them turns K small matrix products into one batched product and
K Python-level passes into one. That saves the per-operation overhead only, a modest
share of a step at these sizes: per model, a stacked step costs 1.1-2.2x less than
Hugging Face's module (``benchmarks/capacity_stacked.py``), and a profile of a stacked
width-24 step is dominated by arithmetic (batched products ~35 %, GELU forward and
backward ~22 %, attention ~13 %). The profile leaves out the kernel's time: at a
vocabulary of 256 the stacked logits pass glibc's mmap threshold and 37 % of the CPU
time went to faulting freed memory back in, which ``run.keep_freed_memory`` removes.

Nothing couples the K models: the loss is the sum of the K per-model mean losses,
so model k's gradient is the gradient of its own loss, and AdamW without weight
decay updates every element from its own gradient history. Gradient clipping, when
on, is per model (:func:`clip_grad_norms`), so it couples nothing either.
Each model draws its batch from its own data set. The forward pass is GPT-2's
(Radford et al. 2019; Hugging Face ``GPT2LMHeadModel``): token plus position
embeddings, pre-LayerNorm blocks of causal multi-head attention and a GELU (tanh
form) MLP, a final LayerNorm and the tied unembedding. The tests check it against
``GPT2LMHeadModel`` logit for logit, and the memorized bits are always measured by
copying model k back into a ``GPT2LMHeadModel`` and calling the probe.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional

# Hugging Face parameter names of one block, and whether a Conv1D weight (x @ W).
BLOCK = (
    "ln_1.weight",
    "ln_1.bias",
    "attn.c_attn.weight",
    "attn.c_attn.bias",
    "attn.c_proj.weight",
    "attn.c_proj.bias",
    "ln_2.weight",
    "ln_2.bias",
    "mlp.c_fc.weight",
    "mlp.c_fc.bias",
    "mlp.c_proj.weight",
    "mlp.c_proj.bias",
)


def names(layers: int) -> list[str]:
    """The trainable tensors of a GPT-2 LM of ``layers`` blocks (the head is tied)."""
    blocks = [f"transformer.h.{i}.{n}" for i in range(layers) for n in BLOCK]
    return ["transformer.wte.weight", "transformer.wpe.weight", *blocks,
            "transformer.ln_f.weight", "transformer.ln_f.bias"]  # fmt: skip


def stack(models: list[nn.Module]) -> dict[str, torch.Tensor]:
    """The models' weights stacked on a new leading axis: leaf tensors to optimize."""
    layers = len(models[0].transformer.h)
    states = [dict(m.named_parameters()) for m in models]
    return {
        n: torch.stack([s[n].detach() for s in states]).clone().requires_grad_(True)
        for n in names(layers)
    }


def load(params: dict[str, torch.Tensor], k: int, model: nn.Module) -> nn.Module:
    """Copy model ``k`` of the stack into ``model`` (a GPT-2 LM of the same shape)."""
    own = dict(model.named_parameters())
    with torch.no_grad():
        for n, value in params.items():
            own[n].copy_(value[k])
    return model


def _layer_norm(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """LayerNorm over the last axis with per-model scale and shift, ε = 1e-5 (GPT-2)."""
    x = functional.layer_norm(x, x.shape[-1:], eps=1e-5)
    return x * w[:, None, None, :] + b[:, None, None, :]


def _linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-model x @ W + b: x [K, B, S, i], W [K, i, o] (a Conv1D weight), b [K, o]."""
    k, batch, seq, _ = x.shape
    y = torch.baddbmm(b[:, None, :], x.reshape(k, batch * seq, -1), w)
    return y.reshape(k, batch, seq, -1)


def _attention(x: torch.Tensor, p: dict[str, torch.Tensor], pre: str, heads: int) -> torch.Tensor:
    """Causal multi-head self-attention, scaled by 1/√d_head (GPT-2's c_attn, c_proj)."""
    k, batch, seq, width = x.shape
    qkv = _linear(x, p[pre + "attn.c_attn.weight"], p[pre + "attn.c_attn.bias"])
    q, key, v = (
        t.reshape(k * batch, seq, heads, width // heads).transpose(1, 2)
        for t in qkv.split(width, dim=-1)
    )
    out = functional.scaled_dot_product_attention(q, key, v, is_causal=True)
    out = out.transpose(1, 2).reshape(k, batch, seq, width)
    return _linear(out, p[pre + "attn.c_proj.weight"], p[pre + "attn.c_proj.bias"])


def logits(p: dict[str, torch.Tensor], ids: torch.Tensor, heads: int) -> torch.Tensor:
    """Logits [K, B, S, V] of the K stacked models on their token ids [K, B, S]."""
    wte, wpe = p["transformer.wte.weight"], p["transformer.wpe.weight"]
    seq = ids.shape[-1]
    models = torch.arange(ids.shape[0], device=ids.device)[:, None, None]
    h = wte[models, ids] + wpe[:, None, :seq]  # model k's embedding rows of ids[k]
    layers = (len(p) - 4) // len(BLOCK)
    for i in range(layers):
        pre = f"transformer.h.{i}."
        a = _layer_norm(h, p[pre + "ln_1.weight"], p[pre + "ln_1.bias"])
        h = h + _attention(a, p, pre, heads)
        m = _layer_norm(h, p[pre + "ln_2.weight"], p[pre + "ln_2.bias"])
        m = _linear(m, p[pre + "mlp.c_fc.weight"], p[pre + "mlp.c_fc.bias"])
        m = functional.gelu(m, approximate="tanh")
        h = h + _linear(m, p[pre + "mlp.c_proj.weight"], p[pre + "mlp.c_proj.bias"])
    h = _layer_norm(h, p["transformer.ln_f.weight"], p["transformer.ln_f.bias"])
    k, batch, _, width = h.shape
    out = torch.bmm(h.reshape(k, batch * seq, width), wte.transpose(1, 2))
    return out.reshape(k, batch, seq, -1)


def losses(p: dict[str, torch.Tensor], ids: torch.Tensor, heads: int) -> torch.Tensor:
    """Model k's mean next-token cross-entropy (nats), tokens 2..S as targets; [K].

    The same positions as Hugging Face's causal-LM loss with ``labels=input_ids``.
    Back-propagate their sum: each model's gradient is then that of its own loss.
    """
    out = logits(p, ids, heads)[:, :, :-1].float()
    k = out.shape[0]
    nll = functional.cross_entropy(out.reshape(-1, out.shape[-1]), ids[:, :, 1:].reshape(-1),
                          reduction="none")  # fmt: skip
    return nll.reshape(k, -1).mean(dim=1)


def clip_grad_norms(params: dict[str, torch.Tensor], max_norm: float) -> torch.Tensor:
    """Clip each model's gradient to global norm ``max_norm``; return the norms before [K].

    Model k's norm is ‖g_k‖ = sqrt(Σ_tensors Σ_elements g_k²) over its own tensors (the
    tied embedding once), and its gradient is scaled by min(1, max_norm / (‖g_k‖ + 1e-6)):
    ``torch.nn.utils.clip_grad_norm_`` applied to each model on its own (the rule of
    Pascanu, Mikolov & Bengio 2013, "On the difficulty of training recurrent neural
    networks", arXiv 1211.5063; Hugging Face's Trainer clips at 1.0 by default).
    """
    grads = [p.grad for p in params.values() if p.grad is not None]
    k = grads[0].shape[0]
    squares = torch.stack([g.reshape(k, -1).float().pow(2).sum(dim=1) for g in grads])
    norms = squares.sum(dim=0).sqrt()
    coef = (max_norm / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(coef.to(g.dtype).reshape(-1, *([1] * (g.dim() - 1))))
    return norms


def sample(
    data: torch.Tensor, sizes: torch.Tensor, batch: int, gen: torch.Generator
) -> torch.Tensor:
    """A batch [K, B, S] per model: B rows drawn uniformly from model k's first N_k rows.

    ``data`` [K, N_max, S] holds each model's data set padded to the longest; ``sizes``
    the N_k. Row r = ⌊u·N_k⌋ with u uniform on [0, 1) is uniform on 0..N_k − 1. The
    draws are made on the CPU (``gen`` is a CPU generator), then moved to ``data``'s
    device, so the batches are the same on every device.
    """
    u = torch.rand(data.shape[0], batch, generator=gen, dtype=torch.float64)
    rows = (u * sizes[:, None]).long().clamp_max(sizes[:, None] - 1).to(data.device)
    return torch.gather(data, 1, rows[:, :, None].expand(-1, -1, data.shape[-1]))
