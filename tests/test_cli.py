"""The command line: outputs, exit codes, one-line errors, atomic writes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from layerscope.cli import main


@pytest.fixture
def model_file(tmp_path: Path) -> Path:
    torch.manual_seed(0)
    path = tmp_path / "m.safetensors"
    save_file({"a.weight": torch.randn(96, 48), "b.weight": torch.randn(48, 64)}, str(path))
    return path


def test_table_and_json_out(
    model_file: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "res.json"
    csv = tmp_path / "res.csv"
    assert main(["scan", str(model_file), "--all", "--out", str(out), "--out", str(csv)]) == 0
    assert csv.read_text().startswith("layer_id,name")
    text = capsys.readouterr().out
    assert "a.weight" in text and "Summary" in text
    data = json.loads(out.read_text())
    assert [r["name"] for r in data["layers"]] == ["a.weight", "b.weight"]
    assert "num_traps" in data["layers"][0]


def test_json_and_csv_to_stdout(model_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["scan", str(model_file), "--format", "json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["summary"]["num_analysed"] == 2
    assert main(["scan", str(model_file), "--format", "csv", "-q"]) == 0
    assert capsys.readouterr().out.startswith("layer_id,name,kind,N,M")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["scan", "/no/such/model.safetensors"], "no such file"),
        (["scan", "{model}", "--metrics", "bogus"], "unknown metric"),
        (["scan", "{model}", "--out", "{tmp}/x.weird"], "cannot infer the format"),
        (["scan", "{model}", "--device", "cuda"], "cuda"),
    ],
)
def test_user_errors_one_line_exit_2(
    args: list[str],
    needle: str,
    model_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    if needle == "cuda" and torch.cuda.is_available():
        pytest.skip("a GPU is present")
    argv = [a.format(model=model_file, tmp=tmp_path) for a in args]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err.lower() and len(err.splitlines()) == 1
    assert not list(tmp_path.glob("x.weird*"))


def test_truncated_file_is_a_one_line_error(
    model_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = model_file.read_bytes()
    model_file.write_bytes(data[: len(data) // 2])
    assert main(["scan", str(model_file)]) == 2
    err = capsys.readouterr().err.strip()
    assert "m.safetensors" in err and len(err.splitlines()) == 1


def test_python_path_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "mymodels.py").write_text(
        "import torch\ndef build():\n    return torch.nn.Linear(40, 80)\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    assert main(["scan", "mymodels:build", "--format", "json", "-q"]) == 0
    assert json.loads(capsys.readouterr().out)["layers"][0]["name"] == "weight"
    assert main(["scan", "torch.nn:Bilinear", "-q"]) == 2  # factory needs arguments
    assert "without arguments" in capsys.readouterr().err


def test_console_script_runs(model_file: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "layerscope", "scan", str(model_file), "--format", "csv", "-q"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert "a.weight" in proc.stdout
