"""The SGLD sampler against a hand-written float64 reference, and its thread invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from _rrr import gaussian_nll, rrr_problem
from layerscope.probes import _sgld, llc
from layerscope.probes._sgld import cycle_batches, run_chains
from layerscope.probes._sgld_block import chain_generator
from layerscope.probes._sgld_settings import SamplerSettings

CPU = torch.device("cpu")


def _reference(
    w0: torch.Tensor, batches: list[tuple[torch.Tensor, torch.Tensor]], s: SamplerSettings
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Textbook SGLD + MALA for a linear model y ≈ Wx + b (W 2×3, b 2) in float64: the
    gradient in closed form, log α = U(w) − U(w') + ‖ξ‖²/2 − ‖w − w' + (ε/2)∇U(w')‖²/(2ε)."""

    def loss_grad(w: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[float, torch.Tensor]:
        weight, bias = w[:6].view(2, 3), w[6:]
        resid = x @ weight.T + bias - y
        loss = 0.5 * (resid**2).sum(1).mean()
        return float(loss), torch.cat([(resid.T @ x).reshape(-1), resid.sum(0)]) / len(x)

    def energy(w: torch.Tensor, t: int) -> tuple[float, torch.Tensor]:
        x, y = batches[t % len(batches)]
        loss, grad = loss_grad(w, x, y)
        base, _ = loss_grad(w0, x, y)
        d = w - w0
        u = s.nbeta * (loss - base) + 0.5 * s.localization * float(d @ d)
        return u, s.nbeta * grad + s.localization * d

    eps = s.step_size
    losses, dists, accept = [], [], []
    for chain in range(s.num_chains):
        gen = chain_generator(s.seed, chain, CPU)
        w, rows = w0.clone(), ([], [], [])
        for t in range(s.num_steps):
            x, y = batches[t % len(batches)]
            u, grad_u = energy(w, t)
            rows[0].append(loss_grad(w, x, y)[0])
            rows[1].append(float((w - w0) @ (w - w0)))
            xi = torch.empty(len(w)).normal_(generator=gen).double()
            new = w - eps / 2 * grad_u + math.sqrt(eps) * xi
            if t + 1 < s.num_steps:
                u_new, grad_new = energy(new, t + 1)
                back = w - new + eps / 2 * grad_new
                rows[2].append(u - u_new + float(xi @ xi) / 2 - float(back @ back) / (2 * eps))
            w = new
        for out, row in zip((losses, dists, accept), rows, strict=True):
            out.append(row)
    return np.array(losses), np.array(dists), np.array(accept)


@pytest.fixture(params=[False, True], ids=["noise-thread-plan", "blocks-plan"])
def heavy(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """Force _sgld's plan for 2+ threads: a noise thread, or blocks taking turns at the
    baseline (what it picks when the gradients cost more than the noise)."""
    monkeypatch.setattr(_sgld, "HEAVY_GRADIENT_NOISES", 0.0 if request.param else math.inf)
    return bool(request.param)


@pytest.mark.parametrize("gamma", [1.0, 0.0])  # the drift kept over γ/nβ, or not
@pytest.mark.parametrize("threads", [1, 2, 3])  # inline; noise thread or 2 blocks; + more
def test_sampler_matches_float64_reference(threads: int, heavy: bool, gamma: float) -> None:
    g = torch.Generator().manual_seed(0)
    model = nn.Linear(3, 2)
    batches = [(torch.randn(16, 3, generator=g), torch.randn(16, 2, generator=g)) for _ in range(5)]
    s = SamplerSettings(
        3,
        30,
        step_size=0.05,
        localization=gamma,
        nbeta=4.0,
        seed=7,
        vectorize=None,
        threads=threads,
    )
    traces = run_chains(model, cycle_batches(batches), gaussian_nll, s, CPU)
    w0 = torch.cat([model.weight.detach().reshape(-1), model.bias.detach()]).double()
    double = [(x.double(), y.double()) for x, y in batches]
    losses, dists, accept = _reference(w0, double, s)
    assert traces.threads == threads
    np.testing.assert_allclose(traces.losses, losses, rtol=1e-5)
    np.testing.assert_allclose(traces.sq_dist, dists, rtol=1e-4)
    assert np.ptp(accept) > 0.1  # a step large enough for the acceptance to matter
    np.testing.assert_allclose(traces.log_accept, accept, atol=1e-4 * np.abs(accept).max())


def test_same_chains_for_any_thread_budget(heavy: bool) -> None:
    model, x, y = rrr_problem(6, 4, 6, 2, train_steps=300)
    kw = {"num_chains": 3, "num_draws": 30, "burnin": 10, "keep_traces": True, "seed": 5}
    runs = {
        (t, v): llc.estimate(model, (x, y), gaussian_nll, threads=t, vectorize=v, **kw)
        for t in (1, 2, 3)
        for v in (True, False)
    }
    for (threads, vectorize), res in runs.items():
        assert res.threads == threads and res.loss_traces is not None
        np.testing.assert_array_equal(res.loss_traces, runs[1, vectorize].loss_traces)
    with pytest.raises(ValueError, match="threads"):
        llc.estimate(model, (x, y), gaussian_nll, threads=0)


def test_default_threads_follow_torch_but_not_with_dropout() -> None:
    model, x, y = rrr_problem(6, 4, 6, 2, train_steps=300)
    dropout = nn.Sequential(nn.Linear(6, 6), nn.Dropout(0.1), nn.Linear(6, 6))
    kw = {"num_chains": 3, "num_draws": 5, "burnin": 0}
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        assert llc.estimate(model, (x, y), gaussian_nll, **kw).threads == 2
        assert torch.get_num_threads() == 2
        assert llc.estimate(dropout, (x, y), gaussian_nll, **kw).threads == 1
        assert llc.estimate(dropout.eval(), (x, y), gaussian_nll, **kw).threads == 2
    finally:
        torch.set_num_threads(before)


def test_plan_splits_the_thread_budget() -> None:
    # (blocks, intra-op threads per block, noise thread)
    assert _sgld._plan(1, 4, heavy=True) == (1, 1, False)
    assert _sgld._plan(2, 4, heavy=False) == (1, 1, True)
    assert _sgld._plan(2, 4, heavy=True) == (2, 1, False)
    assert _sgld._plan(16, 4, heavy=True) == (4, 4, False)
    assert _sgld._plan(16, 4, heavy=False) == (4, 3, True)


def test_gradient_cost_probe_reads_batch_size() -> None:
    """A wide MLP's gradient outweighs its noise at a large batch, not at a tiny one,
    and timing it leaves torch's generator and thread setting as they were."""
    model = nn.Sequential(nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 256))
    size = sum(p.numel() for p in model.parameters())

    def loss(m: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return nn.functional.dropout(m(x), 0.5).square().mean()

    big, tiny = torch.randn(2048, 256), torch.randn(1, 256)
    state, threads = torch.get_rng_state(), torch.get_num_threads()
    assert _sgld._heavy_gradients(model, loss, big, size)
    assert not _sgld._heavy_gradients(model, loss, tiny, size)
    assert torch.get_num_threads() == threads
    assert torch.equal(torch.get_rng_state(), state)  # the dropout's draws were undone


def test_one_backward_for_all_chains_gives_the_same_chains(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small models take every chain's backward in one autograd call, large ones chain by
    chain; the chains are bitwise the same either way."""
    from layerscope.probes import _sgld_grads

    model, x, y = rrr_problem(6, 4, 6, 2, train_steps=300)
    kw = {"num_chains": 3, "num_draws": 20, "burnin": 5, "keep_traces": True, "seed": 2}
    together = llc.estimate(model, (x, y), gaussian_nll, vectorize=False, **kw)
    monkeypatch.setattr(_sgld_grads, "ONE_BACKWARD_MAX", 0)
    apart = llc.estimate(model, (x, y), gaussian_nll, vectorize=False, **kw)
    assert together.loss_traces is not None and apart.loss_traces is not None
    np.testing.assert_array_equal(together.loss_traces, apart.loss_traces)
    assert together.mean == apart.mean
