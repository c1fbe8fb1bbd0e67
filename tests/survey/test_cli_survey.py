"""``layerscope survey`` and ``layerscope correlate``: files, resume, Ctrl-C, errors."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from rich.console import Console

import layerscope.survey as survey_pkg
from layerscope.cli import main
from layerscope.cli.survey import _SurveyBar
from layerscope.survey import SurveyEvent


@pytest.fixture
def manifest(zoo: dict[str, Path], tmp_path: Path) -> Path:
    rows = [
        (str(p), "cnn" if k == "cnn" else "mlp", 0.5 + 0.1 * i)
        for i, (k, p) in enumerate(zoo.items())
    ]
    path = tmp_path / "zoo.csv"
    pd.DataFrame(rows, columns=["path", "family", "acc"]).to_csv(path, index=False)
    return path


def test_survey_then_correlate(
    manifest: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "out" / "survey.parquet"
    args = ["survey", str(manifest), "--out", str(out), "--workers", "1", "--device", "cpu"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "surveyed 5 models" in text and "5 ok" in text and "(0 from the store)" in text
    models = pd.read_parquet(out)
    assert len(models) == 5 and (tmp_path / "out" / "survey.layers.parquet").exists()
    assert (tmp_path / "out" / "survey.db").exists()
    assert main(args) == 0
    assert "(5 from the store)" in capsys.readouterr().out
    table = tmp_path / "corr.json"
    page = tmp_path / "corr.html"
    argv = ["correlate", str(out), "--bootstrap", "20", "-o", str(table), "--html", str(page)]
    assert main(argv) == 0
    assert page.read_text().count("<figure>") == 6  # the top metrics of each score
    shown = capsys.readouterr().out
    assert "(all) · score_acc" in shown and "Kendall" in shown
    data = json.loads(table.read_text())
    assert data["kind"] == "correlation" and data["table"][0]["family"] == "(all)"
    assert {r["family"] for r in data["table"]} == {"(all)", "cnn", "mlp"}


def test_correlate_with_a_scores_file(
    zoo: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "s.csv"
    assert (
        main(["survey", *(str(p) for p in zoo.values()), "-o", str(out), "-q", "--workers", "1"])
        == 0
    )
    scores = tmp_path / "scores.csv"
    names = [p.name for p in zoo.values()]
    pd.DataFrame({"path": names, "loss": range(len(names))}).to_csv(scores, index=False)
    (zoo["mlp0"].parent / "scores.csv").write_text(scores.read_text())
    csv = tmp_path / "c.csv"
    args = ["correlate", str(out), "--scores", str(zoo["mlp0"].parent / "scores.csv")]
    assert main([*args, "--bootstrap", "0", "--metric", "alpha_mean", "-o", str(csv), "-q"]) == 0
    table = pd.read_csv(csv)
    assert table["metric"].tolist() == ["alpha_mean"] and table["n"].tolist() == [5]
    assert capsys.readouterr().out == ""


def test_ctrl_c_writes_what_finished(
    manifest: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    real = survey_pkg.survey

    def interrupted(*args: Any, progress: Any = None, **kwargs: Any) -> Any:
        def stop(event: Any) -> None:
            if event.done == 2:
                raise KeyboardInterrupt

        return real(*args, progress=stop, **kwargs)

    monkeypatch.setattr(survey_pkg, "survey", interrupted)
    out = tmp_path / "s.parquet"
    assert main(["survey", str(manifest), "-o", str(out), "--workers", "1"]) == 130
    assert "interrupted: wrote 2 finished models" in capsys.readouterr().err
    assert len(pd.read_parquet(out)) == 2


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["survey", "m.pt", "-o", "out.txt"], "written as .parquet or .csv"),
        (["survey", "nothing/*.pt", "-o", "o.parquet"], "matches no file"),
        (["survey", "m.pt", "-o", "o.parquet", "--gpus", "1"], "ray engine only"),
        (["correlate", "missing.parquet"], "not a readable survey table"),
        (["correlate", "s.parquet", "-o", "c.txt"], "use .csv, .parquet or .json"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    argv: list[str],
    message: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_progress_bar_shows_done_rate_and_failures() -> None:
    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=200)
    with _SurveyBar(console, quiet=False) as bar:
        bar.update(SurveyEvent(1, 4, 0, 1, "", "start"))
        bar.update(SurveyEvent(2, 4, 1, 1, "broken.pt", "error"))
        bar._progress.refresh()
    text = out.getvalue()
    assert "2/4" in text and "models/s" in text and "1 failed" in text and "broken.pt" in text
