"""Which candidate documents a fine-tune was trained on, from the weights alone.

SELECT (Morris, Yin, Kim, Shmatikov & Rush 2025, "Approximating Language Model
Training Data from Weights", arXiv 2506.15553). Gradient descent moves the weights
against the loss gradient, so the update Δ = θ_tuned − θ_base points along −Σᵢ ∇L(xᵢ)
over the documents xᵢ trained on. For each candidate x:

    g(x) = Σ_{c=0}^{C−1} S ∇_θ L(x; θ_base + (c/C)·Δ),   ĝ(x) = g(x) / ‖g(x)‖,
    t = −S Δ / ‖S Δ‖,    alignment(x) = ⟨ĝ(x), t⟩

with L the mean next-token cross-entropy of x, ∇ taken only over the parameters
that changed, S a fixed random projection to ``projection_dim`` dimensions (a
CountSketch, :mod:`layerscope.probes._sketch`; the paper projects with a dense
Rademacher matrix — same inner-product guarantee, O(P) instead of O(P·dim) per
document) and C "synthetic checkpoints" on the straight line from base to tuned (the
paper's stand-in for the unknown training trajectory; C = 1 is the base model only).

Selection is greedy for coverage, as in the paper: starting from an empty set S*,
add the document that maximises cos(Σ_{x∈S*∪{x'}} ĝ(x), t). The first pick is the
most aligned document; later picks favour documents that explain the part of t the
selected ones leave unexplained over near-duplicates of them. (The paper's greedy
step subtracts a learning-rate-scaled full-resolution gradient from the residual;
the normalised running sum used here needs no learning rate.) ``order="alignment"``
selects the ``top`` most aligned documents instead: in our validation on real text,
where the pool holds no near-duplicates, it found more of the training documents than
the greedy order in every setting (docs/memorization.md).

Full fine-tunes: Δ from the two weight sets (:func:`delta_from_weights`); PEFT LoRA
adapters: Δ = s·B·A per target (:func:`delta_from_lora`, Hu et al. 2021, arXiv
2106.09685), with gradients restricted to the tangent space LoRA can move in (our
addition; see :func:`delta_from_lora`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from layerscope.adapters.base import LayerWeights
from layerscope.adapters.peft import LoraFactors
from layerscope.probes._attribution_result import AttributionResult
from layerscope.probes._sketch import CountSketch
from layerscope.probes.memorization import logits_of
from layerscope.scan import ProgressEvent

__all__ = [
    "AttributionOptions",
    "AttributionResult",
    "Progress",
    "Tangent",
    "aligned_select",
    "attribute",
    "delta_from_lora",
    "delta_from_weights",
    "document_gradients",
    "greedy_select",
    "tangent_part",
]

Progress = Callable[[ProgressEvent], None]
Tangent = tuple[torch.Tensor, torch.Tensor]


ORDERS = ("greedy", "alignment")


@dataclass(frozen=True)
class AttributionOptions:
    """Options of :func:`attribute` (validated on construction).

    Attributes:
        top: documents to select greedily (at most the number of candidates).
        projection_dim: dimension of the random projection of every gradient.
        seed: seed of the projection.
        checkpoints: C, synthetic checkpoints θ_base + (c/C)·Δ, c = 0..C−1.
        device: where the gradients are computed (default: the model's device).
        order: ``"greedy"`` (coverage, the paper's) or ``"alignment"`` (most aligned first).
    """

    top: int = 10
    projection_dim: int = 1024
    seed: int = 0
    checkpoints: int = 1
    device: str | None = None
    order: str = "greedy"

    def __post_init__(self) -> None:
        for name in ("top", "projection_dim", "checkpoints"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.order not in ORDERS:
            raise ValueError(f"order must be one of {ORDERS}, got {self.order!r}")


# ---------------------------------------------------------------- the weight delta


def _parameters(base: nn.Module) -> dict[str, nn.Parameter]:
    return dict(base.named_parameters())


def delta_from_weights(
    base: nn.Module, tuned: Iterable[LayerWeights], where: str = "tuned"
) -> dict[str, torch.Tensor]:
    """Δ = θ_tuned − θ_base for every base parameter that changed.

    ``tuned`` is a stream of named tensors (an adapter source); names the base model
    does not have as parameters (buffers, a tied ``lm_head`` saved twice) are ignored.

    Raises:
        ValueError: a base parameter missing from ``tuned`` or of another shape.
    """
    params = _parameters(base)
    delta: dict[str, torch.Tensor] = {}
    seen: set[str] = set()
    for layer in tuned:
        param = params.get(layer.name)
        if param is None:
            continue
        if tuple(layer.shape) != tuple(param.shape):
            raise ValueError(
                f"{where}: {layer.name} has shape {tuple(layer.shape)}, "
                f"the base model {tuple(param.shape)}"
            )
        seen.add(layer.name)
        diff = layer.load().to(param.device, torch.float32) - param.detach().float()
        if bool(torch.any(diff != 0)):
            delta[layer.name] = diff
    missing = [name for name in params if name not in seen]
    if missing:
        raise ValueError(f"{where}: lacks {len(missing)} base parameter(s), e.g. {missing[0]}")
    return delta


def _lora_update(
    f: LoraFactors, param: torch.Tensor, fan_in_fan_out: bool, where: str
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(Δ, left, right) of one target in the base parameter's layout: Δ = s·B·A, or its
    transpose where the base stores Wᵀ; left/right span Δ's column/row space."""
    B, A = f.B.load().float(), f.A.load().float()
    update, left, right = f.scale * (B @ A), B, A.T
    if fan_in_fan_out or "lora_embedding" in f.A.name:
        update, left, right = update.T, A.T, B
    if tuple(update.shape) != tuple(param.shape):
        raise ValueError(
            f"{where}: the update of {f.module} has shape {tuple(update.shape)}, "
            f"the base weight {tuple(param.shape)}"
        )
    return update, left, right


def delta_from_lora(
    base: nn.Module, factors: Sequence[LoraFactors], *, fan_in_fan_out: bool, where: str
) -> tuple[dict[str, torch.Tensor], dict[str, Tangent]]:
    """Δ = s·B·A per LoRA target (transposed where the base stores Wᵀ: GPT-2's
    ``Conv1D``, PEFT's ``fan_in_fan_out``; embeddings: Δ = s·(B·A)ᵀ), and for each
    target orthonormal bases (U, V) of Δ's column and row spaces.

    LoRA moves W only along dW = dB·A + B·dA, the tangent space of the rank-r matrices
    at Δ: {U X + Y Vᵀ}. Gradient components outside it cannot show up in Δ, yet they
    would weigh in a document's gradient norm; :func:`attribute` therefore scores the
    tangent part T(G) = U Uᵀ G + G V Vᵀ − U Uᵀ G V Vᵀ of every gradient G (the
    numerator ⟨G, Δ⟩ is unchanged, as T(Δ) = Δ). On the planted test case with r = 4
    (six settings of steps and targets) tangent parts recovered all 4 training
    documents in 5 settings, raw gradients in 2 (docs/memorization.md).
    """
    params = _parameters(base)
    delta: dict[str, torch.Tensor] = {}
    tangents: dict[str, Tangent] = {}
    for f in factors:
        param = params.get(f.base_name)
        if param is None:
            raise ValueError(f"{where}: targets {f.base_name}, which the base model lacks")
        update, left, right = _lora_update(f, param, fan_in_fan_out, where)
        delta[f.base_name] = update.to(param.device)
        tangents[f.base_name] = (
            torch.linalg.qr(left)[0].to(param.device),
            torch.linalg.qr(right)[0].to(param.device),
        )
    return delta, tangents


def tangent_part(grad: torch.Tensor, tangent: Tangent) -> torch.Tensor:
    """T(G) = U Uᵀ G + G V Vᵀ − U Uᵀ G V Vᵀ, the part of G in the tangent space
    {U X + Y Vᵀ} (U, V with orthonormal columns)."""
    U, V = tangent
    G = grad.to(U.dtype)
    left = U @ (U.T @ G)
    return left + (G @ V) @ V.T - (left @ V) @ V.T


# ---------------------------------------------------------------- gradients and selection


def _loss(model: nn.Module, ids: torch.Tensor) -> torch.Tensor:
    logits = logits_of(model, ids[None])[0, :-1].float()
    return nn.functional.cross_entropy(logits, ids[1:])


def document_gradients(
    model: nn.Module,
    documents: Sequence[torch.Tensor],
    delta: Mapping[str, torch.Tensor],
    sketch: CountSketch,
    *,
    checkpoints: int = 1,
    tangents: Mapping[str, Tangent] | None = None,
    progress: Progress | None = None,
) -> torch.Tensor:
    """g(x) for every document (see module doc): an (N, dim) float64 tensor; the
    gradient of a parameter named in ``tangents`` is replaced by its :func:`tangent_part`.

    The parameters in ``delta`` are moved to each synthetic checkpoint in place and
    restored afterwards; only they get gradients (the others are frozen meanwhile).
    """
    params = _parameters(model)
    names = sorted(delta)
    device = params[names[0]].device
    saved = {n: params[n].detach().clone() for n in names}
    flags = {n: p.requires_grad for n, p in params.items()}
    training = model.training
    out = torch.zeros(len(documents), sketch.dim, dtype=torch.float64)
    total = checkpoints * len(documents)
    try:
        model.eval()
        for n, p in params.items():
            p.requires_grad_(n in delta)
        for c in range(checkpoints):
            with torch.no_grad():
                for n in names:
                    params[n].copy_(saved[n] + (c / checkpoints) * delta[n].to(saved[n].dtype))
            for i, doc in enumerate(documents):
                grads = torch.autograd.grad(
                    _loss(model, doc.to(device)), [params[n] for n in names]
                )
                parts = [
                    tangent_part(g, tangents[n]) if tangents and n in tangents else g
                    for n, g in zip(names, grads, strict=True)
                ]
                out[i] += sketch.project(zip(names, parts, strict=True))
                if progress is not None:
                    done = c * len(documents) + i + 1
                    progress(ProgressEvent(done, total, f"gradients (checkpoint {c + 1})"))
    finally:
        with torch.no_grad():
            for n in names:
                params[n].copy_(saved[n])
        for n, p in params.items():
            p.requires_grad_(flags[n])
        model.train(training)
    return out


def aligned_select(
    grads: torch.Tensor, target: torch.Tensor, k: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """The ``k`` rows of ``grads`` (unit rows) most aligned with the unit ``target``, and
    the coverage cos(s, t) of their running sum s after each pick (as :func:`greedy_select`).
    """
    g_t = grads @ target
    picked = torch.argsort(g_t, descending=True, stable=True)[: min(k, grads.shape[0])]
    chosen = grads[picked]
    s_t = torch.cumsum(g_t[picked].double(), 0)
    # ‖s_r‖² = Σ_{i,j ≤ r} ⟨ĝᵢ, ĝⱼ⟩: the running sums of the chosen rows' Gram matrix.
    s_s = torch.cumsum(torch.cumsum((chosen @ chosen.T).double(), 0), 1).diagonal()
    coverage = s_t / torch.sqrt(s_s.clamp(min=1e-300))
    return picked.numpy().astype(np.int64), coverage.numpy()


def greedy_select(
    grads: torch.Tensor, target: torch.Tensor, k: int
) -> tuple[NDArray[np.int64], NDArray[np.float64]]:
    """Greedy coverage: repeatedly add the row i of ``grads`` (unit rows) maximising
    cos(s + ĝᵢ, t), s the sum of the rows picked so far; ``target`` t is a unit vector.

    ‖s + ĝᵢ‖² = ‖s‖² + 2⟨ĝᵢ, s⟩ + ‖ĝᵢ‖², so each step costs one (N, dim) product.

    Returns:
        The picked indices in order, and the cosine reached after each pick.
    """
    g_t = grads @ target
    g_s = torch.zeros_like(g_t)
    g_g = (grads * grads).sum(dim=1)
    s_t, s_s = 0.0, 0.0
    picked: list[int] = []
    coverage: list[float] = []
    for _ in range(min(k, grads.shape[0])):
        norm = torch.sqrt(torch.clamp(s_s + 2 * g_s + g_g, min=0.0))
        score = torch.where(norm > 0, (s_t + g_t) / norm, torch.full_like(norm, -2.0))
        score[picked] = -torch.inf
        j = int(torch.argmax(score))
        picked.append(j)
        coverage.append(float(score[j]))
        s_t, s_s = s_t + float(g_t[j]), s_s + 2 * float(g_s[j]) + float(g_g[j])
        g_s += grads @ grads[j]
    return np.array(picked, dtype=np.int64), np.array(coverage, dtype=np.float64)


def _documents(documents: Sequence[Any]) -> list[torch.Tensor]:
    if not documents:
        raise ValueError("no candidate documents")
    docs = [torch.as_tensor(d).long().reshape(-1) for d in documents]
    short = [i for i, d in enumerate(docs) if d.numel() < 2]
    if short:
        raise ValueError(f"candidate {short[0]} has fewer than 2 tokens: no next token to score")
    return docs


def attribute(
    base: nn.Module,
    delta: Mapping[str, torch.Tensor],
    documents: Sequence[Any],
    *,
    ids: Sequence[str] | None = None,
    tangents: Mapping[str, Tangent] | None = None,
    progress: Progress | None = None,
    **options: Any,
) -> AttributionResult:
    """Rank candidate documents by how well their loss gradients at ``base`` explain Δ.

    Args:
        base: the base causal LM (``transformers`` or any module returning logits).
        delta: Δ per parameter name of ``base`` (:func:`delta_from_weights`,
            :func:`delta_from_lora`).
        documents: token-id sequences (1-D, at least 2 tokens each).
        ids: an identifier per document (default: its index).
        tangents: LoRA tangent bases per parameter (from :func:`delta_from_lora`).
        progress: called with a :class:`~layerscope.scan.ProgressEvent` per gradient.
        **options: :class:`AttributionOptions` fields.
    """
    opts = AttributionOptions(**options)
    docs = _documents(documents)
    names = [str(i) for i in range(len(docs))] if ids is None else [str(i) for i in ids]
    if len(names) != len(docs):
        raise ValueError(f"{len(names)} ids for {len(docs)} documents")
    if not delta:
        raise ValueError("the tuned weights equal the base weights: no update to attribute")
    unknown = sorted(set(delta) - set(_parameters(base)))
    if unknown:
        raise ValueError(f"delta names {unknown[0]}, which is not a parameter of the base model")
    if opts.device is not None:
        base.to(opts.device)
    sketch = CountSketch(opts.projection_dim, opts.seed)
    target = -sketch.project((n, delta[n]) for n in sorted(delta))
    grads = document_gradients(
        base,
        docs,
        delta,
        sketch,
        checkpoints=opts.checkpoints,
        tangents=tangents,
        progress=progress,
    )
    unit = grads / grads.norm(dim=1, keepdim=True).clamp(min=1e-300)
    target = target / target.norm().clamp(min=1e-300)
    alignment = (unit @ target).numpy()
    select = greedy_select if opts.order == "greedy" else aligned_select
    selected, coverage = select(unit, target, opts.top)
    meta = {
        **{k: getattr(opts, k) for k in ("top", "projection_dim", "seed", "checkpoints", "order")},
        "num_candidates": len(docs),
        "num_parameters_changed": int(sum(d.numel() for d in delta.values())),
        "num_tensors_changed": len(delta),
        "delta_norm": float(np.sqrt(sum(float((d.double() ** 2).sum()) for d in delta.values()))),
    }
    return AttributionResult(alignment, selected, coverage, names, meta)
