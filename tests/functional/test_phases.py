"""Phase labels on synthetic trajectories: each phase, rules on training time (the same
verdict at any cadence), the cannot-judge state, hysteresis, α jumps, causality."""

from __future__ import annotations

import numpy as np
import pytest

from layerscope.functional._time_windows import comparison_index, window_median, window_starts
from layerscope.functional.phases import (
    CONVERGED,
    LEARNING,
    OVERFIT,
    UNDER,
    UNJUDGED,
    LayerTrajectory,
    PhaseRules,
    collapse_signature,
    debounce,
    layer_phases,
    model_label,
    model_log_norm,
    model_phases,
    readiness,
)

RULES = PhaseRules()
STEPS = np.arange(0, 200_001, 1_000)
ONSET = 30_000  # where the synthetic trap starts to grow


def trap_at(steps: np.ndarray) -> np.ndarray:
    """A trap that is small, then grows ×e every 8,000 steps from ONSET, capped at 8."""
    s = np.asarray(steps, dtype=float)
    return np.minimum(8.0, 0.2 * np.exp(np.maximum(s - ONSET, 0) / 8_000))


def growing_norm(steps: np.ndarray) -> np.ndarray:
    """log10 Σ‖W‖² of a run without weight decay: grows throughout."""
    return 3.9 + 0.4 * np.log10(1 + np.asarray(steps, dtype=float) / 5_000)


def decaying_norm(steps: np.ndarray) -> np.ndarray:
    """With weight decay from a large init: falls, with a bump that never nears its start."""
    s = np.asarray(steps, dtype=float)
    return 3.9 - 0.5 * np.log10(1 + s / 2_000) + 0.05 * np.exp(-(((s - 40_000) / 10_000) ** 2))


def phases_at(steps: np.ndarray, alpha: object = 3.0, norm=growing_norm, trap=trap_at):  # type: ignore[no-untyped-def]
    s = np.asarray(steps, dtype=np.int64)
    a = np.broadcast_to(np.asarray(alpha, dtype=float), s.shape).copy()
    return layer_phases(LayerTrajectory.from_arrays(s, a, trap(s)), RULES, norm(s))


def log_spaced(n: int, last: int = 200_000) -> np.ndarray:
    return np.unique(np.concatenate([[0], np.geomspace(100, last, n).astype(np.int64)]))


CADENCES = {
    "every 1k": STEPS,
    "every 3k": STEPS[::3],
    "every 10k (20 checkpoints)": np.arange(0, 200_001, 10_000),
    "log 15": log_spaced(15),
    "log 30": log_spaced(30),
    "log 60": log_spaced(60),
    "linear from 500": np.arange(500, 200_001, 5_000),
}


@pytest.mark.parametrize("cadence", list(CADENCES))
def test_the_same_run_warns_at_every_cadence_in_the_same_stretch_of_training(
    cadence: str,
) -> None:
    track = phases_at(CADENCES[cadence])
    assert OVERFIT in track.phase, cadence
    first = track.phase.index(OVERFIT)
    raised, since = track.confirmed[first], track.since[first]
    # the trap crosses 1.0 at ≈ ONSET + 8000·ln 5 ≈ 43k; every cadence warns between
    # there and ×3 later (log 15 has a scan only every ×1.7 of training time, and a label
    # is reported once two scans show it)
    assert 40_000 <= since <= raised <= 130_000, (cadence, since, raised)


@pytest.mark.parametrize("cadence", list(CADENCES))
def test_the_weight_decay_control_never_warns_at_any_cadence(cadence: str) -> None:
    track = phases_at(CADENCES[cadence], norm=decaying_norm)
    assert OVERFIT not in track.raw, cadence


def test_steady_alpha_in_band_converges_and_random_like_is_under_trained() -> None:
    steady = phases_at(STEPS, 3.0, trap=lambda s: np.zeros(len(s)))
    assert steady.phase[-1] == CONVERGED
    random_like = phases_at(STEPS, 8.0, trap=lambda s: np.zeros(len(s)))
    assert set(random_like.phase) == {UNDER}


def test_moving_alpha_is_learning_then_converged() -> None:
    alpha = np.concatenate([np.linspace(7.0, 3.0, 60), np.full(141, 3.0)])
    track = phases_at(STEPS, alpha, trap=lambda s: np.zeros(len(s)))
    assert track.phase[0] == UNDER
    assert LEARNING in track.phase[30:60]
    assert track.phase[-1] == CONVERGED


@pytest.mark.parametrize(
    ("trap", "norm", "why"),
    [
        (lambda s: np.full(len(s), 3.0), growing_norm, "large but steady trap"),
        (trap_at, lambda s: 4.0 - 0.1 * np.log10(1 + s / 1000), "norm shrinking"),
        (lambda s: 0.5 * trap_at(s) / 8, growing_norm, "small trap"),
        (trap_at, decaying_norm, "weight decay: norm below its initial high"),
    ],
)
def test_no_collapse_signature(trap, norm, why: str) -> None:  # type: ignore[no-untyped-def]
    assert OVERFIT not in phases_at(STEPS, trap=trap, norm=norm).raw, why


def test_warning_lasts_while_the_trap_stays_large_and_the_weights_keep_growing() -> None:
    flat_after = 120_000
    steps = np.arange(0, 300_001, 1_000)

    def norm(s: np.ndarray) -> np.ndarray:
        return growing_norm(np.minimum(s, flat_after))

    track = phases_at(steps, norm=norm)
    start = track.raw.index(OVERFIT)
    stop = start + next(i for i, x in enumerate(track.raw[start:]) if x != OVERFIT)
    assert steps[stop] > flat_after  # held on after the trap stopped growing (capped at 8)
    # let go once the norm no longer rose since the comparison scan (at half the step)
    assert steps[stop] <= 2 * flat_after * RULES.smooth
    assert OVERFIT not in track.raw[stop:]


def test_alpha_below_two_alone_is_not_a_collapse_warning() -> None:
    track = phases_at(STEPS, 1.2, trap=lambda s: np.full(len(s), 5.0))
    assert OVERFIT not in track.raw and track.phase[-1] == LEARNING


def test_short_or_sparse_history_cannot_judge_and_says_why() -> None:
    short = phases_at(np.array([1_000, 1_500, 1_900]))
    assert set(short.raw) == {UNJUDGED}
    assert "3 scan(s) over steps 1,000–1,900" in short.reason[-1]
    assert "none is that early" in short.reason[-1]
    sparse = phases_at(np.array([0, 10, 2_000]))
    assert sparse.raw[-1] == UNJUDGED and "too sparse" in sparse.reason[-1]
    assert "between steps 250 and 1,000" in sparse.reason[-1]
    no_traps = phases_at(STEPS[:50], trap=lambda s: np.full(len(s), np.nan))
    assert no_traps.raw[-1] == UNJUDGED and "metrics='all'" in no_traps.reason[-1]
    no_norm = readiness(STEPS[:5], np.ones(5), np.full(5, np.nan), RULES)
    assert "log_norm" in str(no_norm[-1])
    # under-trained needs no comparison: it is reported even when a collapse cannot be judged
    assert phases_at(np.array([1_000, 1_500]), 9.0).raw == (UNDER, UNDER)


def test_a_jumping_tail_fit_is_flagged_and_does_not_flip_the_label() -> None:
    alpha = np.full(STEPS.size, 4.0)
    alpha[100] = 18.0  # one fit jumps (seen: 3-5 -> 14-22 -> 3-5 on a 200x64 layer)
    track = phases_at(STEPS, alpha, trap=lambda s: np.zeros(len(s)))
    # the jump is flagged; the way back is not (the smoothed alpha never left 4)
    assert track.jump[100] and sum(track.jump) == 1
    assert UNDER not in track.raw


def test_debounce_needs_two_scans_spanning_the_persist_factor_and_never_flaps() -> None:
    steps = list(range(0, 100_000, 10_000))
    assert debounce(["a", "b"] * 5, steps, 1.1)[0] == ["a"] * 10
    raw = ["a", "b", "b", "b", "a", "a", "b", "b", "b", "b"]
    phase, since, confirmed = debounce(raw, [0, 1, 2, 10, 11, 12, 13, 14, 15, 16], 1.1)
    assert phase[:6] == ["a", "a", "b", "b", "b", "b"]  # 2 >= 1.1 * 1: two scans suffice
    assert phase[6:8] == ["b", "b"] and since[2] == 1 and confirmed[2] == 2
    dense = list(range(100, 116))  # b from 101: reported at the first step >= 111.1
    phase, since, confirmed = debounce(["a"] + ["b"] * 15, dense, 1.1)
    assert phase.index("b") == 12 and since[12] == 101 and confirmed[12] == 112
    with pytest.raises(ValueError, match="persist"):
        debounce(raw, steps, 0.5)


def test_labels_are_causal_so_a_replay_equals_the_live_detector() -> None:
    rng = np.random.default_rng(0)
    alpha = 4 + rng.normal(0, 1.5, STEPS.size)
    full = phases_at(STEPS, alpha)
    assert OVERFIT in full.raw
    for end in (5, 40, 77, 150):
        part = phases_at(STEPS[:end], alpha[:end])
        assert part.phase == full.phase[:end] and part.since == full.since[:end]


def test_time_windows_equal_naive_loops() -> None:
    rng = np.random.default_rng(1)
    steps = np.unique(rng.integers(0, 100_000, 80))
    values = rng.normal(size=steps.size)
    values[[0, 7, 8, 20]] = np.nan
    starts = window_starts(steps, 1.5, 3)
    comp = comparison_index(steps, 2.0)
    for t, s in enumerate(steps):
        in_time = [i for i in range(t + 1) if steps[i] >= s / 1.5]
        assert starts[t] == max(0, min(in_time[0], t - 2))
        chunk = values[starts[t] : t + 1]
        chunk = chunk[np.isfinite(chunk)]
        got = window_median(values, starts)[t]
        assert (np.isnan(got) and chunk.size == 0) or got == np.median(chunk)
        earlier = [i for i in range(t) if steps[i] <= s / 2.0]
        assert comp[t] == (earlier[-1] if earlier and s > 0 else -1)


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
    assert model_label([UNJUDGED, CONVERGED, CONVERGED]) == UNJUDGED
    assert model_label([CONVERGED, CONVERGED]) == CONVERGED
    assert model_label([UNDER, LEARNING, CONVERGED]) == LEARNING
    with pytest.raises(ValueError, match="at least one"):
        model_label([])


def test_model_phases_apply_hysteresis_to_the_model_sequence() -> None:
    steps = [10, 11, 12, 13, 14, 15]
    layers = [
        [CONVERGED] * 6,
        [CONVERGED, OVERFIT, CONVERGED, OVERFIT, OVERFIT, OVERFIT],
    ]
    track = model_phases(steps, layers, PhaseRules(persist=1.15))
    assert track.raw[1] == OVERFIT and track.phase[:5] == (CONVERGED,) * 5
    assert track.phase[5] == OVERFIT and track.since[5] == 13 and track.confirmed[5] == 15
    assert track.reason[1] == f"layers 1: {OVERFIT}"
    with pytest.raises(ValueError, match="one raw label per step"):
        model_phases(steps, [[CONVERGED]], RULES)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"persist": 0.5}, "persist must be >= 1"),
        ({"alpha_scans": 2.5}, "alpha_scans must be a positive integer"),
        ({"alpha_over": 7.0}, "alpha_over < alpha_under"),
        ({"trap_growth": 0.5}, "trap_growth must be >= 1"),
        ({"settle": -1.0}, "settle must be >= 0"),
        ({"growth": 1.0}, "growth must be > 1"),
    ],
)
def test_rules_are_validated(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PhaseRules(**kwargs)  # type: ignore[arg-type]


def test_trajectory_and_signature_inputs_are_validated() -> None:
    with pytest.raises(ValueError, match="alpha must have one value per step"):
        LayerTrajectory.from_arrays([0, 1, 2], [1.0, 2.0])
    with pytest.raises(ValueError, match="strictly increasing"):
        LayerTrajectory.from_arrays([0, 2, 1], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="model_norm must have one value per step"):
        layer_phases(LayerTrajectory.from_arrays([0, 1], [3.0, 3.0]), RULES, np.zeros(3))
    none = collapse_signature(STEPS, np.full(STEPS.size, np.nan), growing_norm(STEPS), RULES)
    assert set(none) == {None}


def test_a_model_label_no_layer_has_is_explained_by_the_mix() -> None:
    track = model_phases([0, 10], [[CONVERGED, CONVERGED], [UNDER, UNDER], [CONVERGED, LEARNING]])
    assert track.raw == (LEARNING, LEARNING)
    assert track.reason[0] == f"mixed: 2 {CONVERGED}, 1 {UNDER}"
    assert track.reason[1] == f"layers 2: {LEARNING}"
