"""One block of SGLD chains and its per-step arithmetic (used by :mod:`._sgld`).

The sampled weights of a block's k chains are rows of the run's ``(num_chains, D)``
state, and one step of each is

    Δw = −(ε/2)·(nβ·∇L_b(w) + γ·(w − w*)) + √ε·ξ,   ξ ~ N(0, I)

(Welling & Teh 2011 with the localization term of Lau et al. 2023, arXiv 2308.12108;
docs/science.md §8). A chain draws its noise from its own generator, seeded from
``(seed, chain)``, so its arithmetic never depends on the other chains. Each step
records, per chain, the minibatch loss L_b(w_t) *before* the update (as devinterp does),
the baseline L_b(w*) on the same minibatch (one extra forward pass per step, for the
whole run), ‖w_t − w*‖² and the part of the minibatch MALA log-acceptance of the
previous move that needs the weights (:func:`._sgld.log_accept`). Work that need not
wait for the gradients (noise, baseline, ‖w − w*‖², acceptance terms) can be queued on
a noise thread.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import nn

from layerscope.probes._sgld_grads import BlockGrads, Layout, LossFn, copy_module

if TYPE_CHECKING:
    from layerscope.probes._sgld_settings import SamplerSettings


def chain_generator(seed: int, chain: int, device: torch.device) -> torch.Generator:
    """The noise generator of chain ``chain``: seeded by NumPy's SeedSequence from
    ``(seed, chain)``, independent of the number of chains and of the thread budget."""
    state = np.random.SeedSequence(seed, spawn_key=(chain,)).generate_state(1, np.uint64)
    return torch.Generator(device=device).manual_seed(int(state[0]))


def sq_norms(x: torch.Tensor) -> torch.Tensor:
    """‖x_c‖² of each row of ``x`` (k, D)."""
    norms: torch.Tensor = torch.linalg.vector_norm(x, dim=-1)
    return norms.square()


class Noise:
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


class Block:
    """Consecutive chains ``w`` (rows of the run's state) and their per-step records.

    The drift over nβ, h = ∇L_b(w) + (γ/nβ)·(w − w*), is kept as h̃ = h/a with
    a = γ/nβ, i.e. h̃ = (w − w*) + ∇L_b(w)/a: w − w* is written into h̃'s buffer first
    (it is needed for ‖w − w*‖² anyway) and the gradients are added to it, so forming
    h costs no pass of its own. Without localization (γ = 0), a = 1 and h̃ = ∇L_b(w),
    with w − w* in a buffer of its own.
    """

    def __init__(
        self, grads: BlockGrads, w: torch.Tensor, noise: Noise, s: SamplerSettings
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
        self.records["dist"].append(sq_norms(diff))

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
        corr = (-s.step_size * c**2 / 8) * sq_norms(total)
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


def make_blocks(
    model: nn.Module,
    loss_fn: LossFn,
    s: SamplerSettings,
    layout: Layout,
    plan: tuple[int, ThreadPoolExecutor | None],
    at_w0: nn.Module,
) -> list[Block]:
    """``plan[0]`` blocks of consecutive chains drawing noise in ``plan[1]``; each block
    but the first evaluates its own copy of the model, so that blocks can run at once.
    The first block takes the baselines on ``at_w0`` when a noise thread computes them;
    otherwise the blocks take turns, each on its own copy at w* (at batch 256 of the
    benchmark MLP, one forward pass is a sixth of a block's step)."""
    w = layout.w0.unsqueeze(0).repeat(s.num_chains, 1)
    device = w.device
    gens = [chain_generator(s.seed, c, device) for c in range(s.num_chains)]
    bounds = np.linspace(0, s.num_chains, plan[0] + 1).round().astype(int).tolist()
    out = []
    for i, (lo, hi) in enumerate(itertools.pairwise(bounds)):
        own = model if i == 0 else copy_module(model)
        noise = Noise(w[lo:hi], gens[lo:hi], plan[1])
        grads = BlockGrads(own, loss_fn, layout, at_w0 if i == 0 else None)
        out.append(Block(grads, w[lo:hi], noise, s))
    if plan[1] is None:
        for i, block in enumerate(out):
            block.baseline_turn = (len(out), i)
            block.grads.at_w0()  # before the threads start (see BlockGrads.copy_at_w0)
    else:
        for block in out[1:]:
            block.baseline_turn = None
    return out
