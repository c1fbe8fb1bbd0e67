"""One CLI voice: every option documented, ``-o`` the same everywhere, JSON with a schema."""

from __future__ import annotations

import argparse
import dataclasses
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layerscope.cli import build_parser
from layerscope.results import SCHEMA_VERSION


def commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser in the tree with its command path (the root has path ())."""
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from commands(sub, (*path, name))


def test_every_option_and_command_has_help() -> None:
    missing = []
    for path, parser in commands(build_parser()):
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                helped = {a.dest for a in action._choices_actions if a.help}
                missing += [f"command {n}" for n in action.choices if n not in helped]
            elif not (action.help or "").strip():
                missing.append(f"{' '.join(path) or 'layerscope'} {action.option_strings}")
    assert not missing, f"options without help: {missing}"


def test_the_walk_sees_every_command() -> None:
    paths = {p for p, _ in commands(build_parser())}
    assert {("scan",), ("compare",), ("diff",), ("report",), ("llc",), ("track",)} <= paths


def test_dash_o_is_out_everywhere() -> None:
    """``-o`` always means ``--out FILE``: the file the command writes."""
    seen = []
    for path, parser in commands(build_parser()):
        for action in parser._actions:
            if "-o" in action.option_strings:
                assert action.dest == "out" and "--out" in action.option_strings, path
                assert action.metavar == "FILE", path
                seen.append(path[0])
    assert sorted(seen) == [
        "attribute", "compare", "correlate", "diff", "llc", "memorized", "plan", "prune",
        "report", "scan", "smooth", "survey",
    ]  # fmt: skip


@pytest.mark.parametrize("flag", ["-o", "--out", "--output"])
def test_report_keeps_its_old_flag(flag: str) -> None:
    args = build_parser().parse_args(["report", "r.json", flag, "page.html"])
    assert args.out == "page.html"


def test_lora_flags_share_one_option() -> None:
    parse = build_parser().parse_args
    assert parse(["compare", "a", "b"]).lora_layer_alpha is True
    assert parse(["compare", "a", "b", "--lora-update-only"]).lora_layer_alpha is False
    assert parse(["compare", "a", "b", "--lora-base-alpha"]).lora_layer_alpha is True


@pytest.fixture
def llc_result(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import _llc_fixtures as fx
    from layerscope.probes.llc import estimate

    model = fx.trained().eval()
    return estimate(
        model, fx.make_loader(), fx.half_sq_loss, num_chains=2, num_draws=10, burnin=5, seed=1
    )


def _no_constants(token: str) -> Any:
    raise AssertionError(f"JSON holds {token}")


def test_llc_to_json_is_versioned_and_strict(llc_result: Any, tmp_path: Path) -> None:
    broken = dataclasses.replace(llc_result, mean=float("nan"), std=float("inf"))
    text = broken.to_json(tmp_path / "llc.json", meta={"checkpoint": "c.pt"})
    assert (tmp_path / "llc.json").read_text() == text
    doc = json.loads(text, parse_constant=_no_constants)
    assert doc["schema_version"] == SCHEMA_VERSION and doc["kind"] == "llc"
    assert doc["meta"] == {"checkpoint": "c.pt"}
    assert doc["mean"] is None and doc["std"] is None
    expected = json.loads(json.dumps(llc_result.to_dict()))
    assert doc["per_chain"] == expected["per_chain"] and doc["nbeta"] == expected["nbeta"]
    assert doc["diag_r_hat"] == pytest.approx(expected["diag_r_hat"])


def test_llc_json_round_trip(llc_result: Any, tmp_path: Path) -> None:
    from layerscope.probes.llc import LLCResult

    traced = dataclasses.replace(
        llc_result,
        std=float("nan"),
        loss_traces=np.array([[0.5, np.nan], [0.25, 0.125]]),
        baseline_trace=np.array([0.1, 0.2]),
    )
    traced.to_json(tmp_path / "llc.json", meta={"checkpoint": "c.pt"})
    back = LLCResult.from_json(tmp_path / "llc.json")
    assert back.to_json() == traced.to_json()
    assert back.diagnostics == traced.diagnostics and np.isnan(back.std)
    np.testing.assert_array_equal(back.loss_traces, traced.loss_traces)  # NaN kept as NaN
    (tmp_path / "scan.json").write_text(json.dumps({"schema_version": SCHEMA_VERSION}))
    with pytest.raises(ValueError, match="a scan result, expected a llc result"):
        LLCResult.from_json(tmp_path / "scan.json")
    (tmp_path / "cut.json").write_text(
        json.dumps({"schema_version": SCHEMA_VERSION, "kind": "llc"})
    )
    with pytest.raises(ValueError, match="not a complete llc result"):
        LLCResult.from_json(tmp_path / "cut.json")


def test_llc_table_lives_in_report(llc_result: Any) -> None:
    import io

    from rich.console import Console

    from layerscope.report.terminal_llc import render_llc

    buffer = io.StringIO()
    render_llc(llc_result, "ckpt.pt", Console(file=buffer, width=100, color_system=None))
    text = buffer.getvalue()
    assert "LLC of ckpt.pt" in text and f"{llc_result.mean:.4g}" in text
    assert f"{llc_result.num_chains} × {llc_result.num_draws} ({llc_result.burnin})" in text
