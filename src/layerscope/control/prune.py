"""Unstructured pruning of weight matrices: magnitude and Wanda, per-layer sparsities.

* **magnitude**: zero the k = ⌊s·numel⌋ entries of W with the smallest |W_ij| (ties broken
  by position), the baseline of AlphaPruning (Lu et al., NeurIPS 2024, arXiv 2410.10912).
* **Wanda** (Sun et al., "A Simple and Effective Pruning Approach for Large Language
  Models", ICLR 2024, arXiv 2306.11695): score S_ij = |W_ij|·‖X_j‖₂, where ‖X_j‖₂ is the
  norm of input feature j over all calibration tokens; in each output row i the
  k = ⌊s·cols⌋ lowest-scoring weights are zeroed. One-shot: every input norm is collected
  from the dense model in one pass over the calibration batches (forward hooks), then all
  layers are pruned; sequential: block by block, each block's norms taken with the blocks
  before it already pruned.

Sparsities come from a :class:`layerscope.control.plan.PrunePlan` (parameter name ->
sparsity) or one uniform value. Reading and writing model files: :mod:`layerscope.control.apply`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

METHODS = ("magnitude", "wanda")


def magnitude_mask(W: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Boolean mask of the ⌊sparsity·numel⌋ smallest-magnitude entries of W."""
    k = int(sparsity * W.numel())
    mask = torch.zeros(W.numel(), dtype=torch.bool, device=W.device)
    if k > 0:
        order = torch.argsort(W.detach().abs().flatten(), stable=True)
        mask[order[:k]] = True
    return mask.view(W.shape)


def wanda_mask(W: torch.Tensor, input_norm: torch.Tensor, sparsity: float) -> torch.Tensor:
    """Boolean mask of the ⌊sparsity·cols⌋ lowest |W_ij|·‖X_j‖ entries of each row of W.

    Args:
        W: (out, in) weight of a linear layer.
        input_norm: (in,) ‖X_j‖₂ of each input feature over the calibration tokens.
        sparsity: fraction of each row to zero.
    """
    if W.ndim != 2 or input_norm.shape != (W.shape[1],):
        raise ValueError(f"Wanda needs a (out, in) weight and (in,) norms, got {tuple(W.shape)}")
    score = W.detach().abs().to(torch.float64) * input_norm.to(torch.float64, copy=False)[None]
    k = int(sparsity * W.shape[1])
    mask = torch.zeros(W.shape, dtype=torch.bool, device=W.device)
    if k > 0:
        idx = torch.argsort(score, dim=1, stable=True)[:, :k]
        mask.scatter_(1, idx, True)
    return mask


def check_sparsities(sparsities: Mapping[str, float], available: Iterable[str]) -> None:
    """ValueError naming the first planned layer that is missing or has a bad sparsity."""
    names = set(available)
    for name, s in sparsities.items():
        if name not in names:
            raise ValueError(f"planned layer {name} is not a weight of the model")
        if not 0.0 <= float(s) < 1.0:
            raise ValueError(f"sparsity of {name} must be in [0, 1), got {s}")


def prune_state_dict(
    state: dict[str, torch.Tensor], sparsities: Mapping[str, float]
) -> dict[str, float]:
    """Magnitude-prune tensors of a state dict in place; returns the achieved sparsities."""
    check_sparsities(sparsities, state)
    achieved = {}
    for name, s in sparsities.items():
        W = state[name]
        W[magnitude_mask(W, float(s))] = 0
        achieved[name] = float((W == 0).sum()) / W.numel()
    return achieved


Forward = Callable[[torch.nn.Module, Any], object]


def default_forward(model: torch.nn.Module, batch: Any) -> object:
    """Call the model on a batch: ``model(**batch)`` for a mapping, ``model(*batch)`` for a
    tuple/list, else ``model(batch)``."""
    if isinstance(batch, Mapping):
        return model(**batch)
    if isinstance(batch, tuple | list):
        return model(*batch)
    return model(batch)


def input_norms(
    model: torch.nn.Module,
    names: Iterable[str],
    batches: Iterable[Any],
    forward: Forward = default_forward,
) -> dict[str, torch.Tensor]:
    """‖X_j‖₂ of the inputs of the linear layers owning the parameters ``names``.

    Forward hooks accumulate Σ x_j² over every token of every batch (float64); the
    model runs in eval mode without gradients.
    """
    modules = dict(model.named_modules())
    sums: dict[str, torch.Tensor] = {}
    handles = []

    def hook(name: str) -> Callable[..., None]:
        def accumulate(_: torch.nn.Module, inputs: tuple[torch.Tensor, ...], __: object) -> None:
            x = inputs[0].detach().to(torch.float64)
            sq = x.reshape(-1, x.shape[-1]).pow(2).sum(0)
            sums[name] = sums[name] + sq if name in sums else sq

        return accumulate

    for name in names:
        module = modules.get(name.rsplit(".", 1)[0])
        if not isinstance(module, torch.nn.Linear) or not name.endswith(".weight"):
            raise ValueError(f"Wanda prunes nn.Linear weights only; {name} is not one")
        handles.append(module.register_forward_hook(hook(name)))
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for batch in batches:
                forward(model, batch)
    finally:
        for h in handles:
            h.remove()
        model.train(was_training)
    missing = [n for n in names if n not in sums]
    if missing:
        raise ValueError(f"the calibration data never reached {missing[0]} (no batches?)")
    return {n: s.sqrt() for n, s in sums.items()}


def _wanda_groups(sparsities: Mapping[str, float], order: list[str]) -> list[list[str]]:
    """Planned parameters grouped by repeated block (``model.layers.N``), in forward order;
    a parameter outside the blocks is a group of its own."""
    from layerscope.control.plan import block_of

    groups: dict[str, list[str]] = {}
    for name in sorted(sparsities, key=order.index):
        groups.setdefault(block_of(name) or name, []).append(name)
    return list(groups.values())


def prune_module(
    model: torch.nn.Module,
    sparsities: Mapping[str, float],
    method: str = "magnitude",
    calibration: Iterable[Any] | None = None,
    forward: Forward = default_forward,
    sequential: bool = False,
) -> dict[str, float]:
    """Prune the planned weights of a module in place; returns the achieved sparsities.

    Args:
        model: the module (its parameters are modified).
        sparsities: parameter name -> fraction of weights to zero.
        method: ``magnitude`` or ``wanda``.
        calibration: batches for Wanda (see :func:`default_forward`).
        forward: how a batch is fed to the model.
        sequential: Wanda block by block, as Sun et al. run it: the input norms of block
            b's layers are collected with blocks < b already pruned (one pass over the
            calibration data per block). Without it, one pass on the dense model (one-shot).
    """
    if method not in METHODS:
        raise ValueError(f"method must be 'magnitude' or 'wanda', got {method!r}")
    params = dict(model.named_parameters())
    check_sparsities(sparsities, params)
    if method == "magnitude":
        groups = [list(sparsities)]
    elif calibration is None:
        raise ValueError("Wanda needs calibration data")
    else:
        calibration = list(calibration)  # iterated once per group
        groups = _wanda_groups(sparsities, list(params)) if sequential else [list(sparsities)]
    achieved = {}
    for group in groups:
        norms: dict[str, torch.Tensor] = {}
        if method == "wanda":
            assert calibration is not None  # checked above
            norms = input_norms(model, group, calibration, forward)
        with torch.no_grad():
            for name in group:
                W, s = params[name], float(sparsities[name])
                if method == "wanda":
                    mask = wanda_mask(W, norms[name].to(W.device), s)
                else:
                    mask = magnitude_mask(W, s)
                W[mask] = 0
                achieved[name] = float((W == 0).sum()) / W.numel()
    return achieved
