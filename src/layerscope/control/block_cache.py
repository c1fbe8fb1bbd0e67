"""Sequential Wanda on cached block inputs: one block's compute per step, not the model's.

Sequential Wanda (:func:`layerscope.control.prune.prune_module`, ``sequential="block"`` or
``"layer"``) scores each step on activations that flow through the layers pruned before
it. Run as whole-model passes with hooks, a model of B blocks costs B passes block by
block and about 4B layer by layer. The Wanda repository (Sun et al., ICLR 2024, arXiv
2306.11695, ``prune_wanda``) instead records the inputs of the first block once, runs each
block on its cached inputs, prunes it, and feeds the pruned block's outputs to the next
one: the same activations for a fraction of the compute (each block's compute once per
step, about 1 pass block by block and 4 passes' worth of single blocks layer by layer).

This module does that for any stack of repeated blocks named ``…layers.N`` /
``…layer.N`` / ``…h.N`` / ``…blocks.N`` (:func:`layerscope.control.plan.block_of`), under
two assumptions checked at run time, never trusted:

* block n + 1 receives block n's output as its hidden state (first positional argument or
  ``hidden_states=``) and otherwise the same arguments (masks, position embeddings);
* the block's output is that hidden state, or a tuple whose first element is.

Before pruning, block 0 is run twice on its first recorded call (the outputs must be
identical: a block that keeps state between calls is refused) and its output is compared
with block 1's input recorded from a real forward pass of the dense model; on a mismatch,
or when a planned weight is outside the blocks, the caller falls back to whole passes.
Key/value caches in the recorded arguments are dropped (``use_cache=False``, a
transformers ``Cache`` object replaced by None): a block re-run on cached inputs must not
append to a cache.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch

# Arguments that would make a re-run block read or extend a key/value cache.
_CACHE_KWARGS = ("past_key_value", "past_key_values", "layer_past", "cache")
# Relative tolerance of the chain check (float32 re-computation of the same block).
CHAIN_RTOL = 1e-4


class _StopForwardError(Exception):
    """Raised by a pre-hook to end a forward pass once the needed input is recorded."""


@dataclass
class BlockCall:
    """The positional and keyword arguments of one call of a block."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]

    @property
    def hidden(self) -> torch.Tensor:
        """The hidden-state input: the first positional argument or ``hidden_states``."""
        value = self.args[0] if self.args else self.kwargs.get("hidden_states")
        if not isinstance(value, torch.Tensor):
            raise TypeError("the block's first input is not a tensor")
        return value

    def with_hidden(self, h: torch.Tensor) -> BlockCall:
        """The same call with the hidden state replaced by ``h``."""
        if self.args:
            return BlockCall((h, *self.args[1:]), self.kwargs)
        return BlockCall((), {**self.kwargs, "hidden_states": h})


def run_block(block: torch.nn.Module, call: BlockCall) -> torch.Tensor:
    """The hidden state a block returns for one recorded call."""
    out = block(*call.args, **call.kwargs)
    h = out[0] if isinstance(out, tuple | list) else out
    if not isinstance(h, torch.Tensor):
        raise TypeError("the block's output is not a tensor or a tuple starting with one")
    return h


def _block_index(name: str) -> int:
    return int(re.findall(r"\d+", name)[-1])


def planned_blocks(
    model: torch.nn.Module, names: Iterable[str]
) -> list[tuple[str, torch.nn.Module]] | None:
    """The blocks holding the planned weights, by index; None if a weight is outside them
    or the blocks are not consecutive (a gap means something unplanned runs between)."""
    from layerscope.control.plan import block_of

    blocks = set()
    for name in names:
        block = block_of(name)
        if block is None:
            return None
        blocks.add(block)
    if not blocks:
        return None
    modules = dict(model.named_modules())
    ordered = sorted(blocks, key=_block_index)
    indices = [_block_index(b) for b in ordered]
    if indices != list(range(indices[0], indices[0] + len(indices))):
        return None
    if any(b not in modules for b in ordered):
        return None
    return [(b, modules[b]) for b in ordered]


def _is_cache(key: str, value: object) -> bool:
    """A key/value cache argument (by name, or a ``transformers`` ``*Cache`` object)."""
    return key in _CACHE_KWARGS or type(value).__name__.endswith("Cache")


def _record_input(
    model: torch.nn.Module, block: torch.nn.Module, batches: Iterable[Any], forward: Any
) -> list[BlockCall]:
    """The arguments of ``block``'s call for every batch, each pass stopped right there."""
    calls: list[BlockCall] = []

    def hook(_: torch.nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        clean = {k: (None if _is_cache(k, v) else v) for k, v in kwargs.items()}
        if "use_cache" in clean:
            clean["use_cache"] = False
        calls.append(BlockCall(tuple(args), clean))
        raise _StopForwardError

    handle = block.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        with torch.no_grad():
            for batch in batches:
                with contextlib.suppress(_StopForwardError):
                    forward(model, batch)
    finally:
        handle.remove()
    return calls


def block_inputs(
    model: torch.nn.Module,
    blocks: list[tuple[str, torch.nn.Module]],
    batches: list[Any],
    forward: Any,
) -> list[BlockCall] | None:
    """The first block's recorded calls, or None when the chain check fails (module doc)."""
    was_training = model.training
    model.eval()
    try:
        calls = _record_input(model, blocks[0][1], batches, forward)
        if len(calls) != len(batches):
            return None
        with torch.no_grad():
            got = run_block(blocks[0][1], calls[0])
            again = run_block(blocks[0][1], calls[0])  # a stateful block (a cache) differs
        if not torch.equal(got, again):
            return None
        if len(blocks) > 1:
            nxt = _record_input(model, blocks[1][1], batches[:1], forward)
            want = nxt[0].hidden if nxt else None
            if want is None or got.shape != want.shape:
                return None
            scale = float(want.abs().max()) or 1.0
            if float((got - want).abs().max()) > CHAIN_RTOL * scale:
                return None
        return calls
    finally:
        model.train(was_training)


def prune_blocks(
    blocks: list[tuple[str, torch.nn.Module]],
    calls: list[BlockCall],
    sparsities: Mapping[str, float],
    groups_of: Callable[[torch.nn.Module, list[str], BlockCall], list[list[str]]],
    prune_group: Callable[[torch.nn.Module, list[BlockCall], list[str], str], None],
) -> None:
    """Prune block after block on cached inputs, propagating the pruned outputs.

    ``groups_of(block, relative_names, first_call)`` splits a block's planned weights into
    steps; ``prune_group(block, calls, relative_names, prefix)`` scores and zeroes one step
    on the given calls.
    """
    for prefix, block in blocks:
        mine = [n[len(prefix) + 1 :] for n in sparsities if n.startswith(prefix + ".")]
        for group in groups_of(block, mine, calls[0]):
            prune_group(block, calls, group, prefix)
        was_training = block.training
        block.eval()
        with torch.no_grad():
            calls = [c.with_hidden(run_block(block, c)) for c in calls]
        block.train(was_training)
