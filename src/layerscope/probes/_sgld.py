"""The SGLD sampler behind :mod:`layerscope.probes.llc`: all chains at once on one device.

The sampled weights of all chains are one ``(num_chains, D)`` tensor, and one step is

    Δw = −(ε/2)·(nβ·∇L_b(w) + γ·(w − w*)) + √ε·ξ,   ξ ~ N(0, I)

(Welling & Teh 2011 with the localization term of Lau et al. 2023, arXiv 2308.12108;
SCIENCE.md §6). Gradients of all chains come from one ``torch.func.vmap`` over
``torch.func.functional_call``; models vmap cannot run (e.g. BatchNorm updating its
running statistics in train mode) are evaluated chain by chain instead, by autograd on a
copy of the model per chain whose weights are views of its row. Either way the noise is
drawn for the whole tensor from one seeded generator and the update is the same
arithmetic, so both paths give the same chains up to round-off.

Each step records, per chain, the minibatch loss L_b(w_t) *before* the update (as
devinterp does), the baseline L_b(w*) of the unperturbed weights on the same minibatch
(shared by all chains: one extra forward pass per step), ‖w_t − w*‖² and a minibatch
MALA log-acceptance of the previous move (see :func:`_log_accept`).
"""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, grad_and_value, vmap

LossFn = Callable[[nn.Module, Any], torch.Tensor]
Tensors = dict[str, torch.Tensor]


@dataclass(frozen=True)
class SamplerSettings:
    """What one sampling run needs besides the model, data and loss (already validated)."""

    num_chains: int
    num_steps: int
    step_size: float
    localization: float
    nbeta: float
    seed: int
    vectorize: bool | None


@dataclass(frozen=True)
class Traces:
    """Per-step records of a run (``T`` steps, burn-in included; float64 numpy).

    Attributes:
        losses: ``(C, T)`` minibatch loss of each chain before its step.
        baselines: ``(T,)`` loss of the unperturbed weights on the same minibatch.
        sq_dist: ``(C, T)`` squared distance ‖w_t − w*‖² before the step.
        log_accept: ``(C, T − 1)`` minibatch MALA log-acceptance of move t → t+1.
        num_sampled: number of sampled scalars d (parameters with ``requires_grad``).
        vectorized: whether the chains ran under vmap.
        fallback_reason: why vmap was not used (empty when it was, or when not asked).
    """

    losses: np.ndarray
    baselines: np.ndarray
    sq_dist: np.ndarray
    log_accept: np.ndarray
    vectorized: bool
    fallback_reason: str
    num_sampled: int


class _LossModule(nn.Module):
    """``model`` and ``loss_fn`` as one module, so functional_call can swap its weights."""

    def __init__(self, model: nn.Module, loss_fn: LossFn) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(self, batch: Any) -> torch.Tensor:
        return self.loss_fn(self.model, batch)


def cycle_batches(data: Iterable[Any]) -> Iterator[Any]:
    """Batches of ``data`` over and over (re-iterating it, so a shuffling loader reshuffles)."""
    while True:
        empty = True
        for batch in data:
            empty = False
            yield batch
        if empty:
            raise ValueError("data: yielded no batches")


def to_device(batch: Any, device: torch.device) -> Any:
    """``batch`` with every tensor inside (tuples, lists, dicts) moved to ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {key: to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple | list):
        return type(batch)(to_device(value, device) for value in batch)
    return batch


class _Chains:
    """The loss and its gradient for every chain: vmapped, or one chain at a time.

    The sampled weights of all chains live in one ``(C, D)`` tensor (D = number of
    sampled scalars); each parameter is a view of its columns, so the update is a
    handful of whole-tensor operations whatever the number of layers.
    """

    def __init__(
        self, model: nn.Module, loss_fn: LossFn, num_chains: int, device: torch.device
    ) -> None:
        self.module = _LossModule(model, loss_fn)
        named = list(model.named_parameters())
        sampled = [(n, p) for n, p in named if p.requires_grad]
        if not sampled:
            raise ValueError("model: has no parameters with requires_grad=True to sample")
        if len({p.dtype for _, p in sampled}) > 1:
            raise ValueError("model: the sampled parameters must share one dtype")
        self.names = [n for n, _ in sampled]
        self.shapes = [tuple(p.shape) for _, p in sampled]
        self.w0 = torch.cat([_copy(p, device).reshape(-1) for _, p in sampled])
        fixed = {n: _copy(p, device) for n, p in named if not p.requires_grad}
        fixed.update({n: _copy(b, device) for n, b in model.named_buffers()})
        self.fixed = fixed
        self._copies: list[nn.Module] = []
        self._params: list[list[nn.Parameter]] = []
        self._bound: torch.Tensor | None = None
        self._grads = torch.empty(0)
        self._vmapped = vmap(
            grad_and_value(self._loss), in_dims=(0, None, None), randomness="different"
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

    def _flat(self, grads: Tensors, num_chains: int) -> torch.Tensor:
        return torch.cat([grads[n].reshape(num_chains, -1) for n in self.names], dim=1)

    def _loss(self, params: Tensors, fixed: Tensors, batch: Any) -> torch.Tensor:
        state = {f"model.{n}": t for n, t in itertools.chain(params.items(), fixed.items())}
        loss = functional_call(self.module, state, (batch,))
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ValueError("loss_fn: must return a scalar tensor (the mean loss of the batch)")
        return loss.reshape(())

    def baseline(self, batch: Any) -> torch.Tensor:
        """L_b(w*) on ``batch`` (buffers of the unperturbed model are left untouched)."""
        with torch.no_grad():
            fixed = {n: t.clone() for n, t in self.fixed.items()}
            return self._loss(self.views(self.w0), fixed, batch)

    def vmapped(self, flat: torch.Tensor, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Gradients ``(C, D)`` and losses ``(C,)`` of all chains in one vmap."""
        grads, losses = self._vmapped(self.views(flat), self.fixed, batch)
        return self._flat(grads, len(flat)), losses

    def _bind(self, flat: torch.Tensor) -> None:
        """One copy of the model per chain whose sampled parameters are views of the
        chain's row of ``flat`` (so in-place updates of ``flat`` move them)."""
        if self._bound is flat:
            return
        self._copies, self._params = [], []
        for row in flat:
            model = copy_module(self.module.model).to(row.device)
            named = dict(model.named_parameters())
            for name, view in self.views(row).items():
                named[name].data = view
            self._copies.append(model)
            self._params.append([named[name] for name in self.names])
        self._grads = torch.empty_like(flat)
        self._bound = flat

    def looped(self, flat: torch.Tensor, batch: Any) -> tuple[torch.Tensor, torch.Tensor]:
        """Same as :meth:`vmapped`, one chain after another by plain autograd on a copy
        of the model per chain (each with its own buffers). As fast as vmap on one CPU
        thread for a 100k-parameter MLP (docs/benchmarks.md); the functorch equivalent
        (``grad`` of ``functional_call`` per chain) took twice as long."""
        self._bind(flat)
        losses = []
        for row, model, params in zip(self._grads, self._copies, self._params, strict=True):
            loss = self.module.loss_fn(model, batch)
            if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
                raise ValueError(
                    "loss_fn: must return a scalar tensor (the mean loss of the batch)"
                )
            parts = torch.autograd.grad(loss.reshape(()), params, allow_unused=True)
            flat_parts = [
                (torch.zeros_like(p) if g is None else g).reshape(-1)
                for p, g in zip(params, parts, strict=True)
            ]
            torch.cat(flat_parts, out=row)
            losses.append(loss.detach().reshape(()))
        return self._grads, torch.stack(losses)


def copy_module(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` (weights, buffers and all)."""
    return copy.deepcopy(model)


def _copy(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return t.detach().to(device, copy=True)


def _sq_norms(x: torch.Tensor) -> torch.Tensor:
    """‖x_c‖² of each row of ``x`` (C, D)."""
    norms: torch.Tensor = torch.linalg.vector_norm(x, dim=-1)
    return norms.square()


@dataclass(frozen=True)
class _Move:
    """What the MALA acceptance of a move needs from the step that made it."""

    move: torch.Tensor
    energy: torch.Tensor
    half_sq_noise: torch.Tensor


def _log_accept(prev: _Move, back: torch.Tensor, energy: torch.Tensor, eps: float) -> torch.Tensor:
    """Minibatch MALA log-acceptance of the previous move w → w' (Roberts & Tweedie 1996).

    log α = U(w) − U(w') + ‖ξ‖²/2 − ‖−Δw + (ε/2)∇U(w')‖²/(2ε), where Δw = w' − w,
    ξ the injected noise and U = nβ·(L_b − L_b(w*)) + (γ/2)‖w − w*‖²: each U on its own
    step's minibatch, its baseline subtracted to cancel most of the batch-to-batch
    difference. An approximation: exact MALA needs U on the full data set.
    ``back`` = ∇U(w') − (2/ε)·Δw, so that −Δw + (ε/2)∇U(w') = (ε/2)·back.
    """
    return prev.energy - energy + prev.half_sq_noise - eps / 8 * _sq_norms(back)


class _Sampler:
    """One SGLD run: the stacked chain state, the step and the per-step records."""

    def __init__(self, chains: _Chains, s: SamplerSettings, device: torch.device) -> None:
        self.chains, self.s, self.device = chains, s, device
        self.gen = torch.Generator(device=device).manual_seed(s.seed)
        self.w = chains.w0.unsqueeze(0).repeat(s.num_chains, 1)
        self.buffers = {k: torch.empty_like(self.w) for k in ("drift", "tmp", "move_a", "move_b")}
        self.use_vmap = s.vectorize is not False
        self.reason = ""
        self.prev: _Move | None = None
        self.records: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("loss", "base", "dist", "acc")
        }

    def _grads(self, batch: Any, first: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-chain gradients and losses; on the first step, fall back to the loop if
        vmap fails (only when ``vectorize`` is None)."""
        if self.use_vmap and self.s.vectorize is None and first:
            try:
                return self.chains.vmapped(self.w, batch)
            except RuntimeError as err:
                self.use_vmap, self.reason = False, str(err).strip().splitlines()[0][:200]
        if self.use_vmap:
            return self.chains.vmapped(self.w, batch)
        return self.chains.looped(self.w, batch)

    def step(self, batch: Any, first: bool) -> None:
        """Record the losses at the current weights, then move every chain once:
        w ← w − (ε/2)·(nβ·∇L_b(w) + γ·(w − w*)) + √ε·ξ.

        Whole-``(C, D)`` operations into preallocated buffers: on a CPU a fresh 1 MB+
        tensor costs more (page faults) than the arithmetic on it.
        """
        s, buf = self.s, self.buffers
        base = self.chains.baseline(batch)
        grads, losses = self._grads(batch, first)
        losses = losses.detach()
        diff = torch.sub(self.w, self.chains.w0, out=buf["drift"])
        sq_dist = _sq_norms(diff)
        drift = diff.mul_(s.localization).add_(grads, alpha=s.nbeta)
        energy = s.nbeta * (losses - base) + 0.5 * s.localization * sq_dist
        if self.prev is not None:
            back = torch.sub(drift, self.prev.move, alpha=2.0 / s.step_size, out=buf["tmp"])
            self.records["acc"].append(_log_accept(self.prev, back, energy, s.step_size))
        move = (
            buf["move_b"]
            if self.prev is not None and self.prev.move is buf["move_a"]
            else buf["move_a"]
        )
        move.normal_(generator=self.gen)
        half_sq_noise = 0.5 * _sq_norms(move)
        move.mul_(math.sqrt(s.step_size)).add_(drift, alpha=-0.5 * s.step_size)
        self.w.add_(move)
        self.prev = _Move(move, energy, half_sq_noise)
        for key, value in (("loss", losses), ("base", base), ("dist", sq_dist)):
            self.records[key].append(value)

    def stacked(self, key: str, dim: int) -> np.ndarray:
        """The records of ``key`` as one float64 array, steps along ``dim``."""
        if not self.records[key]:
            return np.zeros((self.s.num_chains, 0))
        return torch.stack(self.records[key], dim).double().cpu().numpy()


def run_chains(
    model: nn.Module,
    batches: Iterator[Any],
    loss_fn: LossFn,
    settings: SamplerSettings,
    device: torch.device,
) -> Traces:
    """Run ``settings.num_chains`` SGLD chains from the model's weights (see module doc)."""
    chains = _Chains(model, loss_fn, settings.num_chains, device)
    sampler = _Sampler(chains, settings, device)
    taken = 0
    for taken, batch in enumerate(itertools.islice(batches, settings.num_steps), start=1):
        sampler.step(batch, first=taken == 1)
    if taken < settings.num_steps:
        raise ValueError(f"data: ran out of batches after {taken} steps")
    return Traces(
        losses=sampler.stacked("loss", 1),
        baselines=sampler.stacked("base", 0),
        sq_dist=sampler.stacked("dist", 1),
        log_accept=sampler.stacked("acc", 1),
        vectorized=sampler.use_vmap,
        fallback_reason=sampler.reason,
        num_sampled=chains.w0.numel(),
    )
