"""LLC estimator: closed-form ground truth (reduced-rank regression), determinism,
vmap vs loop, diagnostics on bad step sizes, data forms, validation and calibration."""

from __future__ import annotations

import functools
import itertools
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from _rrr import gaussian_nll, rrr_problem
from layerscope.probes import _sgld_block, llc
from layerscope.probes._dln import dln_learning_coefficient
from layerscope.probes._llc_diagnostics import half_drift, split_r_hat

FAST = {"num_chains": 3, "num_draws": 300, "burnin": 300}
# Ground-truth settings (docs/llc.md, "Rank 0"): γ = 0.1 so the localization prior does not
# confine the flat directions of singular points (γ = 1 read rank 0 10-16 % low), a
# half-default step ε·nβ = 0.01 against the discretisation's upward bias, and 2000 burn-in
# steps for the chains to spread from w* (all within ±9 % over three sampler seeds).
ACCURATE = {
    "num_chains": 4,
    "num_draws": 1000,
    "burnin": 2000,
    "localization": 0.1,
    "step_size": 0.01 / llc.default_nbeta(128),
}


@functools.cache
def _rrr_estimate(case: tuple[int, int, int, int]) -> float:
    model, x, y = rrr_problem(*case, train_steps=1500)
    return llc.estimate(model, (x, y), gaussian_nll, **ACCURATE).mean


@pytest.fixture(scope="module")
def rrr() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    return rrr_problem(6, 4, 6, 2, train_steps=1500)


@pytest.mark.parametrize(
    ("M", "H", "N", "r", "expected"),
    [
        (5, 2, 6, 2, 9.0),  # case 2, full rank: regular, d/2 = (H(M+N) − H²)/2
        (6, 2, 5, 2, 9.0),  # case 3, full rank
        (4, 3, 4, 3, 7.5),  # case 1 even, full rank: (3·8 − 9)/2
        (2, 9, 3, 0, 3.0),  # case 4: MN/2
    ],
)
def test_closed_form_regular_and_case4(M: int, H: int, N: int, r: int, expected: float) -> None:
    assert llc.rrr_learning_coefficient(M, H, N, r) == expected


def test_closed_form_case1_parity_and_bounds() -> None:
    # case 1, M+H+N+r odd: [2(H+r)(M+N) − (M−N)² − (H+r)² + 1]/8 by hand
    assert llc.rrr_learning_coefficient(5, 3, 5, 0) == (2 * 3 * 10 - 0 - 9 + 1) / 8
    # the LC never exceeds half the parameter count H(M+N)
    for M, H, N, r in [(6, 4, 6, 0), (6, 4, 6, 2), (3, 10, 4, 2), (8, 3, 8, 1)]:
        assert 0 < llc.rrr_learning_coefficient(M, H, N, r) <= H * (M + N) / 2
    with pytest.raises(ValueError, match="r must be"):
        llc.rrr_learning_coefficient(3, 2, 3, 3)


@pytest.mark.parametrize(
    "case",
    [
        (6, 4, 6, 0),  # case 1, even, true rank 0 (the most singular point)
        (5, 4, 5, 0),  # case 1, even, true rank 0
        (6, 4, 6, 2),  # case 1, even
        (5, 3, 5, 1),  # case 1, odd
        (3, 4, 10, 1),  # case 2: M + H < N + r
        (10, 4, 3, 1),  # case 3: N + H < M + r
        (3, 10, 4, 2),  # case 4: M + N < H + r
    ],
)
def test_rrr_ground_truth(case: tuple[int, int, int, int]) -> None:
    estimate, truth = _rrr_estimate(case), llc.rrr_learning_coefficient(*case)
    assert estimate == pytest.approx(truth, rel=0.10), (estimate, truth)


def test_rank_ordering_kept() -> None:
    means = [_rrr_estimate((6, 4, 6, r)) for r in (0, 1, 2)]
    truths = [llc.rrr_learning_coefficient(6, 4, 6, r) for r in (0, 1, 2)]
    assert truths == sorted(truths)
    assert means == sorted(means), means


def test_dln_closed_form_reduces_to_rrr_and_by_hand() -> None:
    # two layers: Aoyagi (2024) must give Aoyagi & Watanabe (2005) on every small case
    for M, H, N in np.ndindex(7, 7, 7):
        for r in range(min(M, H, N) + 2):
            sizes = (M + 1, H + 1, N + 1)
            assert dln_learning_coefficient(sizes, r) == llc.rrr_learning_coefficient(*sizes, r)
    # 4 → 6 → 5 → 3, r = 1: M_i = (3, 5, 4, 2), S = {2, 3, 4}, ℓ = 2, M̄ = 4.5, a = 1:
    # (1·7 − 1)/2 + 1·1/8 − 2·1·4.5²/4 + (6 + 8 + 12)/2 = 3 + 0.125 − 10.125 + 13
    assert dln_learning_coefficient((4, 6, 5, 3), 1) == 6.0
    # 10 → 20 → 20 → 10, r = 0: S = all, ℓ = 3, M̄ = 20, a = 3: −600 + 1300/2
    assert dln_learning_coefficient((10, 20, 20, 10), 0) == 50.0
    with pytest.raises(ValueError, match="r must be"):
        dln_learning_coefficient((4, 3, 4), 4)
    with pytest.raises(ValueError, match="widths"):
        dln_learning_coefficient((4,), 0)


def _dln_problem(widths: tuple[int, ...], r: int) -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    """Deep linear net at an Adam-trained w* near a rank-r truth (as ``rrr_problem``)."""
    g = torch.Generator().manual_seed(0)
    layers = [nn.Linear(a, b, bias=False) for a, b in itertools.pairwise(widths)]
    with torch.no_grad():
        for layer in layers:
            layer.weight.zero_()
            layer.weight[:r, :r] = torch.randn(r, r, generator=g) / max(r, 1) ** 0.5
        layers[0].weight[:r] = torch.randn(r, widths[0], generator=g) / widths[0] ** 0.5
        layers[-1].weight[:, :r] = torch.randn(widths[-1], r, generator=g)
    model = nn.Sequential(*layers)
    x = torch.randn(4000, widths[0], generator=g)
    with torch.no_grad():
        y = model(x) + torch.randn(4000, widths[-1], generator=g)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    for _ in range(1500):
        opt.zero_grad()
        gaussian_nll(model, (x, y)).backward()
        opt.step()
    return model, x, y


@pytest.mark.slow
@pytest.mark.parametrize(("widths", "r"), [((10, 20, 20, 10), 0), ((10, 20, 20, 10), 2)])
def test_dln_ground_truth(widths: tuple[int, ...], r: int) -> None:
    # 800 weights, three layers. ε·nβ = 0.01 overestimates by 100-150 % here (acceptance
    # 0.30, warned); 0.003 is the largest tried step with acceptance >= 0.45 (docs/llc.md)
    model, x, y = _dln_problem(widths, r)
    options = {**ACCURATE, "step_size": 0.003 / llc.default_nbeta(128)}
    res = llc.estimate(model, (x, y), gaussian_nll, **options)
    assert res.warnings == (), res.warnings
    truth = dln_learning_coefficient(widths, r)
    assert res.mean == pytest.approx(truth, rel=0.10), (res.mean, truth)


def test_deterministic_under_seed(rrr: tuple[nn.Module, torch.Tensor, torch.Tensor]) -> None:
    model, x, y = rrr
    kw = {"num_chains": 2, "num_draws": 30, "burnin": 10}
    a = llc.estimate(model, (x, y), gaussian_nll, seed=3, **kw)
    b = llc.estimate(model, (x, y), gaussian_nll, seed=3, **kw)
    c = llc.estimate(model, (x, y), gaussian_nll, seed=4, **kw)
    assert a.per_chain == b.per_chain
    assert a.per_chain != c.per_chain


def test_vmap_and_loop_agree(rrr: tuple[nn.Module, torch.Tensor, torch.Tensor]) -> None:
    model, x, y = rrr
    kw = {"num_chains": 3, "num_draws": 40, "burnin": 10, "keep_traces": True}
    vec = llc.estimate(model, (x, y), gaussian_nll, vectorize=True, **kw)
    loop = llc.estimate(model, (x, y), gaussian_nll, vectorize=False, **kw)
    assert vec.vectorized and not loop.vectorized
    assert vec.loss_traces is not None and loop.loss_traces is not None
    np.testing.assert_allclose(vec.loss_traces, loop.loss_traces, rtol=1e-4)
    np.testing.assert_allclose(vec.per_chain, loop.per_chain, rtol=1e-3)


def test_default_path_is_the_loop_on_cpu() -> None:
    model, x, y = nn.Linear(3, 2), torch.randn(64, 3), torch.randn(64, 2)
    res = llc.estimate(model, (x, y), gaussian_nll, num_chains=2, num_draws=5, burnin=0)
    assert not res.vectorized and res.fallback_reason == ""
    prefer = _sgld_block.prefer_vmap
    assert prefer(torch.device("cuda")) and not prefer(torch.device("cpu"))


def test_model_left_unchanged_and_batchnorm_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    # vectorize=None tries vmap on accelerators only; pretend this CPU is one.
    monkeypatch.setattr(_sgld_block, "prefer_vmap", lambda device: True)
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 1))
    model.train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    x, y = torch.randn(256, 4), torch.randn(256, 1)
    res = llc.estimate(model, (x, y), gaussian_nll, num_chains=2, num_draws=20, burnin=5)
    assert not res.vectorized and res.fallback_reason
    assert np.isfinite(res.mean)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_diagnostics_fire_on_bad_step_sizes(
    rrr: tuple[nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    model, x, y = rrr
    good = llc.estimate(model, (x, y), gaussian_nll, num_chains=4, num_draws=400, burnin=400)
    assert good.warnings == (), good.warnings
    short = {"num_chains": 3, "num_draws": 200, "burnin": 100}
    big = llc.estimate(model, (x, y), gaussian_nll, step_size=0.1, **short)
    assert big.diagnostics.diverged_chains == 3
    assert any("too large" in w for w in big.warnings)
    assert np.isnan(big.mean)
    small = llc.estimate(model, (x, y), gaussian_nll, step_size=1e-6, **short)
    assert any("too small" in w for w in small.warnings), small.warnings
    assert small.mean < 0.3 * good.mean
    hot = llc.estimate(model, (x, y), gaussian_nll, step_size=8e-3, **short)
    assert hot.diagnostics.acceptance < good.diagnostics.acceptance
    assert any("acceptance" in w for w in hot.warnings), hot.warnings


def test_drift_and_r_hat_on_synthetic_traces() -> None:
    rng = np.random.default_rng(0)
    flat = rng.normal(size=(4, 400))
    level = flat + 10.0
    assert abs(half_drift(level).z) < 3 and abs(half_drift(level).relative) < 0.05
    rising = half_drift(level + np.linspace(0, 5, 400))
    assert rising.z > 3 and rising.relative == pytest.approx(2.5 / 12.5, rel=0.1)
    assert np.isnan(half_drift(level[:1]).z)
    assert split_r_hat(flat).r_hat == pytest.approx(1.0, abs=0.02)
    shifted = flat + np.array([[0.0], [0.0], [2.0], [2.0]])
    assert split_r_hat(shifted).r_hat > 1.1


def test_other_data_forms_give_the_same_kind_of_result(
    rrr: tuple[nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    model, x, y = rrr
    kw = {"num_chains": 2, "num_draws": 50, "burnin": 20}
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True)
    from_loader = llc.estimate(model, loader, gaussian_nll, **kw)
    assert from_loader.batch_size == 64 and from_loader.num_samples == len(x)
    assert from_loader.nbeta == pytest.approx(64 / np.log(64))
    dict_batches = [{"inp": x[i : i + 32], "out": y[i : i + 32]} for i in range(0, 320, 32)]

    def dict_loss(m: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return gaussian_nll(m, (batch["inp"], batch["out"]))

    from_dicts = llc.estimate(model, dict_batches, dict_loss, nbeta=10.0, **kw)
    assert from_dicts.num_samples is None and np.isfinite(from_dicts.mean)
    with pytest.raises(ValueError, match="nbeta"):
        llc.estimate(model, dict_batches, dict_loss, **kw)


def test_result_plain_data(rrr: tuple[nn.Module, torch.Tensor, torch.Tensor]) -> None:
    model, x, y = rrr
    res = llc.estimate(
        model, (x, y), gaussian_nll, num_chains=2, num_draws=30, burnin=10, keep_traces=True
    )
    assert res.loss_traces is not None and res.loss_traces.shape == (2, 30)
    assert res.baseline_trace is not None and res.baseline_trace.shape == (30,)
    manual = res.nbeta * (res.loss_traces - res.baseline_trace).mean(axis=1)
    np.testing.assert_allclose(res.per_chain, manual)
    data = json.loads(json.dumps(res.to_dict()))
    assert data["mean"] == pytest.approx(res.mean) and "diag_r_hat" in data
    frame = res.to_frame()
    assert list(frame.columns) == ["chain", "llc", "drift", "diverged", "mean_loss"]
    fixed = llc.estimate(model, (x, y), gaussian_nll, num_draws=30, burnin=10, baseline=1.0)
    assert fixed.baseline == "fixed" and fixed.baseline_loss == 1.0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"num_chains": 0}, "num_chains"),
        ({"burnin": -1}, "burnin"),
        ({"step_size": 0.0}, "step_size"),
        ({"nbeta": -2.0}, "nbeta"),
        ({"baseline": "full"}, "baseline"),
        ({"batch_size": 10**6}, "batch_size"),
        ({"bogus": 1}, "bogus"),
    ],
)
def test_bad_options(
    rrr: tuple[nn.Module, torch.Tensor, torch.Tensor], kwargs: dict[str, object], match: str
) -> None:
    model, x, y = rrr
    with pytest.raises(ValueError, match=match):
        llc.estimate(model, (x, y), gaussian_nll, **kwargs)


def test_non_scalar_loss_rejected(rrr: tuple[nn.Module, torch.Tensor, torch.Tensor]) -> None:
    model, x, y = rrr
    with pytest.raises(ValueError, match="scalar"):
        llc.estimate(model, (x, y), lambda m, b: m(b[0]) - b[1], num_draws=2, burnin=0)


def test_calibrate_suggests_an_ok_row(rrr: tuple[nn.Module, torch.Tensor, torch.Tensor]) -> None:
    model, x, y = rrr
    cal = llc.calibrate(model, (x, y), gaussian_nll)
    table = cal.to_frame()
    assert len(table) == 6 and table["step_size"].is_monotonic_increasing
    chosen = table[table["step_size"] == cal.step_size].iloc[0]
    assert chosen["ok"] and "optimum" in cal.reason
    assert table["diverged_chains"].iloc[-1] >= 0
    assert table["acceptance"].iloc[0] > table["acceptance"].iloc[-1]
    with pytest.raises(ValueError, match="step_size"):
        llc.calibrate(model, (x, y), gaussian_nll, step_size=1e-3)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cuda_matches_cpu_statistically(
    rrr: tuple[nn.Module, torch.Tensor, torch.Tensor],
) -> None:
    model, x, y = rrr
    cpu = llc.estimate(model, (x, y), gaussian_nll, **FAST)
    gpu = llc.estimate(model, (x, y), gaussian_nll, device="cuda", **FAST)
    assert gpu.vectorized
    assert gpu.mean == pytest.approx(cpu.mean, rel=0.15)


def _tracker(x: torch.Tensor, y: torch.Tensor) -> Any:
    """A cheap LLCTracker (2 chains × 20 draws) estimating every 10 steps."""
    from layerscope.track.llc import LLCTracker

    options = {"num_chains": 2, "num_draws": 20, "burnin": 5}
    return LLCTracker((x, y), gaussian_nll, every=10, options=options)


def test_llc_tracker_stores_scalars(
    rrr: tuple[nn.Module, torch.Tensor, torch.Tensor], tmp_path: Path
) -> None:
    from layerscope.track.llc import LLCTracker
    from layerscope.track.store import RunStore

    model, x, y = rrr
    tracker = _tracker(x, y)
    with RunStore(tmp_path / "runs.db") as store:
        run = store.start_run("llc")
        logged = [tracker.maybe_log(store, run, step, model) for step in (0, 5, 10)]
        history = store.scalar_history(run)
    assert logged[1] is None and logged[0] is not None and logged[2] is not None
    assert history["step"].tolist() == [0, 10]
    assert history["llc"].tolist() == pytest.approx([logged[0].mean, logged[2].mean])
    assert set(history.columns) == {"step", "llc", "llc_std", "llc_warnings"}
    with pytest.raises(ValueError, match="every"):
        LLCTracker((x, y), gaussian_nll, every=0)
    with pytest.raises(ValueError, match="num_draws"):
        LLCTracker((x, y), gaussian_nll, options={"num_draws": 0})


def test_monitor_estimates_llc_when_due(
    rrr: tuple[nn.Module, torch.Tensor, torch.Tensor], tmp_path: Path
) -> None:
    from layerscope.track import Monitor

    model, x, y = rrr
    tracker = _tracker(x, y)
    with Monitor(
        model, every=1000, store=tmp_path / "m.db", background=False, detector=None, llc=tracker
    ) as monitor:
        for step in (0, 5, 12, 19, 20):
            monitor.step(step, train_loss=1.0)
        history = monitor.store.scalar_history(monitor.run_id)
    assert history.dropna(subset=["llc"])["step"].tolist() == [0, 12, 20]
    assert history["llc"].dropna().gt(0).all()


def test_regular_quadratic_reads_half_the_dimension() -> None:
    """A regular model has λ = d/2 (Watanabe 2009, Algebraic Geometry and Statistical
    Learning Theory). For L(w) = ‖w‖²/2 with localization γ the SGLD chain is a
    discretised Ornstein-Uhlenbeck process with a = nβ + γ, whose stationary E‖w‖² is
    d·ε/(1 − (1 − εa/2)²), so the estimate nβ·E[L] has a closed form to check, step size
    error included."""
    d, nbeta, gamma = 200, 26.0, 1.0
    step = 0.02 / nbeta
    model = nn.Linear(d, 1, bias=False)
    with torch.no_grad():
        model.weight.zero_()

    def loss(m: nn.Module, batch: tuple[torch.Tensor]) -> torch.Tensor:
        return 0.5 * (m.weight**2).sum() + 0.0 * batch[0].sum()

    res = llc.estimate(
        model,
        (torch.zeros(256, 1),),
        loss,
        num_chains=4,
        num_draws=2000,
        burnin=300,
        step_size=step,
        nbeta=nbeta,
        localization=gamma,
        seed=1,
    )
    r = 1 - step * (nbeta + gamma) / 2
    expected = nbeta * 0.5 * d * step / (1 - r**2)
    assert expected == pytest.approx(d / 2 * nbeta / (nbeta + gamma), rel=0.01)
    assert res.mean == pytest.approx(expected, rel=0.03)
