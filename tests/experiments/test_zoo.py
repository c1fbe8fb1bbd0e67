"""The zoo's recipes keep the two axes apart; a model trains, saves and is surveyed."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pandas as pd
import torch
from experiments.zoo import train as zoo

from layerscope.survey import survey


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
