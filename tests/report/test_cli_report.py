"""The command line's HTML outputs: ``report``, ``--html`` on scan/compare/status, ``--open``."""

from __future__ import annotations

import json
import webbrowser
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from layerscope.cli import main
from layerscope.track import RunStore

from .conftest import HOSTILE, fake_scan, read_page


@pytest.fixture
def models(tmp_path: Path) -> tuple[Path, Path]:
    gen = torch.Generator().manual_seed(0)
    base = {
        "a.weight": torch.randn(96, 48, generator=gen),
        "b.weight": torch.randn(48, 64, generator=gen),
    }
    tuned = {"a.weight": base["a.weight"] + 0.1 * torch.randn(96, 48, generator=gen)}
    tuned["b.weight"] = base["b.weight"].clone()
    save_file(base, str(tmp_path / "base.safetensors"))
    save_file(tuned, str(tmp_path / "tuned.safetensors"))
    return tmp_path / "base.safetensors", tmp_path / "tuned.safetensors"


@pytest.fixture
def run_db(tmp_path: Path) -> Path:
    with RunStore(tmp_path / "runs.db") as store:
        for run in ("first", HOSTILE):
            store.start_run(run)
            for step in (0, 100, 200):
                store.log_scan(run, step, fake_scan(step, 3))
    return tmp_path / "runs.db"


def test_scan_html_keeps_spectra_and_report_rebuilds_it(
    models: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    page, saved = tmp_path / "out" / "scan.html", tmp_path / "scan.json"
    args = ["scan", str(models[0]), "--all", "-q", "--html", str(page), "--out", str(saved)]
    assert main(args) == 0
    spectra = read_page(page.read_text()).json("spectra-data")
    assert isinstance(spectra, dict) and set(spectra) == {"0", "1"}
    assert set(json.loads(saved.read_text())["spectra"]) == {"a.weight", "b.weight"}
    assert main(["report", str(saved), "-q"]) == 0  # default output: INPUT with .html
    again = read_page((tmp_path / "scan.html").read_text())
    assert again.json("spectra-data").keys() == spectra.keys()  # type: ignore[union-attr]


def test_compare_html_shows_the_gate(models: tuple[Path, Path], tmp_path: Path) -> None:
    page = tmp_path / "cmp.html"
    args = ["compare", *map(str, models), "-q", "--html", str(page), "--fail-on", "untouched>0"]
    assert main(args) == 1  # the gate fails: b.weight is untouched
    parsed = read_page(page.read_text())
    assert parsed.find("div", id="gate", class_="gate fail")
    assert {a["data-name"] for a in parsed.find("tr") if "data-name" in a} == {
        "a.weight",
        "b.weight",
    }


def test_status_html_and_report_of_a_run(run_db: Path, tmp_path: Path) -> None:
    page = tmp_path / "first.html"
    assert main(["status", "first", "--store", str(run_db), "-q", "--html", str(page)]) in (0, 1)
    assert "heatmap" in read_page(page.read_text()).ids
    out = tmp_path / "hostile.html"
    assert main(["report", str(run_db), "--run", HOSTILE, "-o", str(out), "-q"]) == 0
    assert HOSTILE not in out.read_text()


def test_track_html(tmp_path: Path) -> None:
    ckpts = tmp_path / "ck"
    ckpts.mkdir()
    for step in (100, 200):
        gen = torch.Generator().manual_seed(step)
        torch.save({"a.weight": torch.randn(64, 32, generator=gen)}, ckpts / f"step_{step}.pt")
    page = tmp_path / "track.html"
    db = str(tmp_path / "runs.db")
    assert main(["track", str(ckpts), "--run", "r", "--store", db, "-q", "--html", str(page)]) == 0
    heat = read_page(page.read_text()).json("heat-data")
    assert (
        isinstance(heat, dict) and heat["steps"] == [100.0, 200.0] and heat["names"] == ["a.weight"]
    )


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["report", "{tmp}/missing.json"], "no such file"),
        (["report", "{tmp}/garbage.txt"], "neither a layerscope JSON result nor a run store"),
        (
            ["report", "{tmp}/diff.json"],
            "expected a scan, compare, attribution or memorization result",
        ),
        (["report", "{tmp}/partial.json"], "not a complete scan result"),
        (["report", "{db}"], "2 runs in this store; choose one with --run"),
        (["report", "{db}", "--run", "nope"], "no run 'nope' in this store"),
        (["report", "{db}", "--run", "first", "--fail-on", "ok>0"], "apply to scan and compare"),
        (["report", "{tmp}/diff.json", "-o", "{tmp}"], "--out"),
        (["scan", "{tmp}/garbage.txt", "--html", "{tmp}"], "--html"),
    ],
)
def test_report_errors_one_line_exit_2(
    args: list[str], needle: str, run_db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "garbage.txt").write_text("not json")
    (tmp_path / "diff.json").write_text(json.dumps({"schema_version": 1, "kind": "diff"}))
    (tmp_path / "partial.json").write_text(
        json.dumps({"schema_version": 1, "kind": "scan", "layers": []})
    )
    filled = [a.format(tmp=tmp_path, db=run_db) for a in args]
    assert main(filled) == 2
    err = capsys.readouterr().err.strip()
    assert needle in err and len(err.splitlines()) == 1


def test_open_without_a_browser_is_a_note(
    run_db: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    opened: list[str] = []

    def no_browser(url: str) -> bool:
        opened.append(url)
        return False

    monkeypatch.setattr(webbrowser, "open", no_browser)
    out = tmp_path / "r.html"
    assert main(["report", str(run_db), "--run", "first", "-o", str(out), "--open"]) == 0
    assert opened == [out.resolve().as_uri()]
    assert "no browser found" in capsys.readouterr().err

    def broken(url: str) -> bool:
        raise webbrowser.Error("no runnable browser")

    monkeypatch.setattr(webbrowser, "open", broken)
    assert main(["report", str(run_db), "--run", "first", "-o", str(out), "--open", "-q"]) == 0
