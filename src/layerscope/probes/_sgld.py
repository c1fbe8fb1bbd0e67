"""The SGLD sampler behind :mod:`layerscope.probes.llc`: chains in parallel threads on a CPU.

The sampled weights of the chains are one ``(num_chains, D)`` tensor, stepped in blocks
of consecutive chains (:mod:`._sgld_block`: the SGLD update, Welling & Teh 2011, with
the localization term of Lau et al. 2023, arXiv 2308.12108; docs/science.md §8). Every chain
draws its noise from its own generator, seeded from ``(seed, chain)``, and the
arithmetic of a chain never depends on the other chains, so a seed gives the same chains
whatever the thread budget T (``threads``, default ``torch.get_num_threads()``; bitwise
while T ≤ C + 1). With T ≥ 2 on a CPU the chains
run in blocks of consecutive chains, one thread each (torch releases the GIL inside its
kernels), after one of two plans (:func:`_plan`), picked by timing a forward pass
against a noise draw on the first batch: where the gradients are cheap, one thread
draws the noise of step t+1 and computes the baseline, ‖w − w*‖² and the acceptance
terms while min(T − 1, C) blocks compute step t's gradients and updates; where they
dominate, min(T, C) blocks do all of it and take turns at the baseline. Gradients come
from :class:`~layerscope.probes._sgld_grads.BlockGrads` (vmap, or a loop). The records
of the blocks are joined into :class:`Traces`, and the energies combined with the
acceptance terms (:func:`log_accept`) once, at the end.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from layerscope.probes._sgld_block import Block, make_blocks
from layerscope.probes._sgld_grads import BlockGrads, Layout, LossFn, copy_module
from layerscope.probes._sgld_settings import SamplerSettings

__all__ = ["LossFn", "Traces", "copy_module", "run_chains"]


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
        threads: the thread budget (blocks of chains, perhaps a noise thread: ``_plan``).
    """

    losses: np.ndarray
    baselines: np.ndarray
    sq_dist: np.ndarray
    log_accept: np.ndarray
    vectorized: bool
    fallback_reason: str
    num_sampled: int
    threads: int = 1


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


def log_accept(energy: np.ndarray, correction: np.ndarray) -> np.ndarray:
    """Minibatch MALA log-acceptance of every move w → w' (Roberts & Tweedie 1996).

    log α = U(w) − U(w') + ‖ξ‖²/2 − ‖−Δw + (ε/2)∇U(w')‖²/(2ε), with Δw = w' − w, ξ the
    injected noise and U = nβ·(L_b − L_b(w*)) + (γ/2)‖w − w*‖² (``energy``, ``(C, T)``),
    each U on its own step's minibatch, its baseline subtracted to cancel most of the
    batch-to-batch difference. An approximation: exact MALA needs U on the full data.
    As −Δw + (ε/2)∇U(w') = (ε/2)·S − √ε·ξ with S = ∇U(w) + ∇U(w'), the ‖ξ‖²/2 terms
    cancel: log α = U(w) − U(w') + ``correction``, correction = (√ε/2)⟨S, ξ⟩ − (ε/8)‖S‖²
    (``(C, T − 1)``, recorded by the sampler).
    """
    with np.errstate(invalid="ignore", over="ignore"):
        out: np.ndarray = energy[:, :-1] - energy[:, 1:] + correction
    return out


def _run_parallel(blocks: list[Block], batches: Iterator[Any], num_steps: int) -> int:
    """Step every block on every batch, blocks in parallel threads; returns steps taken.
    The next batch is fetched while the blocks work."""
    inner = torch.get_num_threads()
    taken = 0
    with ThreadPoolExecutor(
        len(blocks), initializer=torch.set_num_threads, initargs=(inner,)
    ) as pool:
        batch = next(batches, None)
        while batch is not None:
            futures: list[Future[None]] = [pool.submit(b.step, batch, taken) for b in blocks]
            taken += 1
            batch = next(batches, None) if taken < num_steps else None
            for fut in futures:
                fut.result()
    return taken


def _plan(threads: int, num_chains: int, heavy: bool) -> tuple[int, int, bool]:
    """(blocks, intra-op threads per block, noise thread) for a thread budget.

    With two threads or more, when a chain's gradient is cheap next to its noise
    (``heavy`` False, see :func:`_heavy_gradients`), one thread draws the noise ahead and
    takes the baseline and acceptance terms and the rest run min(threads − 1, C) blocks
    of chains; when the gradients dominate, min(threads, C) blocks share all threads and
    draw their own noise. Measured on 2 cores (docs/benchmarks.md, LLC section): the
    noise thread is 4–15 % faster at batch 32 of a 100k-parameter MLP, two blocks 8 %
    faster at batch 256, where a block's many short operations no longer fight for
    the GIL as much.
    """
    if threads <= 1:
        return 1, 1, False
    if heavy:
        blocks = min(threads, num_chains)
        return blocks, max(1, threads // blocks), False
    blocks = min(threads - 1, num_chains)
    return blocks, max(1, (threads - 1) // blocks), True


# A chain's gradient costs about three forward passes; above this many of its noise
# draws, the gradients are worth more threads than the noise (see _plan).
HEAVY_GRADIENT_NOISES = 3.0


def _heavy_gradients(probe: nn.Module, loss_fn: LossFn, batch: Any, size: int) -> bool:
    """Whether one chain's gradient costs more than ``HEAVY_GRADIENT_NOISES`` draws of
    its ``size`` noise values, timed on ``probe`` (a copy of the model at w*) and the
    first batch, best of two, on one thread (a block's share when the chains are split).
    Torch's global generator is restored afterwards, so a dropout layer's draws do not
    move the rest of the run."""
    noise = torch.empty(size)
    forward = draw = math.inf
    with ExitStack() as stack:
        stack.enter_context(torch.random.fork_rng(devices=[]))
        stack.enter_context(torch.no_grad())
        stack.callback(torch.set_num_threads, torch.get_num_threads())
        torch.set_num_threads(1)
        for _ in range(2):
            start = time.perf_counter()
            loss_fn(probe, batch)
            mid = time.perf_counter()
            noise.normal_()
            end = time.perf_counter()
            forward, draw = min(forward, mid - start), min(draw, end - mid)
    return 3 * forward > HEAVY_GRADIENT_NOISES * draw


def run_chains(
    model: nn.Module,
    batches: Iterator[Any],
    loss_fn: LossFn,
    settings: SamplerSettings,
    device: torch.device,
) -> Traces:
    """Run ``settings.num_chains`` SGLD chains from the model's weights (see module doc).

    The caller's intra-op thread setting is changed for the run (to the plan's count per
    block) and restored afterwards.
    """
    stream: Iterator[Any] = itertools.islice(batches, settings.num_steps)
    layout = Layout.of(model, device)
    at_w0 = BlockGrads.copy_at_w0(model, device)
    heavy = False
    if settings.threads > 1 and device.type == "cpu":
        first = next(stream, None)
        if first is not None:
            stream = itertools.chain([first], stream)
            heavy = _heavy_gradients(at_w0, loss_fn, first, layout.w0.numel())
    num_blocks, inner, noisy = _plan(settings.threads, settings.num_chains, heavy)
    before = torch.get_num_threads()
    taken = 0
    with ExitStack() as stack:
        pool = None
        if noisy:
            pool = stack.enter_context(
                ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(1,))
            )
        blocks = make_blocks(model, loss_fn, settings, layout, (num_blocks, pool), at_w0)
        torch.set_num_threads(inner)
        stack.callback(torch.set_num_threads, before)
        if num_blocks > 1:
            taken = _run_parallel(blocks, stream, settings.num_steps)
        else:
            for taken, batch in enumerate(stream, start=1):
                blocks[0].step(batch, taken - 1)
        for block in blocks:
            block.finish()
    if taken < settings.num_steps:
        raise ValueError(f"data: ran out of batches after {taken} steps")
    return _traces(blocks, settings)


def _traces(blocks: list[Block], s: SamplerSettings) -> Traces:
    def joined(key: str) -> np.ndarray:
        return np.concatenate([b.stacked(key, 1) for b in blocks], axis=0)

    losses, sq_dist = joined("loss"), joined("dist")
    steps = np.concatenate([np.asarray(b.base_steps, dtype=np.int64) for b in blocks])
    baselines = np.concatenate([b.stacked("base", 0) for b in blocks if b.base_steps])
    baselines = baselines[np.argsort(steps, kind="stable")]
    with np.errstate(invalid="ignore", over="ignore"):
        energy = s.nbeta * (losses - baselines[None, :]) + 0.5 * s.localization * sq_dist
    return Traces(
        losses=losses,
        baselines=baselines,
        sq_dist=sq_dist,
        log_accept=log_accept(energy, joined("corr")),
        vectorized=all(b.use_vmap for b in blocks),
        fallback_reason=blocks[0].reason,
        num_sampled=blocks[0].grads.layout.w0.numel(),
        threads=s.threads,
    )
