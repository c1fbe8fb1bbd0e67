"""Phase labels on synthetic trajectories: each phase, hysteresis, no flapping, causality."""

from __future__ import annotations

import numpy as np
import pytest

from layerscope.functional.phases import (
    CONVERGED,
    LEARNING,
    OVERFIT,
    UNDER,
    LayerTrajectory,
    PhaseRules,
    collapse_signature,
    debounce,
    layer_phases,
    model_label,
    model_log_norm,
    model_phases,
    rolling_median,
)

RULES = PhaseRules(window=3, growth_window=4, persist=3, trap_scale=1.0, trap_growth=1.5)
STEPS = np.arange(0, 30_000, 1_000)


def _full(x: object) -> np.ndarray:
    return np.broadcast_to(np.asarray(x, dtype=float), (STEPS.size,)).copy()


def _traj(alpha: object, trap: object = None) -> LayerTrajectory:
    return LayerTrajectory.from_arrays(STEPS, _full(alpha), None if trap is None else _full(trap))


def test_constant_random_like_layer_is_under_trained() -> None:
    track = layer_phases(_traj(8.0), RULES)
    assert set(track.phase) == {UNDER}
    assert track.changes() == [(0, 0, UNDER)]


def test_steady_alpha_in_band_converges_after_the_window_and_persistence() -> None:
    track = layer_phases(_traj(3.0), RULES)
    # raw: learning until a previous window exists (t >= 3), then converged
    assert track.raw[:3] == (LEARNING,) * 3 and set(track.raw[3:]) == {CONVERGED}
    assert track.changes() == [(0, 0, LEARNING), (5_000, 3_000, CONVERGED)]


def test_moving_alpha_is_learning_then_converged() -> None:
    alpha = np.concatenate([np.linspace(7.0, 3.0, 15), np.full(15, 3.0)])
    track = layer_phases(_traj(alpha), RULES)
    assert track.phase[0] == UNDER
    assert LEARNING in track.phase[5:15]
    assert track.phase[-1] == CONVERGED


def test_growing_trap_with_growing_norm_is_over_fitting() -> None:
    trap = np.concatenate([np.full(10, 0.1), 0.1 * 1.5 ** np.arange(1, 21)])
    norm = np.linspace(2.0, 3.0, STEPS.size)
    track = layer_phases(_traj(3.0, trap), RULES, norm)
    first_raw = track.raw.index(OVERFIT)
    assert trap[first_raw - 1] >= 1.0  # the window median crossed the threshold
    confirmed = track.phase.index(OVERFIT)
    assert confirmed == first_raw + RULES.persist - 1
    assert track.since[confirmed] == STEPS[first_raw]
    assert "trap scale" in track.reason[first_raw]


def test_warning_lasts_while_the_trap_stays_large_and_the_weights_keep_growing() -> None:
    trap = np.concatenate([np.full(8, 0.1), 0.1 * 1.6 ** np.arange(1, 8), np.full(15, 3.0)])
    norm = np.concatenate([np.linspace(2.0, 3.0, 24), np.full(6, 3.0)])  # growth stops
    track = layer_phases(_traj(3.0, trap), RULES, norm)
    start = track.raw.index(OVERFIT)
    stop = start + track.raw[start:].index(CONVERGED)
    assert set(track.raw[start:stop]) == {OVERFIT}
    assert trap[stop - 1] == 3.0  # held on after the trap stopped growing
    assert stop >= 24  # and let go only once the weights stopped growing
    assert OVERFIT not in track.raw[stop:]


@pytest.mark.parametrize(
    ("trap", "norm", "why"),
    [
        (np.full(30, 3.0), np.linspace(2.0, 3.0, 30), "large but steady trap"),
        (0.1 * 1.5 ** np.arange(30), np.linspace(3.0, 2.0, 30), "norm shrinking (weight decay)"),
        (np.linspace(0.0, 0.5, 30), np.linspace(2.0, 3.0, 30), "small trap"),
        (
            0.1 * 1.5 ** np.arange(30),
            np.concatenate([np.linspace(4.0, 2.0, 15), np.linspace(2.0, 3.0, 15)]),
            "norm growing but below its earlier high (weight decay from a large init)",
        ),
    ],
)
def test_no_collapse_signature(trap: np.ndarray, norm: np.ndarray, why: str) -> None:
    track = layer_phases(_traj(3.0, trap), RULES, norm)
    assert OVERFIT not in track.raw, why


def test_alpha_below_two_alone_is_not_a_collapse_warning() -> None:
    track = layer_phases(_traj(1.2, np.full(30, 5.0)), RULES, np.linspace(2, 3, 30))
    assert OVERFIT not in track.raw and set(track.phase) == {LEARNING}


def test_missing_trap_metric_never_warns() -> None:
    track = layer_phases(_traj(1.5), RULES, np.linspace(2, 3, 30))
    assert OVERFIT not in track.raw
    assert set(collapse_signature(np.full(30, np.nan), np.linspace(2, 3, 30), RULES)) == {None}
    trap = 0.1 * 1.5 ** np.arange(30)
    assert OVERFIT not in layer_phases(_traj(3.0, trap), RULES).raw  # model norm unknown
    with pytest.raises(ValueError, match="model_norm must have one value per step"):
        layer_phases(_traj(3.0, trap), RULES, np.zeros(3))


def test_debounce_needs_k_consecutive_labels_and_never_flaps() -> None:
    steps = list(range(0, 100, 10))
    flapping = ["a", "b"] * 5
    assert debounce(flapping, steps, 2)[0] == ["a"] * 10
    raw = ["a", "b", "b", "b", "a", "a", "b", "b", "b", "b"]
    phase, since = debounce(raw, steps, 3)
    assert phase == ["a", "a", "a", "b", "b", "b", "b", "b", "b", "b"]
    assert since[3] == 10 and since[-1] == 10
    assert debounce(raw, steps, 1)[0] == raw
    with pytest.raises(ValueError, match="persist"):
        debounce(raw, steps, 0)


def test_labels_are_causal_so_a_replay_equals_the_live_detector() -> None:
    rng = np.random.default_rng(0)
    alpha = 4 + rng.normal(0, 1.5, 30)
    trap = np.abs(rng.normal(1.0, 1.0, 30)) * np.linspace(0.2, 4, 30)
    norm = np.cumsum(rng.normal(0.01, 0.05, 30))
    full = layer_phases(_traj(alpha, trap), RULES, norm)
    assert OVERFIT in full.raw  # the check below covers the collapse rule too
    for end in (5, 12, 21, 30):
        part = LayerTrajectory.from_arrays(STEPS[:end], alpha[:end], trap[:end])
        assert layer_phases(part, RULES, norm[:end]).phase == full.phase[:end]


def test_model_log_norm_is_log10_of_summed_squared_norms() -> None:
    rng = np.random.default_rng(3)
    mats = [rng.normal(size=(20, 10)) * 50, rng.normal(size=(10, 5)) * 1e-3]
    log_norms = [[np.log10(np.sum(m**2)), np.log10(np.sum((2 * m) ** 2))] for m in mats]
    total = sum(np.sum(m**2) for m in mats)
    expected = [np.log10(total), np.log10(4 * total)]
    np.testing.assert_allclose(model_log_norm(log_norms), expected, rtol=1e-12)
    assert np.isnan(model_log_norm([[1.0, np.nan], [2.0, 3.0]])[1])
    with pytest.raises(ValueError, match="2-D array"):
        model_log_norm([1.0, 2.0])


def test_model_label_priorities() -> None:
    assert model_label([CONVERGED, OVERFIT, UNDER]) == OVERFIT
    assert model_label([UNDER, UNDER, CONVERGED]) == UNDER
    assert model_label([UNDER, CONVERGED]) == UNDER
    assert model_label([CONVERGED, CONVERGED]) == CONVERGED
    assert model_label([UNDER, LEARNING, CONVERGED]) == LEARNING
    with pytest.raises(ValueError, match="at least one"):
        model_label([])


def test_model_phases_apply_hysteresis_to_the_model_sequence() -> None:
    steps = [0, 1, 2, 3, 4, 5]
    layers = [
        [CONVERGED] * 6,
        [CONVERGED, OVERFIT, CONVERGED, OVERFIT, OVERFIT, OVERFIT],
    ]
    track = model_phases(steps, layers, PhaseRules(persist=3))
    assert track.raw[1] == OVERFIT and track.phase[:5] == (CONVERGED,) * 5
    assert track.phase[5] == OVERFIT and track.since[5] == 3
    assert track.reason[1] == f"layers 1: {OVERFIT}"
    with pytest.raises(ValueError, match="one raw label per step"):
        model_phases(steps, [[CONVERGED]], RULES)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"persist": 0}, "persist must be a positive integer"),
        ({"window": 2.5}, "window must be a positive integer"),
        ({"alpha_over": 7.0}, "alpha_over < alpha_under"),
        ({"trap_growth": 0.5}, "trap_growth must be >= 1"),
        ({"settle": -1.0}, "settle must be >= 0"),
    ],
)
def test_rules_are_validated(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PhaseRules(**kwargs)  # type: ignore[arg-type]


def test_trajectory_shapes_are_validated() -> None:
    with pytest.raises(ValueError, match="alpha must have one value per step"):
        LayerTrajectory.from_arrays([0, 1, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        LayerTrajectory.from_arrays([0, 2, 1], [1.0, 2.0, 3.0])


@pytest.mark.parametrize("window", [1, 3, 5])
def test_rolling_median_equals_a_naive_loop(window: int) -> None:
    rng = np.random.default_rng(window)
    values = rng.normal(size=40)
    values[[0, 7, 8, 9, 20]] = np.nan
    values[15] = np.inf
    expected = []
    for t in range(values.size):
        chunk = values[max(0, t - window + 1) : t + 1]
        chunk = chunk[np.isfinite(chunk)]
        expected.append(np.median(chunk) if chunk.size else np.nan)
    np.testing.assert_array_equal(rolling_median(values, window), expected)
