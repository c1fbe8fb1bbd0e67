"""Losses and gradients of a block of SGLD chains: vmapped, or one chain at a time.

Used by :mod:`layerscope.probes._sgld`. The sampled weights of a block of ``k`` chains
are one ``(k, D)`` tensor (D = number of sampled scalars); each parameter is a view of
its columns. Gradients of all chains of a block come from one ``torch.func.vmap`` over
``torch.func.functional_call``; models vmap cannot run (e.g. BatchNorm updating its
running statistics in train mode) are evaluated chain by chain instead, by autograd on a
copy of the model per chain whose weights are views of its row. Each block owns its
modules, so blocks can run in parallel threads.
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

LossFn = Callable[[nn.Module, Any], torch.Tensor]
Tensors = dict[str, torch.Tensor]
SCALAR_LOSS = "loss_fn: must return a scalar tensor (the mean loss of the batch)"
# Up to this many sampled scalars, one autograd call takes every chain's backward pass
# (see BlockGrads.looped); above, the chains' activations are held one chain at a time.
ONE_BACKWARD_MAX = 10_000_000


def _scalar(loss: Any) -> torch.Tensor:
    """The loss as a 0-d tensor; a clear error for anything but a one-element tensor."""
    if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
        raise ValueError(SCALAR_LOSS)
    return loss.reshape(())


class _LossModule(nn.Module):
    """``model`` and ``loss_fn`` as one module, so functional_call can swap its weights."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Any) -> torch.Tensor:
        return self.loss_fn(self.model, batch)


def copy_module(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` (weights, buffers and all)."""
    return copy.deepcopy(model)


def _copy(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return t.detach().to(device, copy=True)


@dataclass(frozen=True)
class Layout:
    """Which parameters are sampled, their shapes, w* flattened and the fixed tensors."""

    names: tuple[str, ...]
    shapes: tuple[tuple[int, ...], ...]
    w0: torch.Tensor
    fixed: Tensors

    @classmethod
    def of(cls, model: nn.Module, device: torch.device) -> Layout:
        """The layout of ``model``'s parameters with ``requires_grad`` (copied to ``device``).

        Raises:
            ValueError: nothing to sample, or sampled parameters of different dtypes.
        """
        named = list(model.named_parameters())
        sampled = [(n, p) for n, p in named if p.requires_grad]
        if not sampled:
            raise ValueError("model: has no parameters with requires_grad=True to sample")
        if len({p.dtype for _, p in sampled}) > 1:
            raise ValueError("model: the sampled parameters must share one dtype")
        fixed = {n: _copy(p, device) for n, p in named if not p.requires_grad}
        fixed.update({n: _copy(b, device) for n, b in model.named_buffers()})
        return cls(
            names=tuple(n for n, _ in sampled),
            shapes=tuple(tuple(p.shape) for _, p in sampled),
            w0=torch.cat([_copy(p, device).reshape(-1) for _, p in sampled]),
            fixed=fixed,
        )

    def views(self, flat: torch.Tensor) -> Tensors:
        """Parameter views ``(*lead, *shape)`` of ``flat`` ``(*lead, D)``."""
        out, start = {}, 0
        lead = flat.shape[:-1]
        for name, shape in zip(self.names, self.shapes, strict=True):
            size = math.prod(shape)
            out[name] = flat[..., start : start + size].view(*lead, *shape)
            start += size
        return out


class BlockGrads:
    """The loss and its gradient for every chain of one block (see module doc)."""

    def __init__(
        self, model: nn.Module, loss_fn: LossFn, layout: Layout, at_w0: nn.Module | None = None
    ) -> None:
        self.module = _LossModule(model, loss_fn)
        self.layout = layout
        self._copies: list[nn.Module] = []
        self._params: list[list[nn.Parameter]] = []
        self._bound: torch.Tensor | None = None
        self._at_w0 = at_w0
        self._views: dict[tuple[int, tuple[int, ...], tuple[int, ...]], list[torch.Tensor]] = {}
        self._vmapped = vmap(
            grad_and_value(self._loss), in_dims=(0, None, None), randomness="different"
        )

    def _loss(self, params: Tensors, fixed: Tensors, batch: Any) -> torch.Tensor:
        state = {f"model.{n}": t for n, t in itertools.chain(params.items(), fixed.items())}
        return _scalar(functional_call(self.module, state, (batch,)))

    def baseline(self, batch: Any) -> torch.Tensor:
        """L_b(w*) on ``batch``: a plain forward pass of a copy of the model at w* (half
        the cost of a ``functional_call``; the caller's model is left untouched)."""
        with torch.no_grad():
            return _scalar(self.module.loss_fn(self.at_w0(), batch))

    @staticmethod
    def copy_at_w0(model: nn.Module, device: torch.device) -> nn.Module:
        """A frozen copy of ``model`` on ``device``, for :meth:`baseline` (make it before
        other threads run :meth:`vmapped`, which swaps the weights of the module)."""
        return copy_module(model).to(device).requires_grad_(False)

    def at_w0(self) -> nn.Module:
        """The copy of the model at w* for :meth:`baseline` (given, or made now)."""
        if self._at_w0 is None:
            self._at_w0 = self.copy_at_w0(self.module.model, self.layout.w0.device)
        return self._at_w0

    def vmapped(
        self,
        flat: torch.Tensor,
        batch: Any,
        out: torch.Tensor,
        into: float | None = None,
        ready: Callable[[], None] = lambda: None,
    ) -> torch.Tensor:
        """Gradients of all chains in one vmap, written to ``out`` ``(k, D)`` (see
        :meth:`_write`); returns the losses ``(k,)``."""
        grads, losses = self._vmapped(self.layout.views(flat), self.layout.fixed, batch)
        assert isinstance(losses, torch.Tensor)
        ready()
        self._write(out, [grads[n] for n in self.layout.names], into)
        return losses

    def _bind(self, flat: torch.Tensor) -> None:
        """One copy of the model per chain whose sampled parameters are views of the
        chain's row of ``flat`` (so in-place updates of ``flat`` move them)."""
        if self._bound is flat:
            return
        self._copies, self._params = [], []
        for row in flat:
            model = copy_module(self.module.model).to(row.device)
            named = dict(model.named_parameters())
            for name, view in self.layout.views(row).items():
                named[name].data = view
            self._copies.append(model)
            self._params.append([named[name] for name in self.layout.names])
        self._bound = flat

    def looped(
        self,
        flat: torch.Tensor,
        batch: Any,
        out: torch.Tensor,
        into: float | None = None,
        ready: Callable[[], None] = lambda: None,
    ) -> torch.Tensor:
        """Same as :meth:`vmapped`, by plain autograd on a copy of the model per chain
        (each with its own buffers). The forward passes run one chain after another,
        and for models of up to ``ONE_BACKWARD_MAX`` sampled scalars one
        ``autograd.grad`` call takes all the chains' backward passes: its fixed cost,
        ≈90 µs a call, is a tenth of a chain's step on a 100k-parameter MLP at batch 32
        (18 % of a run on two threads, 7 % on one; docs/benchmarks.md). Larger models
        go chain by chain, holding one chain's activations at a time. As fast as vmap
        on one CPU thread; the functorch equivalent (``grad`` of ``functional_call``
        per chain) took twice as long."""
        self._bind(flat)
        chains = list(range(len(out)))
        together = self.layout.w0.numel() <= ONE_BACKWARD_MAX
        groups = [chains] if together else [[c] for c in chains]
        losses: list[torch.Tensor] = []
        for group in groups:
            scalars = [_scalar(self.module.loss_fn(self._copies[c], batch)) for c in group]
            params = [p for c in group for p in self._params[c]]
            parts = torch.autograd.grad(scalars, params, materialize_grads=True)
            if not losses:  # by now, ``out`` is surely free to be written
                ready()
            n = len(parts) // len(group)
            for i, c in enumerate(group):
                self._write(out[c], parts[i * n : (i + 1) * n], into)
            losses.extend(loss.detach() for loss in scalars)
        return torch.stack(losses)

    def _write(self, out: torch.Tensor, parts: Sequence[torch.Tensor], into: float | None) -> None:
        """Gradient ``parts`` (one per sampled parameter, shaped like it, with the leading
        dimensions of ``out`` ``(..., D)``) into ``out``: copied (``into`` None), or added
        as ``out += into·part`` to what ``out`` holds (one pass, no temporary)."""
        if into is None:
            lead = out.shape[:-1]
            torch.cat([p.reshape(*lead, -1) for p in parts], dim=-1, out=out)
            return
        # The sampler writes into the same few buffers every step. The cached views keep
        # their buffer alive, so no other tensor can come to have the same address.
        key = (out.data_ptr(), tuple(out.shape), out.stride())
        views = self._views.get(key)
        if views is None:
            views = self._views[key] = list(self.layout.views(out).values())
        torch._foreach_add_(views, list(parts), alpha=into)
