"""Baseline grokking measures (Golechha 2024) against numpy / scipy hand computations."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from scipy.special import rel_entr, softmax
from torch import nn

from layerscope.probes.baselines import (
    activation_sparsity,
    baseline_metrics,
    circuit_complexity,
    l2_norm,
    weight_entropy,
    zeroed_weights,
)
from layerscope.track import Monitor, RunStore


def _model(seed: int = 0) -> nn.Sequential:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(6, 9, dtype=torch.float64),
        nn.ReLU(),
        nn.Linear(9, 7, dtype=torch.float64),
        nn.Tanh(),
        nn.Linear(7, 4, dtype=torch.float64),
    )


def _arrays(model: nn.Sequential) -> list[tuple[np.ndarray, np.ndarray]]:
    return [
        (m.weight.detach().numpy(), m.bias.detach().numpy())
        for m in model
        if isinstance(m, nn.Linear)
    ]


def _forward(layers: list[tuple[np.ndarray, np.ndarray]], x: np.ndarray) -> list[np.ndarray]:
    """Activations after ReLU and Tanh, then the logits (numpy)."""
    (w1, b1), (w2, b2), (w3, b3) = layers
    a1 = np.maximum(x @ w1.T + b1, 0.0)
    a2 = np.tanh(a1 @ w2.T + b2)
    return [a1, a2, a2 @ w3.T + b3]


def test_l2_norm_and_entropy_match_numpy() -> None:
    model = _model()
    with torch.no_grad():
        model[0].weight[0, :3] = 0.0  # 0 ln 0 = 0
    weights = [w for w, _ in _arrays(model)]
    assert l2_norm(model) == pytest.approx(np.sqrt(sum(np.sum(w**2) for w in weights)), rel=1e-12)
    expected = 0.0
    for w in weights:
        a = np.abs(w[w != 0])
        expected -= np.sum(a * np.log(a))
    assert weight_entropy(model) == pytest.approx(expected, rel=1e-12)


def test_activation_sparsity_matches_numpy() -> None:
    model = _model(1)
    x = np.random.default_rng(0).normal(size=(50, 6))
    tau = 0.05
    a1, a2, _ = _forward(_arrays(model), x)
    expected = (np.sum(np.abs(a1) < tau) + np.sum(np.abs(a2) < tau)) / (a1.size + a2.size)
    assert activation_sparsity(model, torch.from_numpy(x), tau) == pytest.approx(expected)
    assert 0.2 < expected < 0.9  # the ReLU zeros count, the test is not degenerate


def test_zeroed_weights_drop_ten_percent_per_matrix_reproducibly() -> None:
    model = _model()
    zeroed = zeroed_weights(model, 0.1, seed=4)
    assert set(zeroed) == {"0.weight", "2.weight", "4.weight"}
    for name, w in zeroed.items():
        original = dict(model.named_parameters())[name].detach()
        dropped = (w == 0) & (original != 0)
        assert int(dropped.sum()) == round(0.1 * w.numel())
        torch.testing.assert_close(w[~dropped], original[~dropped])
    again = zeroed_weights(model, 0.1, seed=4)
    other = zeroed_weights(model, 0.1, seed=5)
    assert all(torch.equal(zeroed[k], again[k]) for k in zeroed)
    assert not all(torch.equal(zeroed[k], other[k]) for k in zeroed)


def test_circuit_complexity_matches_scipy_rel_entr() -> None:
    model = _model(2)
    x = np.random.default_rng(1).normal(size=(30, 6))
    zeroed = zeroed_weights(model, 0.1, seed=7)
    layers = _arrays(model)
    pruned = [
        (zeroed[f"{i}.weight"].numpy(), b) for i, (_, b) in zip((0, 2, 4), layers, strict=True)
    ]
    p = softmax(_forward(layers, x)[-1], axis=1)
    q = softmax(_forward(pruned, x)[-1], axis=1)
    expected = float(np.sum(rel_entr(p, q)))
    got = circuit_complexity(model, torch.from_numpy(x), 0.1, seed=7)
    assert got == pytest.approx(expected, rel=1e-10)
    assert expected > 0
    assert circuit_complexity(model, torch.from_numpy(x), 0.0) == pytest.approx(0.0, abs=1e-12)


def test_model_mode_is_restored_and_inputs_follow_dtype() -> None:
    model = _model().train()
    x = torch.rand(5, 6)  # float32 input, float64 model
    values = baseline_metrics(model, x)
    assert model.training
    assert set(values) == {"l2_norm", "weight_entropy", "activation_sparsity", "circuit_complexity"}


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: activation_sparsity(m, torch.rand(3, 6), tau=0.0), "tau must be positive"),
        (lambda m: zeroed_weights(m, 1.5), "fraction must be in"),
        (lambda m: circuit_complexity(m, torch.rand(0, 6)), "non-empty tensor"),
        (lambda m: activation_sparsity(nn.Linear(6, 2), torch.rand(3, 6)), "activation modules"),
    ],
)
def test_bad_input_raises_value_error(call: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(_model())  # type: ignore[operator]


def test_monitor_stores_probe_measures_as_scalars(tmp_path: Path) -> None:
    model = _model()
    x = torch.rand(8, 6, dtype=torch.float64)
    with RunStore(tmp_path / "runs.db") as store:
        with Monitor(model, every=2, run="p", store=store, background=False, probe=x) as mon:
            mon.step(0, loss=1.0)
            mon.step(1, loss=0.5)
        scalars = store.scalar_history("p").set_index("step")
    assert scalars.loc[0, "probe_l2_norm"] == pytest.approx(l2_norm(model))
    assert scalars.loc[0, "probe_circuit_complexity"] == pytest.approx(circuit_complexity(model, x))
    assert np.isnan(scalars.loc[1, "probe_l2_norm"])
    with pytest.raises(ValueError, match="probe must be a tensor"):
        Monitor(model, store=tmp_path / "x.db", probe=[1.0])  # type: ignore[arg-type]
