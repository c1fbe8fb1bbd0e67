"""The zoo's recipes keep the two axes apart; a model trains, saves and is surveyed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from experiments.zoo import study
from experiments.zoo import train as zoo
from scipy.stats import kendalltau

from layerscope.survey import SurveyResult, survey


def test_recipes_cover_every_family_and_axis() -> None:
    recipes = zoo.recipes(4)
    assert len(recipes) == 4 * 2 * len(zoo.ARCHS)
    assert len({r.name for r in recipes}) == len(recipes)
    noise = [r for r in recipes if r.axis == "noise"]
    hparam = [r for r in recipes if r.axis == "hparam"]
    assert {r.noise for r in hparam} == {0.0}  # hyper-parameters vary on clean labels only
    assert len({(r.lr, r.width, r.epochs, r.batch) for r in noise}) == 1  # one recipe
    assert min(r.noise for r in noise) == 0.0 and max(r.noise for r in noise) == 0.6


def test_models_train_save_and_survey(tmp_path: Path) -> None:
    data = {"digits": zoo.digits()}
    data["cnn"] = data["digits"]  # the 1-D CNN takes any flat input; MNIST-1D costs seconds
    base = zoo.recipes(1)
    rows = []
    for arch in ("digits", "cnn"):
        recipe = replace(next(r for r in base if r.arch == arch), epochs=3, width=32)
        model, train_acc, test_acc = zoo.train(recipe, data[arch])
        assert 0.0 <= test_acc <= 1.0 and train_acc > 0.1  # better than chance after training
        path = zoo.save(model, tmp_path, recipe.name)
        pt = torch.load(path.with_suffix(".pt"), weights_only=True)
        assert set(pt) == set(model.state_dict())
        rows.append((path.name, f"{arch}-{recipe.axis}", test_acc))
    manifest = tmp_path / "manifest.csv"
    pd.DataFrame(rows, columns=["path", "family", "test_acc"]).to_csv(manifest, index=False)
    models = survey([str(manifest)], device="cpu").models
    assert (models["status"] == "ok").all() and models["score_test_acc"].notna().all()


def test_mnist5k_is_the_bundled_mnist_split_by_class() -> None:
    x, y, xt, yt = zoo.mnist5k()
    assert x.shape == (3500, 784) and xt.shape == (1500, 784)
    assert float(x.min()) == 0.0 and float(x.max()) == 1.0  # pixels / 255
    assert torch.bincount(y).tolist() == [350] * 10  # stratified: 500 images per class
    assert torch.bincount(yt).tolist() == [150] * 10


def _models(rng: np.random.Generator, n: int = 9) -> pd.DataFrame:
    frames = []
    for family in ("mlp-hparam", "cnn-hparam", "mlp-noise", "cnn-noise"):
        acc = rng.uniform(0.3, 0.9, n)
        frames.append(
            pd.DataFrame(
                {
                    "model": [f"{family}-{i:03d}" for i in range(n)],
                    "family": family,
                    "status": "ok",
                    "alpha_mean": -acc + rng.normal(0, 0.2, n),
                    "score_test_acc": acc,
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


def test_study_groups_by_family_and_by_axis_like_scipy() -> None:
    models = _models(np.random.default_rng(0))
    table = study.study(models, resamples=0).set_index(["family", "metric"])
    for group, rows in [
        ("mlp-noise", models["family"] == "mlp-noise"),
        ("axis:hparam", models["family"].str.endswith("hparam")),
        ("(all)", models["family"] != ""),
    ]:
        want = kendalltau(models.loc[rows, "alpha_mean"], models.loc[rows, "score_test_acc"])
        assert table.loc[(group, "alpha_mean"), "kendall"] == pytest.approx(want.statistic)
    assert "axis:(all)" not in table.index.get_level_values("family")


def test_study_noise_score_and_markdown() -> None:
    models = _models(np.random.default_rng(1))
    configs = pd.DataFrame(
        {
            "name": models["model"],
            "axis": models["family"].str.rsplit("-", n=1).str[-1],
            "noise": np.where(models["family"].str.endswith("noise"), 0.3, 0.0),
        }
    )
    noisy = study.with_noise(models, configs)
    assert noisy[study.NOISE_SCORE].isna().tolist() == (configs["axis"] == "hparam").tolist()
    table = study.study(models, resamples=50)
    text = study.markdown(table, "score_test_acc", ["alpha_mean"])
    lines = text.splitlines()
    assert lines[0] == "| group | n | alpha |" and len(lines) == 2 + 1 + 4 + 2
    row = table[(table["family"] == "(all)") & (table["metric"] == "alpha_mean")].iloc[0]
    assert f"| (all) | 36 | {row['kendall']:+.2f} [" in text


def test_same_tables_ignores_run_columns_only() -> None:
    models = _models(np.random.default_rng(2)).assign(scan_s=1.0, peak_rss_mb=100.0)
    layers = pd.DataFrame({"model": models["model"], "alpha": models["alpha_mean"]})
    one = SurveyResult(models, layers)
    slower = SurveyResult(models.assign(scan_s=2.0, peak_rss_mb=300.0), layers.copy())
    assert study.same_tables(one, slower).startswith("equal tables: 36 models, 36 layer")
    shifted = layers.assign(alpha=layers["alpha"] + 1e-3)
    with pytest.raises(AssertionError):
        study.same_tables(one, SurveyResult(models, shifted))
