"""CLI: ``layerscope llc`` against ``probes.llc.estimate`` called directly, outputs, errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from layerscope.cli import main
from layerscope.probes.llc import LLCResult, estimate
from layerscope.results import SCHEMA_VERSION

FAST = ["--chains", "2", "--draws", "20", "--burnin", "10", "--seed", "3", "--device", "cpu"]


@pytest.fixture(autouse=True)
def fixtures_on_path(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    import _llc_fixtures

    return _llc_fixtures


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(["llc", *argv, "--format", "json", "-q", *FAST]) == 0
    return dict(json.loads(capsys.readouterr().out, parse_constant=_no_nan))


def _no_nan(token: str) -> Any:
    raise AssertionError(f"JSON holds {token}")


def direct(fx: Any, model: torch.nn.Module, loss_fn: Any) -> Any:
    return estimate(
        model.eval(), fx.make_loader(), loss_fn, num_chains=2, num_draws=20, burnin=10, seed=3
    )


def reference_nll(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    return 0.5 * ((model(x) - y) ** 2).sum(1).mean()


def reference_mse(model: torch.nn.Module, batch: Any) -> torch.Tensor:
    x, y = batch
    return ((model(x) - y) ** 2).mean()


@pytest.mark.parametrize(
    ("loss", "reference"), [("nll-gauss", reference_nll), ("mse", reference_mse)]
)
def test_matches_estimate_called_directly(
    fixtures_on_path: Any, capsys: pytest.CaptureFixture[str], loss: str, reference: Any
) -> None:
    fx = fixtures_on_path
    out = run_json(
        capsys, "_llc_fixtures:trained", "--data", "_llc_fixtures:make_loader", "--loss", loss
    )
    expected = direct(fx, fx.trained(), reference)
    assert out["mean"] == expected.mean and out["per_chain"] == list(expected.per_chain)
    assert out["nbeta"] == expected.nbeta and out["step_size"] == expected.step_size


def test_json_shape(capsys: pytest.CaptureFixture[str]) -> None:
    out = run_json(
        capsys, "_llc_fixtures:trained", "--data", "_llc_fixtures:tensors", "--loss", "nll-gauss",
        "--batch-size", "32", "--nbeta", "10", "--step-size", "1e-3", "--localization", "2",
    )  # fmt: skip
    assert out["schema_version"] == SCHEMA_VERSION and out["kind"] == "llc"
    assert out["meta"] == {
        "checkpoint": "_llc_fixtures:trained",
        "model": None,
        "data": "_llc_fixtures:tensors",
        "loss": "nll-gauss",
    }
    assert out["num_chains"] == 2 and len(out["per_chain"]) == 2
    assert (out["nbeta"], out["step_size"], out["localization"]) == (10.0, 1e-3, 2.0)
    assert (out["batch_size"], out["num_samples"], out["num_draws"]) == (32, 64, 20)
    assert isinstance(out["warnings"], list) and isinstance(out["diag_r_hat"], float)
    assert out["mean"] > 0


def test_weights_file_with_model_gives_the_same_number(
    fixtures_on_path: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = fixtures_on_path.trained().state_dict()
    torch.save({"state_dict": {f"module.{k}": v for k, v in state.items()}}, tmp_path / "c.pt")
    save_file({k: v.contiguous() for k, v in state.items()}, tmp_path / "c.safetensors")
    args = ("--data", "_llc_fixtures:make_loader", "--loss", "_llc_fixtures:half_sq_loss")
    by_callable = run_json(capsys, "_llc_fixtures:trained", *args)
    for name in ("c.pt", "c.safetensors"):
        out = run_json(capsys, str(tmp_path / name), "--model", "_llc_fixtures:build_model", *args)
        assert out["per_chain"] == by_callable["per_chain"]
        assert out["meta"]["model"] == "_llc_fixtures:build_model"


def test_table_and_out_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "sub" / "llc.json"
    argv = ["llc", "_llc_fixtures:trained", "--data", "_llc_fixtures:make_loader"]
    assert main([*argv, "--loss", "ce", "--out", str(tmp_path / "x.csv"), *FAST]) == 2
    assert main([*argv, "--loss", "nll-gauss", "--out", str(target), *FAST]) == 0
    table = capsys.readouterr().out
    saved = json.loads(target.read_text())
    for text in ("LLC (mean)", "nβ", "step size ε", f"{saved['per_chain'][0]:.4g}"):
        assert text in table
    if saved["warnings"]:
        assert f"warning: {saved['warnings'][0][:30]}" in table
    else:
        assert "no diagnostic warnings" in table
    assert not list(target.parent.glob(".*.tmp"))  # atomic write left no temp file
    assert list(LLCResult.from_json(target).per_chain) == saved["per_chain"]


def _bad_fit(tmp_path: Path, fx: Any, kind: str) -> str:
    state = dict(fx.build_model().state_dict())
    if kind == "missing":
        del state["2.bias"]
    elif kind == "unexpected":
        state["3.weight"] = torch.zeros(1)
    else:
        state["0.weight"] = torch.zeros(8, 5)
    torch.save(state, tmp_path / f"{kind}.pt")
    return str(tmp_path / f"{kind}.pt")


@pytest.mark.parametrize(
    ("checkpoint", "extra", "message"),
    [
        ("nosuchpkg.models:build", (), "nosuchpkg.models:build: cannot import"),
        ("_llc_fixtures:nope", (), "has no attribute 'nope'"),
        ("_llc_fixtures:NOT_A_MODEL", (), "expected an nn.Module, got int"),
        ("missing", (), "missing key '2.bias'"),
        ("unexpected", (), "unexpected key '3.weight'"),
        ("shape", (), "0.weight has shape (8, 5) in the checkpoint but (8, 4) in the model"),
        ("_llc_fixtures:trained", ("--loss", "_llc_fixtures:failing_loss"), "this loss always"),
        ("_llc_fixtures:trained", ("--loss", "huber"), "--loss huber: expected one of"),
        (
            "_llc_fixtures:trained",
            ("--data", "_llc_fixtures:wrong_targets"),
            "failed on the first batch (ValueError: loss nll-gauss: model output shape (64, 2)",
        ),
        ("_llc_fixtures:trained", ("--data", "_llc_fixtures:no_data"), "--data _llc_fixtures:no"),
        ("_llc_fixtures:trained", ("--chains", "0"), "num_chains must be >= 1"),
        ("nosuch.pt", (), "nosuch.pt: no such file"),
    ],
)
def test_errors_are_one_line(
    fixtures_on_path: Any,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    checkpoint: str,
    extra: tuple[str, ...],
    message: str,
) -> None:
    argv = ["llc", checkpoint, "--data", "_llc_fixtures:make_loader", "--loss", "nll-gauss"]
    if checkpoint in ("missing", "unexpected", "shape"):
        argv[1] = _bad_fit(tmp_path, fixtures_on_path, checkpoint)
        argv += ["--model", "_llc_fixtures:build_model"]
    assert main([*argv, *FAST, *extra]) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and err.startswith("error:"), err
    assert message in err and "Traceback" not in err
    assert captured.out == ""


def test_weights_file_needs_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    torch.save({"w": torch.zeros(2)}, tmp_path / "w.pt")
    argv = ["llc", str(tmp_path / "w.pt"), "--data", "_llc_fixtures:make_loader"]
    assert main([*argv, "--loss", "mse"]) == 2
    assert "add --model pkg.module:build" in capsys.readouterr().err


def test_load_weights_tied_stored_once(tmp_path: Path) -> None:
    from layerscope.cli._llc_inputs import load_weights

    def tied() -> torch.nn.Module:
        model = torch.nn.Sequential(torch.nn.Linear(3, 3, bias=False), torch.nn.Linear(3, 3))
        model[1].weight = model[0].weight
        return model

    state = {"0.weight": torch.arange(9.0).reshape(3, 3), "1.bias": torch.ones(3)}
    save_file(state, tmp_path / "t.safetensors")  # tied 1.weight stored once
    model = tied()
    load_weights(model, tmp_path / "t.safetensors")
    assert torch.equal(model[1].weight, state["0.weight"]) and torch.equal(
        model[1].bias, state["1.bias"]
    )
