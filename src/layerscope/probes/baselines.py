"""Competing progress measures for grokking (Golechha 2024, arXiv 2405.12755).

Prakash & Martin (2025) compare HTSR metrics against these four; they need a model
and, for two of them, a small batch of probe inputs:

* ``l2_norm`` = √Σ_l ‖W_l‖_F² over the weight matrices;
* ``weight_entropy`` = −Σ |w| ln |w| over the entries of the weight matrices (0 ln 0 = 0);
* ``activation_sparsity`` = fraction of (example, unit) outputs of the activation
  modules with |a| < τ;
* ``circuit_complexity`` (approximate local circuit complexity) =
  Σ_x KL(softmax f_W(x) ‖ softmax f_W′(x)), W′ = W with a fraction (10%) of the
  entries of every weight matrix set to zero, chosen at random (seeded).

"Weight matrices" are the parameters with two or more dimensions (biases and norm
scales are left out). The model is evaluated in ``eval()`` mode under ``no_grad``
and its mode restored.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn

ACTIVATIONS: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.LeakyReLU,
    nn.ReLU6,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Tanh,
    nn.Sigmoid,
    nn.Softplus,
    nn.Mish,
)
DEFAULT_TAU = 1e-3
DEFAULT_FRACTION = 0.1


def weight_matrices(model: nn.Module) -> dict[str, torch.Tensor]:
    """The parameters of ``model`` with two or more dimensions, by name (detached)."""
    return {n: p.detach() for n, p in model.named_parameters() if p.dim() >= 2}


def l2_norm(model: nn.Module) -> float:
    """√Σ_l ‖W_l‖_F² over the weight matrices (Golechha 2024)."""
    total = sum(float(torch.sum(w.double() ** 2)) for w in weight_matrices(model).values())
    return math.sqrt(total)


def weight_entropy(model: nn.Module) -> float:
    """Absolute weight entropy −Σ |w| ln |w| over the weight matrices (0 ln 0 = 0)."""
    total = 0.0
    for w in weight_matrices(model).values():
        a = w.double().abs()
        total -= float(torch.sum(torch.xlogy(a, a)))
    return total


@contextmanager
def _evaluating(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        model.train(was_training)


def _inputs(model: nn.Module, inputs: torch.Tensor) -> torch.Tensor:
    if not isinstance(inputs, torch.Tensor) or inputs.dim() < 1 or inputs.shape[0] == 0:
        raise ValueError("probe inputs must be a non-empty tensor with a batch dimension")
    param = next(model.parameters(), None)
    if param is None:
        raise ValueError("the model has no parameters")
    return inputs.to(param.device, param.dtype if inputs.is_floating_point() else inputs.dtype)


def activation_sparsity(model: nn.Module, inputs: torch.Tensor, tau: float = DEFAULT_TAU) -> float:
    """Fraction of activation outputs with |a| < ``tau`` over ``inputs`` (Golechha 2024).

    Outputs of every activation module (:data:`ACTIVATIONS`) are pooled: the result is
    (number of entries below τ) / (number of entries), over examples and units.

    Raises:
        ValueError: ``tau`` not positive, bad inputs, or no activation module in the model.
    """
    if not tau > 0:
        raise ValueError(f"tau must be positive, got {tau}")
    modules = [m for m in model.modules() if isinstance(m, ACTIVATIONS)]
    if not modules:
        raise ValueError("activation_sparsity needs activation modules (nn.ReLU...) in the model")
    counts = [0, 0]

    def hook(module: nn.Module, args: object, out: torch.Tensor) -> None:
        counts[0] += int(torch.count_nonzero(out.abs() < tau))
        counts[1] += out.numel()

    handles = [m.register_forward_hook(hook) for m in modules]
    try:
        with _evaluating(model):
            model(_inputs(model, inputs))
    finally:
        for h in handles:
            h.remove()
    return counts[0] / counts[1]


def zeroed_weights(
    model: nn.Module, fraction: float = DEFAULT_FRACTION, seed: int = 0
) -> dict[str, torch.Tensor]:
    """Copies of the weight matrices with ``round(fraction · numel)`` entries each set to 0.

    The entries are drawn without replacement by a ``torch.Generator`` seeded with
    ``seed``, matrix by matrix in parameter order (reproducible).
    """
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"fraction must be in [0, 1], got {fraction}")
    gen = torch.Generator().manual_seed(seed)
    out: dict[str, torch.Tensor] = {}
    for name, w in weight_matrices(model).items():
        flat = w.flatten().clone()
        drop = torch.randperm(flat.numel(), generator=gen)[: round(fraction * flat.numel())]
        flat[drop.to(flat.device)] = 0
        out[name] = flat.view_as(w)
    return out


def circuit_complexity(
    model: nn.Module, inputs: torch.Tensor, fraction: float = DEFAULT_FRACTION, seed: int = 0
) -> float:
    """Approximate local circuit complexity Σ_x KL(softmax f_W(x) ‖ softmax f_W′(x)).

    W′ is :func:`zeroed_weights` (``fraction`` of each weight matrix zeroed, seeded);
    the model's outputs are treated as logits over the last dimension (Golechha 2024).
    """
    x = _inputs(model, inputs)
    zeroed = zeroed_weights(model, fraction, seed)
    with _evaluating(model):
        logp = torch.log_softmax(model(x).double(), dim=-1)
        pruned = torch.func.functional_call(model, zeroed, (x,))
        logq = torch.log_softmax(pruned.double(), dim=-1)
    return float(torch.sum(torch.exp(logp) * (logp - logq)))


def baseline_metrics(
    model: nn.Module,
    inputs: torch.Tensor,
    *,
    tau: float = DEFAULT_TAU,
    fraction: float = DEFAULT_FRACTION,
    seed: int = 0,
) -> dict[str, float]:
    """All four measures: l2_norm, weight_entropy, activation_sparsity, circuit_complexity.

    ``activation_sparsity`` is left out when the model has no activation module.
    """
    out = {"l2_norm": l2_norm(model), "weight_entropy": weight_entropy(model)}
    if any(isinstance(m, ACTIVATIONS) for m in model.modules()):
        out["activation_sparsity"] = activation_sparsity(model, inputs, tau)
    out["circuit_complexity"] = circuit_complexity(model, inputs, fraction, seed)
    return out


__all__ = [
    "ACTIVATIONS",
    "activation_sparsity",
    "baseline_metrics",
    "circuit_complexity",
    "l2_norm",
    "weight_entropy",
    "weight_matrices",
    "zeroed_weights",
]
