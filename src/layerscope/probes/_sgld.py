"""The SGLD sampler behind :mod:`layerscope.probes.llc`: all chains at once on one device.

The chains' parameters are stacked, ``(num_chains, *shape)`` per tensor, and one step is

    Δw = −(ε/2)·(nβ·∇L_b(w) + γ·(w − w*)) + √ε·ξ,   ξ ~ N(0, I)

(Welling & Teh 2011 with the localization term of Lau et al. 2023, arXiv 2308.12108;
SCIENCE.md §6). Gradients of all chains come from one ``torch.func.vmap`` over
``torch.func.functional_call``; models vmap cannot run (e.g. BatchNorm updating its
running statistics in train mode) are evaluated chain by chain instead. Either way the
noise is drawn for the stacked tensors from one seeded generator and the update is the
same stacked arithmetic, so both paths give the same chains up to round-off.

Each step records, per chain, the minibatch loss L_b(w_t) *before* the update (as
devinterp does), the baseline L_b(w*) of the unperturbed weights on the same minibatch
(shared by all chains: one extra forward pass per step), ‖w_t − w*‖² and a minibatch
MALA log-acceptance of the previous move (see :func:`_log_accept`).
"""

from __future__ import annotations

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
        param_shapes: shapes of the sampled parameter tensors.
        vectorized: whether the chains ran under vmap.
        fallback_reason: why vmap was not used (empty when it was, or when not asked).
    """

    losses: np.ndarray
    baselines: np.ndarray
    sq_dist: np.ndarray
    log_accept: np.ndarray
    vectorized: bool
    fallback_reason: str
    param_shapes: tuple[tuple[int, ...], ...]


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
    """The loss and its gradient for every chain: vmapped, or one chain at a time."""

    def __init__(
        self, model: nn.Module, loss_fn: LossFn, num_chains: int, device: torch.device
    ) -> None:
        self.module = _LossModule(model, loss_fn)
        named = list(model.named_parameters())
        self.w0: Tensors = {n: _copy(p, device) for n, p in named if p.requires_grad}
        fixed = {n: _copy(p, device) for n, p in named if not p.requires_grad}
        fixed.update({n: _copy(b, device) for n, b in model.named_buffers()})
        self.fixed = fixed
        self.chain_fixed = [{n: t.clone() for n, t in fixed.items()} for _ in range(num_chains)]
        if not self.w0:
            raise ValueError("model: has no parameters with requires_grad=True to sample")

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
            return self._loss(self.w0, fixed, batch)

    def vmapped(self, params: Tensors, batch: Any) -> tuple[Tensors, torch.Tensor]:
        """Gradients ``(C, *shape)`` and losses ``(C,)`` of all chains in one vmap."""
        fn = vmap(grad_and_value(self._loss), in_dims=(0, None, None), randomness="different")
        grads, losses = fn(params, self.fixed, batch)
        return grads, losses

    def looped(self, params: Tensors, batch: Any) -> tuple[Tensors, torch.Tensor]:
        """Same as :meth:`vmapped`, one chain after another (each with its own buffers)."""
        fn = grad_and_value(self._loss)
        outs = [
            fn({n: p[c] for n, p in params.items()}, fixed, batch)
            for c, fixed in enumerate(self.chain_fixed)
        ]
        grads = {n: torch.stack([g[n] for g, _ in outs]) for n in params}
        return grads, torch.stack([loss for _, loss in outs])


def _copy(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    return t.detach().to(device, copy=True)


def _per_chain_sum(tensors: Iterable[torch.Tensor]) -> torch.Tensor:
    """Σ over every element but the leading chain axis, added over tensors."""
    return sum(t.flatten(1).pow(2).sum(1) for t in tensors)  # type: ignore[return-value]


@dataclass(frozen=True)
class _Move:
    """What the MALA acceptance of a move needs from the step that made it."""

    move: Tensors
    energy: torch.Tensor
    half_sq_noise: torch.Tensor


def _log_accept(prev: _Move, drift: Tensors, energy: torch.Tensor, eps: float) -> torch.Tensor:
    """Minibatch MALA log-acceptance of the previous move w → w' (Roberts & Tweedie 1996).

    log α = U(w) − U(w') + ‖ξ‖²/2 − ‖−Δw + (ε/2)∇U(w')‖²/(2ε), where Δw = w' − w,
    ξ the injected noise and U = nβ·(L_b − L_b(w*)) + (γ/2)‖w − w*‖²: each U on its own
    step's minibatch, its baseline subtracted to cancel most of the batch-to-batch
    difference. An approximation: exact MALA needs U on the full data set.
    """
    back = _per_chain_sum(-prev.move[n] + 0.5 * eps * drift[n] for n in drift)
    return prev.energy - energy + prev.half_sq_noise - back / (2.0 * eps)


class _Sampler:
    """One SGLD run: the stacked chain state, the step and the per-step records."""

    def __init__(self, chains: _Chains, s: SamplerSettings, device: torch.device) -> None:
        self.chains, self.s, self.device = chains, s, device
        self.gen = torch.Generator(device=device).manual_seed(s.seed)
        self.params = {
            n: w.unsqueeze(0).repeat(s.num_chains, *[1] * w.dim()) for n, w in chains.w0.items()
        }
        self.use_vmap = s.vectorize is not False
        self.reason = ""
        self.prev: _Move | None = None
        self.records: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("loss", "base", "dist", "acc")
        }

    def _grads(self, batch: Any, first: bool) -> tuple[Tensors, torch.Tensor]:
        """Per-chain gradients and losses; on the first step, fall back to the loop if
        vmap fails (only when ``vectorize`` is None)."""
        if self.use_vmap and self.s.vectorize is None and first:
            try:
                return self.chains.vmapped(self.params, batch)
            except RuntimeError as err:
                self.use_vmap, self.reason = False, str(err).strip().splitlines()[0][:200]
        if self.use_vmap:
            return self.chains.vmapped(self.params, batch)
        return self.chains.looped(self.params, batch)

    def step(self, batch: Any, first: bool) -> None:
        """Record the losses at the current weights, then move every chain once."""
        s, w0 = self.s, self.chains.w0
        base = self.chains.baseline(batch)
        grads, losses = self._grads(batch, first)
        diff = {n: p - w0[n] for n, p in self.params.items()}
        sq_dist = _per_chain_sum(diff.values())
        drift = {n: s.nbeta * grads[n] + s.localization * diff[n] for n in diff}
        energy = s.nbeta * (losses.detach() - base) + 0.5 * s.localization * sq_dist
        if self.prev is not None:
            self.records["acc"].append(_log_accept(self.prev, drift, energy, s.step_size))
        noise = {
            n: torch.randn(p.shape, generator=self.gen, device=self.device, dtype=p.dtype)
            for n, p in self.params.items()
        }
        root = math.sqrt(s.step_size)
        move = {n: -0.5 * s.step_size * drift[n] + root * noise[n] for n in diff}
        self.params = {n: (p + move[n]).detach() for n, p in self.params.items()}
        self.prev = _Move(move, energy, 0.5 * _per_chain_sum(noise.values()))
        for key, value in (("loss", losses.detach()), ("base", base), ("dist", sq_dist)):
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
        param_shapes=tuple(tuple(w.shape) for w in chains.w0.values()),
    )
