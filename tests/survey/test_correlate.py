"""correlate(): per family and pooled, against scipy.stats on the same rows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from layerscope.survey.correlate import POOLED, correlate, join_scores


def _models() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 24
    acc = rng.uniform(0.5, 1.0, n)
    family = np.array(["cnn", "mlp"] * (n // 2))
    return pd.DataFrame(
        {
            "key": [f"k{i}" for i in range(n)],
            "model": [f"m{i}" for i in range(n)],
            "family": family,
            "path": [f"/z/m{i}.pt" for i in range(n)],
            "status": ["ok"] * (n - 2) + ["error", "ok"],
            "error": [""] * (n - 2) + ["SourceError: bad", ""],
            "alpha_mean": 6 - 3 * acc + 0.1 * rng.standard_normal(n),  # lower is better
            "log_norm_mean": rng.standard_normal(n),  # unrelated
            "num_params": np.full(n, 1000.0),  # constant: undefined
            "score_acc": np.r_[acc[:-1], np.nan],
        }
    )


def test_statistics_match_scipy_per_family_and_pooled() -> None:
    models = _models()
    result = correlate(models, resamples=100)
    table = result.table
    assert table["family"].iloc[0] == POOLED
    assert set(table["family"]) == {POOLED, "cnn", "mlp"}
    for _, row in table.iterrows():
        sub = models[models["status"] == "ok"]
        if row["family"] != POOLED:
            sub = sub[sub["family"] == row["family"]]
        sub = sub[np.isfinite(sub["score_acc"])]
        x, y = sub[row["metric"]].to_numpy(), sub["score_acc"].to_numpy()
        assert row["n"] == len(sub)
        if row["metric"] == "num_params":
            assert np.isnan(row["kendall"]) and np.isnan(row["kendall_low"])
            continue
        assert row["kendall"] == pytest.approx(stats.kendalltau(x, y).statistic)
        assert row["spearman"] == pytest.approx(stats.spearmanr(x, y).statistic)
        assert row["r2"] == pytest.approx(stats.linregress(x, y).rvalue ** 2)
        assert row["kendall_low"] <= row["kendall"] <= row["kendall_high"]


def test_best_predictor_first_and_fallouts_listed() -> None:
    result = correlate(_models(), resamples=50)
    for _, group in result.table.groupby(["family", "score"]):
        assert group["metric"].iloc[0] == "alpha_mean"
        assert group["kendall"].iloc[0] < -0.5
        assert group["metric"].iloc[-1] == "num_params"  # undefined last
    reasons = dict(zip(result.excluded["model"], result.excluded["reason"], strict=True))
    assert reasons == {"m22": "scan failed: SourceError: bad", "m23": "no score: acc"}


def test_join_scores_by_relative_path_and_by_model(tmp_path: Path) -> None:
    models = _models().drop(columns="score_acc")
    models["path"] = [str(tmp_path / f"m{i}.pt") for i in range(len(models))]
    by_path = pd.DataFrame({"path": ["m0.pt", "m1.pt"], "acc": [0.1, 0.2], "note": ["a", "b"]})
    joined = join_scores(models, by_path, tmp_path)
    assert joined["score_acc"].iloc[:2].tolist() == [0.1, 0.2]
    assert joined["score_acc"].iloc[2:].isna().all() and "score_note" not in joined
    by_model = pd.DataFrame({"model": ["m3"], "loss": [1.5]})
    assert join_scores(models, by_model)["score_loss"].iloc[3] == 1.5


def test_bad_requests_raise_value_errors() -> None:
    with pytest.raises(ValueError, match="no scores"):
        correlate(_models().drop(columns="score_acc"))
    with pytest.raises(ValueError, match="unknown metric"):
        correlate(_models(), metrics=["nope"])
    with pytest.raises(ValueError, match="'path' or 'model'"):
        join_scores(_models(), pd.DataFrame({"x": [1]}))
