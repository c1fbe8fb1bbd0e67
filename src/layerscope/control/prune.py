"""Unstructured pruning of weight matrices: magnitude and Wanda, per-layer sparsities.

* **magnitude**: zero the k = ⌊s·numel⌋ entries of W with the smallest |W_ij| (ties broken
  by position), the baseline of AlphaPruning (Lu et al., NeurIPS 2024, arXiv 2410.10912).
* **Wanda** (Sun et al., "A Simple and Effective Pruning Approach for Large Language
  Models", ICLR 2024, arXiv 2306.11695): score S_ij = |W_ij|·‖X_j‖₂, where ‖X_j‖₂ is the
  norm of input feature j over all calibration tokens; in each output row i the
  k = ⌊s·cols⌋ lowest-scoring weights are zeroed. One-shot: every input norm is collected
  from the dense model in one pass over the calibration batches (forward hooks), then all
  layers are pruned. Sequential ``block`` (the Wanda paper's own procedure): block by block
  (``model.layers.N`` ...), each block's norms taken with the blocks before it already
  pruned. Sequential ``layer``: linear layer by linear layer in the order they run, each
  layer's norms taken with every layer that ran before it already pruned; layers that read
  the same input tensor (q/k/v, gate/up) are scored together, as in SparseGPT's "true
  sequential" groups (Frantar & Alistarh, ICML 2023, arXiv 2301.00774).

Sparsities come from a :class:`layerscope.control.plan.PrunePlan` (parameter name ->
sparsity) or one uniform value. Reading and writing model files: :mod:`layerscope.control.apply`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import torch

METHODS = ("magnitude", "wanda")
SEQUENTIAL = ("block", "layer")


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


def _linear(modules: Mapping[str, torch.nn.Module], name: str) -> torch.nn.Module:
    """The ``nn.Linear`` owning the weight ``name``; ValueError for anything else."""
    module = modules.get(name.rsplit(".", 1)[0])
    if not isinstance(module, torch.nn.Linear) or not name.endswith(".weight"):
        raise ValueError(f"Wanda prunes nn.Linear weights only; {name} is not one")
    return module


Hook = Callable[[torch.nn.Module, tuple[torch.Tensor, ...], object], None]


class _StopForwardError(Exception):
    """Ends a forward pass once every hooked layer has run (nothing later is needed)."""


def _run_hooked(
    model: torch.nn.Module,
    hooks: Mapping[str, Hook],
    batches: Iterable[Any],
    forward: Forward,
    stop_early: bool = False,
) -> None:
    """Run the batches through the model (eval mode, no gradients) with a forward hook on
    the linear layer of each weight name; hooks removed and mode restored afterwards.

    ``stop_early``: after the first batch, each pass ends as soon as every hooked layer
    has run, provided each ran exactly once on the first batch (a layer called twice per
    pass, e.g. shared weights, keeps whole passes).
    """
    modules = dict(model.named_modules())
    calls = dict.fromkeys(hooks, 0)
    early = [False]

    def counted(name: str, hook: Hook) -> Hook:
        def run(module: torch.nn.Module, inputs: tuple[torch.Tensor, ...], out: object) -> None:
            hook(module, inputs, out)
            calls[name] += 1
            if early[0] and all(c > 0 for c in calls.values()):
                raise _StopForwardError

        return run

    handles = [_linear(modules, n).register_forward_hook(counted(n, h)) for n, h in hooks.items()]
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            for i, batch in enumerate(batches):
                calls.update(dict.fromkeys(calls, 0))
                with contextlib.suppress(_StopForwardError):
                    forward(model, batch)
                if i == 0:
                    early[0] = stop_early and all(c == 1 for c in calls.values())
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)


def input_norms(
    model: torch.nn.Module,
    names: Iterable[str],
    batches: Iterable[Any],
    forward: Forward = default_forward,
    stop_early: bool = False,
) -> dict[str, torch.Tensor]:
    """‖X_j‖₂ of the inputs of the linear layers owning the parameters ``names``.

    Forward hooks accumulate Σ x_j² over every token of every batch (float64); the
    model runs in eval mode without gradients. ``stop_early``: see :func:`_run_hooked`
    (the norms are the same; the passes stop after the last layer needed).
    """
    names = list(names)
    sums: dict[str, torch.Tensor] = {}

    def hook(name: str) -> Hook:
        def accumulate(_: torch.nn.Module, inputs: tuple[torch.Tensor, ...], __: object) -> None:
            x = inputs[0].detach().to(torch.float64)
            sq = x.reshape(-1, x.shape[-1]).pow(2).sum(0)
            sums[name] = sums[name] + sq if name in sums else sq

        return accumulate

    _run_hooked(model, {n: hook(n) for n in names}, batches, forward, stop_early)
    missing = [n for n in names if n not in sums]
    if missing:
        raise ValueError(f"the calibration data never reached {missing[0]} (no batches?)")
    return {n: s.sqrt() for n, s in sums.items()}


def execution_groups(
    model: torch.nn.Module, names: Iterable[str], batch: Any, forward: Forward = default_forward
) -> list[list[str]]:
    """The weights ``names`` in the order their layers first run on ``batch``, in groups:
    consecutive layers called on the very same input tensor (q/k/v, gate/up) share a group,
    since pruning one of them cannot change the input of the others."""
    names = list(names)
    groups: list[list[str]] = []
    seen: set[str] = set()
    # Only the previous layer's input is held (not every input: memory); holding it keeps
    # its id from being reused by a new tensor, so `is` stays meaningful.
    last: list[torch.Tensor] = []

    def hook(name: str) -> Hook:
        def record(_: torch.nn.Module, inputs: tuple[torch.Tensor, ...], __: object) -> None:
            if name in seen:
                return
            seen.add(name)
            if groups and inputs[0] is last[0]:
                groups[-1].append(name)
            else:
                groups.append([name])
            last[:] = [inputs[0]]

        return record

    _run_hooked(model, {n: hook(n) for n in names}, [batch], forward)
    last.clear()
    missing = [n for n in names if n not in seen]
    if missing:
        raise ValueError(f"the calibration data never reached {missing[0]}")
    return groups


def _wanda_groups(sparsities: Mapping[str, float], order: list[str]) -> list[list[str]]:
    """Planned parameters grouped by repeated block (``model.layers.N``), in forward order;
    a parameter outside the blocks is a group of its own."""
    from layerscope.control.plan import block_of

    groups: dict[str, list[str]] = {}
    for name in sorted(sparsities, key=order.index):
        groups.setdefault(block_of(name) or name, []).append(name)
    return list(groups.values())


def _sequential_mode(sequential: bool | str) -> str | None:
    """None (one-shot), ``block`` or ``layer``; ``True`` means ``block``."""
    if isinstance(sequential, bool):
        return "block" if sequential else None
    if sequential not in SEQUENTIAL:
        raise ValueError(f"sequential must be 'block' or 'layer', got {sequential!r}")
    return sequential


def _zero(W: torch.Tensor, mask: torch.Tensor) -> float:
    """Zero the masked entries of W in place; returns W's fraction of zeros."""
    W[mask] = 0
    return float((W == 0).sum()) / W.numel()


def _wanda_group(
    params: Mapping[str, torch.nn.Parameter],
    sparsities: Mapping[str, float],
    norms: Mapping[str, torch.Tensor],
    prefix: str = "",
) -> dict[str, float]:
    """Zero one group's Wanda masks (norms keyed by names relative to ``prefix``)."""
    achieved = {}
    with torch.no_grad():
        for rel, norm in norms.items():
            name = f"{prefix}.{rel}" if prefix else rel
            W, s = params[name], float(sparsities[name])
            achieved[name] = _zero(W, wanda_mask(W, norm.to(W.device), s))
    return achieved


def _wanda_cached(
    model: torch.nn.Module,
    sparsities: Mapping[str, float],
    batches: list[Any],
    forward: Forward,
    mode: str,
) -> dict[str, float] | None:
    """Sequential Wanda on cached block inputs (:mod:`layerscope.control.block_cache`);
    None when the model's blocks do not pass its checks (the caller runs whole passes)."""
    from layerscope.control import block_cache

    blocks = block_cache.planned_blocks(model, sparsities)
    calls = block_cache.block_inputs(model, blocks, batches, forward) if blocks else None
    if blocks is None or calls is None:
        return None
    params = dict(model.named_parameters())
    achieved: dict[str, float] = {}

    def prune_group(
        block: torch.nn.Module, calls: list[block_cache.BlockCall], group: list[str], prefix: str
    ) -> None:
        norms = input_norms(block, group, calls, block_cache.run_block, stop_early=True)
        achieved.update(_wanda_group(params, sparsities, norms, prefix))

    def groups_of(
        block: torch.nn.Module, names: list[str], first: block_cache.BlockCall
    ) -> list[list[str]]:
        if mode != "layer":
            return [names]
        return execution_groups(block, names, first, block_cache.run_block)

    block_cache.prune_blocks(blocks, calls, sparsities, groups_of, prune_group)
    return achieved


def prune_module(
    model: torch.nn.Module,
    sparsities: Mapping[str, float],
    method: str = "magnitude",
    calibration: Iterable[Any] | None = None,
    forward: Forward = default_forward,
    sequential: bool | str = False,
    cache_blocks: bool = True,
) -> dict[str, float]:
    """Prune the planned weights of a module in place; returns the achieved sparsities.

    Args:
        model: the module (its parameters are modified).
        sparsities: parameter name -> fraction of weights to zero.
        method: ``magnitude`` or ``wanda``.
        calibration: batches for Wanda (see :func:`default_forward`).
        forward: how a batch is fed to the model.
        sequential: Wanda only. ``False``: one-shot, every input norm from one pass on the
            dense model. ``"block"`` (or ``True``): block by block, as Sun et al. run it,
            block b's norms collected with blocks < b already pruned. ``"layer"``: layer by
            layer in execution order (:func:`execution_groups`), each layer's norms
            collected with every earlier layer already pruned.
        cache_blocks: sequential modes only. True: run each step on the cached inputs of
            its block (:mod:`layerscope.control.block_cache`; the same activations, one
            block's compute per step), falling back to whole passes when the model's blocks
            fail its checks. False: one whole forward pass per step.
    """
    if method not in METHODS:
        raise ValueError(f"method must be 'magnitude' or 'wanda', got {method!r}")
    mode = _sequential_mode(sequential)
    params = dict(model.named_parameters())
    check_sparsities(sparsities, params)
    if method == "magnitude":
        with torch.no_grad():
            return {
                n: _zero(params[n], magnitude_mask(params[n], float(s)))
                for n, s in sparsities.items()
            }
    batches = list(calibration) if calibration is not None else []  # iterated per group
    if not batches:
        raise ValueError("Wanda needs calibration data (got no batches)")
    if mode is not None and cache_blocks:
        cached = _wanda_cached(model, sparsities, batches, forward, mode)
        if cached is not None:
            return cached
    if mode is None:
        groups = [list(sparsities)]
    elif mode == "block":
        groups = _wanda_groups(sparsities, list(params))
    else:
        groups = execution_groups(model, sparsities, batches[0], forward)
    achieved = {}
    for group in groups:
        norms = input_norms(model, group, batches, forward, stop_early=mode is not None)
        achieved.update(_wanda_group(params, sparsities, norms))
    return achieved
