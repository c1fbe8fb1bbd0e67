"""The SGLD sampler behind :mod:`layerscope.probes.llc`: chains in parallel threads on a CPU.

The sampled weights of the chains are one ``(num_chains, D)`` tensor, and one step is

    Δw = −(ε/2)·(nβ·∇L_b(w) + γ·(w − w*)) + √ε·ξ,   ξ ~ N(0, I)

(Welling & Teh 2011 with the localization term of Lau et al. 2023, arXiv 2308.12108;
SCIENCE.md §6). Every chain draws its noise from its own generator, seeded from
``(seed, chain)``, and the arithmetic of a chain never depends on the other chains, so a
seed gives the same chains whatever the thread budget T (``threads``, default
``torch.get_num_threads()``; bitwise while T ≤ C + 1). With T ≥ 2 on a CPU the chains
run in blocks of consecutive chains, one thread each (torch releases the GIL inside its
kernels), after one of two plans (:func:`_plan`), picked by timing a forward pass
against a noise draw on the first batch: where the gradients are cheap, one thread
draws the noise of step t+1 and computes the baseline, ‖w − w*‖² and the acceptance
terms while min(T − 1, C) blocks compute step t's gradients and updates; where they
dominate, min(T, C) blocks do all of it and take turns at the baseline. Gradients come
from :class:`~layerscope.probes._sgld_grads.BlockGrads` (vmap, or a loop).

Each step records, per chain, the minibatch loss L_b(w_t) *before* the update (as
devinterp does), the baseline L_b(w*) of the unperturbed weights on the same minibatch
(shared by all chains: one extra forward pass per step), ‖w_t − w*‖² and the part of the
minibatch MALA log-acceptance of the previous move that needs the weights (see
:func:`log_accept`); the energies are combined with it once, at the end.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from layerscope.probes._sgld_grads import BlockGrads, Layout, LossFn, copy_module

__all__ = ["LossFn", "SamplerSettings", "Traces", "copy_module", "run_chains"]


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
    threads: int = 1


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


def chain_generator(seed: int, chain: int, device: torch.device) -> torch.Generator:
    """The noise generator of chain ``chain``: seeded by NumPy's SeedSequence from
    ``(seed, chain)``, independent of the number of chains and of the thread budget."""
    state = np.random.SeedSequence(seed, spawn_key=(chain,)).generate_state(1, np.uint64)
    return torch.Generator(device=device).manual_seed(int(state[0]))


def _sq_norms(x: torch.Tensor) -> torch.Tensor:
    """‖x_c‖² of each row of ``x`` (k, D)."""
    norms: torch.Tensor = torch.linalg.vector_norm(x, dim=-1)
    return norms.square()


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


class _Noise:
    """ξ_t of a block's chains, row c from chain c's generator. With a ``pool``, ξ_{t+1}
    is drawn in a background thread while step t computes its gradients (torch releases
    the GIL while it draws); three buffers, since step t also needs ξ_{t−1}."""

    def __init__(
        self, like: torch.Tensor, gens: list[torch.Generator], pool: ThreadPoolExecutor | None
    ) -> None:
        self.bufs = [torch.empty_like(like) for _ in range(3)]
        self.gens, self.pool = gens, pool
        self.pending: dict[int, Future[None]] = {}

    def _draw(self, t: int) -> None:
        for row, gen in zip(self.bufs[t % 3], self.gens, strict=True):
            row.normal_(generator=gen)

    def at(self, t: int, last: bool) -> torch.Tensor:
        """ξ_t (drawn now or waited for); starts drawing ξ_{t+1} unless ``last``."""
        fut = self.pending.pop(t, None)
        if fut is None:
            self._draw(t)
        else:
            fut.result()
        if self.pool is not None and not last:
            self.pending[t + 1] = self.pool.submit(self._draw, t + 1)
        return self.bufs[t % 3]

    def before(self, t: int) -> torch.Tensor:
        """ξ_{t−1}."""
        return self.bufs[(t - 1) % 3]


def _nothing() -> None:
    pass


def prefer_vmap(device: torch.device) -> bool:
    """``vectorize=None``: vmap on an accelerator, the per-chain loop on a CPU.

    Measured on a 2-core CPU (docs/benchmarks.md, LLC section): the loop is within ±10 %
    of vmap on an MLP and 28–30 % faster on a GPT-2, whose attention has no vmap
    batching rule on the CPU; on a GPU one batched kernel per layer is what pays.
    """
    return device.type != "cpu"


class _Block:
    """Consecutive chains ``w`` (rows of the run's state) and their per-step records.

    The drift over nβ, h = ∇L_b(w) + (γ/nβ)·(w − w*), is kept as h̃ = h/a with
    a = γ/nβ, i.e. h̃ = (w − w*) + ∇L_b(w)/a: w − w* is written into h̃'s buffer first
    (it is needed for ‖w − w*‖² anyway) and the gradients are added to it, so forming
    h costs no pass of its own. Without localization (γ = 0), a = 1 and h̃ = ∇L_b(w),
    with w − w* in a buffer of its own.
    """

    def __init__(
        self, grads: BlockGrads, w: torch.Tensor, noise: _Noise, s: SamplerSettings
    ) -> None:
        self.grads, self.w, self.noise, self.s = grads, w, noise, s
        self.scale = s.localization / s.nbeta if s.localization > 0 else 1.0
        self.diff = torch.empty_like(w) if s.localization == 0 else None
        self.grad_bufs = tuple(torch.empty_like(w) for _ in range(3))
        self.jobs: dict[int, list[Future[None]]] = {}
        self.use_vmap = prefer_vmap(w.device) if s.vectorize is None else s.vectorize
        self.reason = ""
        # (period, phase): this block takes the baselines of steps ≡ phase; None: none.
        self.baseline_turn: tuple[int, int] | None = (1, 0)
        self.base_steps: list[int] = []
        self.records: dict[str, list[torch.Tensor]] = {
            k: [] for k in ("loss", "base", "dist", "corr")
        }

    def _grads(
        self, batch: Any, first: bool, out: torch.Tensor, ready: Callable[[], None]
    ) -> torch.Tensor:
        """Per-chain gradients into ``out`` (see the class doc) and losses; on the first
        step, fall back to the loop if vmap fails (only when ``vectorize`` is None)."""
        into = None if self.diff is not None else 1 / self.scale
        if self.use_vmap and self.s.vectorize is None and first:
            try:
                return self.grads.vmapped(self.w, batch, out, into, ready)
            except RuntimeError as err:
                self.use_vmap, self.reason = False, str(err).strip().splitlines()[0][:200]
        if self.use_vmap:
            return self.grads.vmapped(self.w, batch, out, into, ready)
        return self.grads.looped(self.w, batch, out, into, ready)

    def step(self, batch: Any, step: int) -> None:
        """Record the losses at the current weights, then move every chain once:
        w ← w + √ε·ξ − (ε·nβ/2)·h,  h = ∇L_b(w) + (γ/nβ)·(w − w*)  (the drift over nβ).

        In-place whole-block operations on preallocated buffers (on a CPU a fresh 1 MB+
        tensor costs more, in page faults, than the arithmetic on it); h_t is formed in
        one of three buffers, so that the acceptance term of step t (which needs h_{t−1}
        and h_t) can run on the noise thread while step t+1 computes its gradients. So
        can the baseline, and w − w* with its norm while the gradients are computed.
        """
        s = self.s
        h, prev = self.grad_bufs[step % 3], self.grad_bufs[(step - 1) % 3]
        for job in self.jobs.pop(step - 2, []):  # they last used the buffer h is to get
            job.result()
        located = self._aside(step, self._locate, h)
        noise = self.noise.at(step, last=step + 1 == s.num_steps)
        turn = self.baseline_turn
        if turn is not None and step % turn[0] == turn[1]:
            self.base_steps.append(step)
            self._aside(step, self._baseline, batch)
        losses = self._grads(batch, step == 0, h, located.result if located else _nothing)
        if step > 0:
            self._aside(step, self._correction, h, prev, self.noise.before(step))
        self.w.add_(noise, alpha=math.sqrt(s.step_size))
        self.w.add_(h, alpha=-0.5 * s.step_size * s.nbeta * self.scale)
        self.records["loss"].append(losses.detach())

    def _aside(self, step: int, fn: Callable[..., None], *args: Any) -> Future[None] | None:
        """``fn(*args)`` now, or queued on the noise thread (in order) when there is one."""
        if self.noise.pool is None:
            fn(*args)
            return None
        job = self.noise.pool.submit(fn, *args)
        self.jobs.setdefault(step, []).append(job)
        return job

    def _locate(self, h: torch.Tensor) -> None:
        """Record ‖w − w*‖², leaving w − w* in ``h`` (or in its own buffer when γ = 0)."""
        target = h if self.diff is None else self.diff
        diff = torch.sub(self.w, self.grads.layout.w0, out=target)
        self.records["dist"].append(_sq_norms(diff))

    def _baseline(self, batch: Any) -> None:
        self.records["base"].append(self.grads.baseline(batch).detach())

    def _correction(self, h: torch.Tensor, prev: torch.Tensor, noise: torch.Tensor) -> None:
        """The acceptance term of the move t−1 → t (see :func:`log_accept`):
        (√ε/2)⟨S, ξ_{t−1}⟩ − (ε/8)‖S‖², S = nβ·a·T with T = h̃_{t−1} + h̃_t (formed in
        ``prev``); the inner products row by row (a BLAS dot: half the time of a
        product and a sum, and no write)."""
        s = self.s
        c = s.nbeta * self.scale
        total = prev.add_(h)
        corr = (-s.step_size * c**2 / 8) * _sq_norms(total)
        dots = torch.stack([torch.dot(t, x) for t, x in zip(total, noise, strict=True)])
        self.records["corr"].append(corr.add_(dots, alpha=math.sqrt(s.step_size) * c / 2))

    def finish(self) -> None:
        """Wait for the jobs still queued on the noise thread."""
        for step in sorted(self.jobs):
            for job in self.jobs.pop(step):
                job.result()

    def stacked(self, key: str, dim: int) -> np.ndarray:
        """The records of ``key`` as one float64 array, steps along ``dim``."""
        if not self.records[key]:
            return np.zeros((len(self.w), 0))
        return torch.stack(self.records[key], dim).double().cpu().numpy()


def _blocks(
    model: nn.Module,
    loss_fn: LossFn,
    s: SamplerSettings,
    device: torch.device,
    plan: tuple[int, ThreadPoolExecutor | None],
    at_w0: nn.Module,
) -> list[_Block]:
    """``plan[0]`` blocks of consecutive chains drawing noise in ``plan[1]``; each block
    but the first evaluates its own copy of the model, so that blocks can run at once.
    The first block takes the baselines on ``at_w0`` when a noise thread computes them;
    otherwise the blocks take turns, each on its own copy at w* (at batch 256 of the
    benchmark MLP, one forward pass is a sixth of a block's step)."""
    layout = Layout.of(model, device)
    w = layout.w0.unsqueeze(0).repeat(s.num_chains, 1)
    gens = [chain_generator(s.seed, c, device) for c in range(s.num_chains)]
    bounds = np.linspace(0, s.num_chains, plan[0] + 1).round().astype(int).tolist()
    out = []
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        own = model if i == 0 else copy_module(model)
        noise = _Noise(w[lo:hi], gens[lo:hi], plan[1])
        grads = BlockGrads(own, loss_fn, layout, at_w0 if i == 0 else None)
        out.append(_Block(grads, w[lo:hi], noise, s))
    if plan[1] is None:
        for i, block in enumerate(out):
            block.baseline_turn = (len(out), i)
            block.grads.at_w0()  # before the threads start (see BlockGrads.copy_at_w0)
    else:
        for block in out[1:]:
            block.baseline_turn = None
    return out


def _run_parallel(blocks: list[_Block], batches: Iterator[Any], num_steps: int) -> int:
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
    at_w0 = BlockGrads.copy_at_w0(model, device)
    heavy = False
    if settings.threads > 1 and device.type == "cpu":
        first = next(stream, None)
        if first is not None:
            stream = itertools.chain([first], stream)
            size = sum(p.numel() for p in model.parameters() if p.requires_grad)
            heavy = _heavy_gradients(at_w0, loss_fn, first, size)
    num_blocks, inner, noisy = _plan(settings.threads, settings.num_chains, heavy)
    before = torch.get_num_threads()
    taken = 0
    with ExitStack() as stack:
        pool = None
        if noisy:
            pool = stack.enter_context(
                ThreadPoolExecutor(1, initializer=torch.set_num_threads, initargs=(1,))
            )
        blocks = _blocks(model, loss_fn, settings, device, (num_blocks, pool), at_w0)
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


def _traces(blocks: list[_Block], s: SamplerSettings) -> Traces:
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
