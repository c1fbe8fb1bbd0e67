"""survey(): one row per model from layerscope.scan, error rows, resume, interrupt, files."""

from __future__ import annotations

import os
import resource
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import layerscope
from layerscope.survey import SurveyEvent, collect, expand_sources, survey
from layerscope.survey.engines import DIED
from layerscope.survey.tables import RUN_COLUMNS, SurveyResult, layers_path

OPTS = {"device": "cpu"}


def _sources(zoo: dict[str, Path]) -> list[str]:
    return [str(p) for p in zoo.values()]


def test_rows_are_the_scans_summaries(zoo: dict[str, Path]) -> None:
    result = survey(_sources(zoo), **OPTS)
    assert list(result.models["model"]) == [p.name for p in zoo.values()]
    assert (result.models["status"] == "ok").all()
    own_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # in-process: ours
    assert result.models["peak_rss_mb"].between(50, own_peak).all()  # torch alone is > 50 MiB
    for path in zoo.values():
        row = result.models.set_index("model").loc[path.name]
        ref = layerscope.scan(path, **OPTS).layers
        ok = ref[ref["status"] == "ok"]
        for metric in ("alpha", "log_norm", "alpha_weighted", "stable_rank"):
            assert row[f"{metric}_mean"] == pytest.approx(ok[metric].mean(), rel=1e-9, nan_ok=True)
            assert row[f"{metric}_median"] == pytest.approx(
                ok[metric].median(), rel=1e-9, nan_ok=True
            )
            assert row[f"{metric}_std"] == pytest.approx(ok[metric].std(), rel=1e-9, nan_ok=True)
        assert row["num_layers"] == len(ref)
        verdicts = ok["verdict"].value_counts()
        assert row["count_under_trained"] == verdicts.get("under-trained", 0)
        if path.suffix == ".pt":
            state = torch.load(path, weights_only=True)
            assert row["num_params"] == sum(t.numel() for t in state.values())
        mine = result.layers[result.layers["model"] == path.name].reset_index(drop=True)
        np.testing.assert_allclose(mine["alpha"], ref["alpha"], rtol=1e-12)
        assert list(mine["name"]) == list(ref["name"])


def test_bad_models_become_error_rows_and_the_survey_goes_on(
    zoo: dict[str, Path], tmp_path: Path
) -> None:
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    empty = tmp_path / "empty.safetensors"
    empty.write_bytes(b"")
    sources = [str(junk), str(zoo["mlp0"]), str(tmp_path / "gone.pt"), str(empty)]
    models = survey(sources, **OPTS).models.set_index("model")
    assert models.loc["mlp0.pt", "status"] == "ok"
    for name in ("junk.pt", "gone.pt", "empty.safetensors"):
        assert models.loc[name, "status"] == "error"
        reason = models.loc[name, "error"]
        assert name in reason and "\n" not in reason and reason.startswith("SourceError")


def test_rerun_resumes_and_rescans_changed_files_and_options(
    zoo: dict[str, Path], tmp_path: Path
) -> None:
    store = tmp_path / "s.db"
    copy = tmp_path / "copy.pt"
    copy.write_bytes(zoo["mlp0"].read_bytes())
    sources = [str(zoo["mlp1"]), str(copy)]
    first = survey(sources, store=store, **OPTS)
    events: list[SurveyEvent] = []
    again = survey(sources, store=store, progress=events.append, **OPTS)
    assert events[0].resumed == 2 and len(events) == 1  # nothing rescanned
    pd.testing.assert_frame_equal(first.models, again.models)
    os.utime(copy, ns=(1, 1))  # a rewritten checkpoint: new identity
    events.clear()
    survey(sources, store=store, progress=events.append, **OPTS)
    assert events[0].resumed == 1 and [e.model for e in events[1:]] == ["copy.pt"]
    events.clear()
    survey(sources, store=store, progress=events.append, metrics="all", **OPTS)
    assert events[0].resumed == 0


def test_errors_are_kept_unless_retried(zoo: dict[str, Path], tmp_path: Path) -> None:
    store, missing = tmp_path / "s.db", tmp_path / "later.pt"
    assert survey([str(missing)], store=store, **OPTS).models["status"].tolist() == ["error"]
    missing.write_bytes(zoo["mlp0"].read_bytes())  # new identity: the key changes anyway
    assert survey([str(missing)], store=store, **OPTS).models["status"].tolist() == ["ok"]
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"x")
    survey([str(junk)], store=store, **OPTS)
    events: list[SurveyEvent] = []
    survey([str(junk)], store=store, progress=events.append, **OPTS)
    assert events[0].resumed == 1 and events[0].failed == 1
    events.clear()
    survey([str(junk)], store=store, progress=events.append, retry_errors=True, **OPTS)
    assert events[0].resumed == 0 and events[-1].status == "error"


def test_interrupt_keeps_every_finished_model(zoo: dict[str, Path], tmp_path: Path) -> None:
    store = tmp_path / "s.db"

    def stop_after_two(event: SurveyEvent) -> None:
        if event.done == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        survey(_sources(zoo), store=store, progress=stop_after_two, **OPTS)
    partial = collect(_sources(zoo), store, **OPTS)
    assert len(partial.models) == 2 and partial.meta["partial"]
    events: list[SurveyEvent] = []
    full = survey(_sources(zoo), store=store, progress=events.append, **OPTS)
    assert events[0].resumed == 2 and len(full.models) == len(zoo)


class _ExitOnLoad:
    """Unpickling it ends the process: a checkpoint that kills whoever loads it."""

    def __reduce__(self) -> tuple[object, tuple[int]]:
        return (os._exit, (3,))


def test_process_pool_gives_the_same_table_and_survives_a_dying_worker(
    zoo: dict[str, Path], tmp_path: Path
) -> None:
    crash = tmp_path / "crash.pt"
    torch.save({"w": _ExitOnLoad()}, crash)
    one = survey(_sources(zoo), allow_unsafe_pickle=True, **OPTS)
    two = survey([*_sources(zoo), str(crash)], workers=2, allow_unsafe_pickle=True, **OPTS)
    assert two.models["status"].tolist() == ["ok"] * len(zoo) + ["error"]
    assert two.models["error"].iloc[-1] == DIED  # only the model that killed its worker
    # Each worker runs one thread (workers x threads = cores) and this process all of them,
    # so LAPACK sums in another order: the spectra agree to ~1e-7 and the quantities fitted
    # to them to ~1e-5 relative (sigma_mp_std once differed by 3.3e-5), not to the last bit.
    pd.testing.assert_frame_equal(
        one.models.drop(columns=list(RUN_COLUMNS)),
        two.models.iloc[:-1].drop(columns=list(RUN_COLUMNS)),
        rtol=1e-3,
    )
    # Counts stay integers beside an error row (empty there, not NaN floats).
    for column in ("num_params", "num_layers", "count_ok"):
        assert pd.api.types.is_integer_dtype(two.models[column]), column
        assert two.models[column].isna().tolist() == [False] * len(zoo) + [True]
    pd.testing.assert_frame_equal(one.layers, two.layers, rtol=1e-3)  # threads, as above


def test_manifests_globs_and_scores(zoo: dict[str, Path], tmp_path: Path) -> None:
    root = zoo["mlp0"].parent
    manifest = tmp_path / "m.csv"
    rows = [("mlp0.pt", "mlp", 0.9), ("cnn.pt", "cnn", 0.7)]
    pd.DataFrame(rows, columns=["path", "family", "acc"]).assign(
        path=[str(root / r[0]) for r in rows]
    ).to_csv(manifest, index=False)
    jsonl = root / "m.jsonl"  # relative paths: read from the manifest's folder
    pd.DataFrame({"path": ["mlp1.pt"], "family": ["mlp"], "acc": [0.8]}).to_json(
        jsonl, orient="records", lines=True
    )
    jobs = expand_sources([str(manifest), str(jsonl), str(root / "mlp*.pt")])
    assert [Path(j.path).name for j in jobs] == ["mlp0.pt", "cnn.pt", "mlp1.pt", "mlp2.pt"]
    assert [j.family for j in jobs] == ["mlp", "cnn", "mlp", ""]
    models = survey([str(manifest), str(jsonl)], **OPTS).models
    assert models["score_acc"].tolist() == [0.9, 0.7, 0.8]
    assert models["family"].tolist() == ["mlp", "cnn", "mlp"]


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_write_and_read_back(zoo: dict[str, Path], tmp_path: Path, suffix: str) -> None:
    missing = str(tmp_path / "missing.pt")  # an error row
    result = survey([str(zoo["mlp0"]), str(zoo["cnn"]), missing], **OPTS)
    out = tmp_path / f"s{suffix}"
    assert result.write(out) == (out, layers_path(out))
    back = SurveyResult.read(out)
    columns = ["model", "status", "alpha_mean", "num_params", "num_layers", "count_ok"]
    pd.testing.assert_frame_equal(back.models[columns], result.models[columns])
    assert back.models["num_params"].dtype == "Int64"
    assert len(back.layers) == len(result.layers)
    if suffix == ".parquet":
        assert back.meta["kind"] == "survey"


def test_bad_input_is_a_one_line_value_error(tmp_path: Path) -> None:
    cases = [
        ({"sources": [str(tmp_path / "*.pt")]}, "matches no file"),
        ({"sources": ["x.pt"], "engine": "spark"}, "engine must be"),
        ({"sources": ["x.pt"], "workers": 0}, "workers must be"),
        ({"sources": ["x.pt"], "metrics": "nope"}, "unknown metric group"),
        ({"sources": ["x.pt"], "gpus": 1.0}, "ray engine only"),
    ]
    for kwargs, message in cases:
        with pytest.raises(ValueError, match=message):
            survey(**kwargs)
    bad = tmp_path / "m.csv"
    bad.write_text("file,acc\na.pt,1\n")
    with pytest.raises(ValueError, match="needs a 'path' column"):
        survey([str(bad)])
    notdb = tmp_path / "not.db"
    notdb.write_text("hello")
    with pytest.raises(ValueError, match="not a survey store"):
        survey(["x.pt"], store=notdb)


def test_missing_ray_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)
    with pytest.raises(ValueError, match=r"layerscope\[ray\]"):
        survey([str(tmp_path / "x.pt")], engine="ray")
