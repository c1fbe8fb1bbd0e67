"""The grokking experiment: stacked training equals separate runs; short config end to end."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from experiments.grokking import analyze, cadence
from experiments.grokking import train as grok
from experiments.grokking.data import digits, stratified
from experiments.grokking.model import StackedMLP, linears, reference_mlp

from layerscope.cli import main
from layerscope.functional.phases import OVERFIT
from layerscope.track import RunStore
from layerscope.track.phases import phases_from_history, run_phases

SIZES = [64, 200, 200, 10]


def test_stratified_split_is_balanced_and_seeded() -> None:
    y = np.repeat(np.arange(10), 30)
    idx = stratified(y, 7, seed=3)
    assert np.bincount(y[idx]).tolist() == [7] * 10
    assert np.array_equal(idx, stratified(y, 7, seed=3))
    with pytest.raises(ValueError, match="fewer than"):
        stratified(y, 31, seed=0)
    split = digits()
    assert split.x_train.shape == (1000, 64) and split.x_test.shape == (797, 64)


def test_init_scales_weights_and_biases_by_eight() -> None:
    torch.manual_seed(5)
    plain = torch.nn.Linear(64, 200, dtype=torch.float64)
    scaled = linears(reference_mlp(SIZES, seed=5))[0]
    torch.testing.assert_close(scaled.weight, 8 * plain.weight)
    torch.testing.assert_close(scaled.bias, 8 * plain.bias)


def test_stacked_training_equals_separate_adamw_runs() -> None:
    runs = [(0, 0.0), (1, 0.01), (0, 0.01)]
    lr = 5e-3
    separate = [reference_mlp(SIZES, s) for s, _ in runs]
    stack = StackedMLP([reference_mlp(SIZES, s) for s, _ in runs])
    opts = [
        torch.optim.AdamW(m.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=wd)
        for m, (_, wd) in zip(separate, runs, strict=True)
    ]
    opt = torch.optim.AdamW(stack.parameters(), lr=lr, betas=(0.9, 0.999), weight_decay=0.0)
    wd = torch.tensor([w for _, w in runs], dtype=torch.float64)
    gen = torch.Generator().manual_seed(0)
    for _ in range(4):
        x = torch.rand(len(runs), 20, 64, generator=gen, dtype=torch.float64)
        y = torch.rand(len(runs), 20, 10, generator=gen, dtype=torch.float64)
        for k, (m, o) in enumerate(zip(separate, opts, strict=True)):
            o.zero_grad()
            torch.nn.functional.mse_loss(m(x[k]), y[k]).backward()
            o.step()
        opt.zero_grad()
        ((stack(x) - y) ** 2).mean(dim=(1, 2)).sum().backward()
        stack.decay_(lr, wd)
        opt.step()
    for k, m in enumerate(separate):
        for view_lin, lin in zip(linears(stack.view(k)), linears(m), strict=True):
            torch.testing.assert_close(view_lin.weight, lin.weight, rtol=1e-12, atol=1e-12)
            torch.testing.assert_close(view_lin.bias, lin.bias, rtol=1e-12, atol=1e-12)
    x = torch.rand(7, 64, dtype=torch.float64)
    torch.testing.assert_close(stack.view(2)(x), separate[2](x), rtol=1e-12, atol=1e-12)


def _short(tmp_path: Path, steps: int) -> Path:
    cfg = replace(grok.CONFIGS["short"], steps=steps)
    return grok.train(cfg, digits(), tmp_path)


def test_short_config_end_to_end_and_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    db = _short(tmp_path, 200)
    state = torch.load(tmp_path / "state.pt", weights_only=False)
    assert state["step"] == 200
    db = _short(tmp_path, 300)  # resumes from step 200
    _short(tmp_path / "straight", 300)
    resumed = torch.load(tmp_path / "state.pt", weights_only=False)["model"]
    straight = torch.load(tmp_path / "straight" / "state.pt", weights_only=False)["model"]
    for name, value in straight.items():
        torch.testing.assert_close(resumed[name], value, rtol=0, atol=0)
    with RunStore(db) as store:
        runs = store.runs()
        assert sorted(runs["name"]) == ["digits-wd0-seed0", "digits-wd0.01-seed0"]
        scalars = store.scalar_history("digits-wd0-seed0")
        assert scalars["step"].tolist() == list(range(0, 301, 25))
        assert scalars["test_acc"].iloc[-1] > scalars["test_acc"].iloc[0]
        probes = scalars.dropna(subset=["probe_l2_norm"])
        assert probes["step"].tolist() == [0, 100, 200, 300]
        history = store.layer_history("digits-wd0-seed0", ["alpha", "num_traps", "trap_scale"])
        assert history["step"].unique().tolist() == [0, 100, 200, 300]
        assert history["num_traps"].notna().all()
        phases = run_phases(store, "digits-wd0-seed0")
        assert phases.model["step"].tolist() == [0, 100, 200, 300]
        assert set(phases.layers["name"]) == {"0.weight", "2.weight", "4.weight"}
    assert main(["status", "digits-wd0-seed0", "--store", str(db)]) == 0
    assert "Phases" in capsys.readouterr().out


DOCS = Path(__file__).resolve().parents[2] / "docs" / "grokking"


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("wd", ["0", "0.01"])
def test_detector_on_the_documented_trajectories(wd: str, seed: int) -> None:
    """Replays the detector on the saved long runs: warns without weight decay only."""
    frame = pd.read_csv(DOCS / f"digits-wd{wd}-seed{seed}.csv")
    result = phases_from_history(analyze.history_from_csv(frame), f"wd{wd}")
    fired = result.model.loc[result.model["phase"] == OVERFIT, "step"]
    frame["model_phase"] = result.model["phase"].to_numpy()
    found = analyze.events(frame, frame, drop=0.10)
    if wd == "0":
        assert found["detector_step"] == fired.iloc[0]
        assert found["collapse_step"] is None or fired.iloc[0] < found["collapse_step"]
    else:
        assert fired.empty and found["detector_step"] is None


def test_detector_holds_at_every_cadence_on_the_documented_runs() -> None:
    """The cadence table of docs/grokking.md: every WD = 0 run warns at every cadence,
    before its 5-point fall (on time, or at most 4,000 steps before the window opens);
    no control ever warns."""
    table = cadence.evaluate(sorted(DOCS.glob("*.csv")))
    assert len(table) == 6 * len(cadence.CADENCES)
    wd0 = table[table["run"].str.contains("wd0-")]
    assert set(wd0["verdict"]) <= {"on time", "early"}
    starts = wd0["window"].str.split("–").str[0].astype(int)
    assert (wd0["alert_raised"] >= starts - 4000).all()
    controls = table[table["run"].str.contains("wd0.01")]
    assert set(controls["verdict"]) == {"quiet"}


def test_cadence_pickers_take_subsets_of_the_scans() -> None:
    steps = np.arange(0, 300_001, 1000)
    for name, pick in cadence.CADENCES.items():
        chosen = pick(steps)
        assert set(chosen) <= set(steps) and len(chosen) >= 10, name
    assert len(cadence.CADENCES["linear 20"](steps)) == 20
    assert cadence.CADENCES["log 15"](steps)[0] == 0
