"""TempBalance: group learning rates against a direct computation, and schedulers."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from layerscope.control.tempbalance import TempBalance, layer_param_groups, read_layer

WIDTHS = (20, 64, 128, 96, 40, 72, 60, 10)  # layers "6", "8" have 40 < 50 eigenvalues


def _trained_mlp() -> torch.nn.Sequential:
    torch.manual_seed(0)
    layers: list[torch.nn.Module] = []
    for a, b in itertools.pairwise(WIDTHS):
        layers += [torch.nn.Linear(a, b), torch.nn.ReLU()]
    model = torch.nn.Sequential(*layers[:-1])
    x, y = torch.randn(256, WIDTHS[0]), torch.randint(0, WIDTHS[-1], (256,))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(40):
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
        opt.zero_grad()
    return model


def _median_alpha(W: np.ndarray) -> float:
    """Zhou et al. 2023 'median' fit: xmin = λ_⌊N/2⌋, α = 1 + n / Σ ln(λ/xmin)."""
    lam = np.sort(np.linalg.svd(W.astype(np.float64), compute_uv=False) ** 2)
    k = lam.size // 2
    tail = lam[k:]
    return float(1.0 + tail.size / np.sum(np.log(tail / lam[k])))


def _expected_factors(model: torch.nn.Sequential, s1: float, s2: float) -> dict[str, float]:
    linears = [(n, m) for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    alphas = {
        n: _median_alpha(m.weight.detach().numpy())
        for n, m in linears[1:-1]  # first and last layer excluded
        if min(m.weight.shape) >= 50
    }
    lo, hi = min(alphas.values()), max(alphas.values())
    return {n: s1 + (a - lo) / (hi - lo) * (s2 - s1) for n, a in alphas.items()}


def test_group_lrs_match_direct_computation() -> None:
    model = _trained_mlp()
    opt = torch.optim.SGD(layer_param_groups(model, lr=0.1, weight_decay=1e-4), lr=0.1)
    tb = TempBalance(opt, model, every=10)
    tb.step()
    expected = _expected_factors(model, 0.5, 1.5)
    assert set(expected) == {"2", "4", "10"}  # "0" and "12" are the ends
    for g in opt.param_groups:
        layer = g["layerscope_layer"]
        want = 0.1 * expected.get(layer, 1.0) if layer is not None else 0.1
        assert g["lr"] == pytest.approx(want, rel=1e-9), layer
        assert g["weight_decay"] == 1e-4
    assert min(expected.values()) == 0.5 and max(expected.values()) == 1.5


@pytest.mark.parametrize(
    "make",
    [
        lambda o: torch.optim.lr_scheduler.CosineAnnealingLR(o, T_max=12, eta_min=0.01),
        lambda o: torch.optim.lr_scheduler.LambdaLR(o, lambda t: 1.0 / (1 + t)),
        lambda o: torch.optim.lr_scheduler.ExponentialLR(o, gamma=0.8),
    ],
)
def test_follows_any_scheduler(make: object) -> None:
    model = _trained_mlp()
    opt = torch.optim.AdamW(layer_param_groups(model, lr=0.05), lr=0.05)
    twin = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=0.05)
    sched, twin_sched = make(opt), make(twin)  # type: ignore[operator]
    tb = TempBalance(opt, model, every=4)
    calls = []
    recompute = tb.recompute
    tb.recompute = lambda: calls.append(tb.steps) or recompute()  # type: ignore[method-assign]
    x = torch.randn(32, WIDTHS[0])
    for _ in range(9):
        model(x).pow(2).mean().backward()
        opt.step()
        opt.zero_grad()
        sched.step()
        twin.step()  # no gradients: only keeps the scheduler's call order
        twin_sched.step()
        tb.step()
        eta = twin.param_groups[0]["lr"]
        for g in opt.param_groups:
            factor = tb.factors.get(g["layerscope_layer"], 1.0)
            assert g["lr"] == pytest.approx(eta * factor, rel=1e-12)
    assert calls == [0, 4, 8]


def test_farms_metric_and_conv_layers() -> None:
    torch.manual_seed(1)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 16, 3),
        torch.nn.Conv2d(16, 64, 3),
        torch.nn.Conv2d(64, 64, 3),
        torch.nn.Conv2d(64, 128, 3),
        torch.nn.Conv2d(128, 10, 1),
    )
    conv = model[1]
    W = conv.weight.detach().numpy().astype(np.float64)
    slices = [W[:, :, i, j] for i in range(3) for j in range(3)]
    lam = np.concatenate([np.linalg.svd(s, compute_uv=False) ** 2 for s in slices]) * 0.5
    lam = np.sort(lam)
    k = lam.size // 2
    direct = 1.0 + (lam.size - k) / np.sum(np.log(lam[k:] / lam[k]))
    reading = read_layer("1", conv)
    assert reading is not None and reading.num_evals == 16 * 9
    assert reading.alpha == pytest.approx(direct, rel=1e-7)
    opt = torch.optim.SGD(layer_param_groups(model, lr=0.1), lr=0.1)
    tb = TempBalance(opt, model, every=1, metric="alpha_farms")
    tb.step()
    assert set(tb.factors) == {"1", "2", "3"}
    assert all(0.5 <= f <= 1.5 for f in tb.factors.values())


def test_bad_setup() -> None:
    model = _trained_mlp()
    plain = torch.optim.SGD(model.parameters(), lr=0.1)
    with pytest.raises(ValueError, match="layer_param_groups"):
        TempBalance(plain, model, every=1)
    opt = torch.optim.SGD(layer_param_groups(model, lr=0.1), lr=0.1)
    with pytest.raises(ValueError, match="every must be >= 1"):
        TempBalance(opt, model, every=0)
    with pytest.raises(ValueError, match="0 < s1 <= s2"):
        TempBalance(opt, model, every=1, s1=1.5, s2=0.5)
    with pytest.raises(ValueError, match="metric must be"):
        TempBalance(opt, model, every=1, metric="entropy")
