"""Release gates: rule parsing, evaluation on crafted tables, CLI exit codes, diff."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from safetensors.torch import save_file

from layerscope.cli import main
from layerscope.gate import check, load_policy, parse_rule

TABLE = pd.DataFrame(
    {
        "name": [f"l{i}" for i in range(10)],
        "verdict": ["under-trained"] * 3 + ["over-trained"] + ["ok"] * 5 + ["untouched"],
        "status": ["ok"] * 9 + ["untouched"],
        "fit_quality": ["good"] * 8 + ["flat-ks", "good"],
        "alpha": [7.0, 8.0, 9.0, 1.5, 3.0, 3.0, 3.0, 3.0, 3.0, None],
        "changed_verdict": [True] + [False] * 9,
    }
)


@pytest.mark.parametrize(
    ("rule", "fails", "value"),
    [
        ("under-trained>20%", True, 30.0),
        ("under-trained>30%", False, 30.0),
        ("under-trained>=30%", True, 30.0),
        ("under-trained-update>2", True, 3.0),
        ("over-trained>1", False, 1.0),
        ("untouched>0", True, 1.0),
        ("shaky>=1", True, 1.0),
        ("changed-verdict>0", True, 1.0),
        ("mean(alpha)>4", True, 4.5),
        ("max(alpha)<9", False, 9.0),
        ("min(alpha) < 2", True, 1.5),
        ("duplicated>0", True, 2.0),
        ("duplicated>2", False, 2.0),
    ],
)
def test_rules(rule: str, fails: bool, value: float) -> None:
    result = check(TABLE, [rule], {"duplicated": 2})
    (c,) = result.checks
    assert c.failed is fails and c.value == pytest.approx(value)
    assert result.passed is not fails
    assert ("violates" if fails else "satisfies") in c.message


@pytest.mark.parametrize(
    ("rule", "needle"),
    [
        ("alpha", "cannot parse"),
        ("avg(alpha)>1", "unknown aggregate"),
        ("mean(alpha)>1%", "percentage"),
    ],
)
def test_bad_rules(rule: str, needle: str) -> None:
    with pytest.raises(ValueError, match=needle):
        parse_rule(rule)


def test_unknown_subject_and_column() -> None:
    with pytest.raises(ValueError, match="unknown subject"):
        check(TABLE, ["nonsense>1"])
    with pytest.raises(ValueError, match="no column"):
        check(TABLE, ["mean(nope)>1"])


def test_policy_file(tmp_path: Path) -> None:
    (tmp_path / "p.toml").write_text('[gate]\nfail_on = ["under-trained>20%", "mean(alpha)>5"]\n')
    assert load_policy(tmp_path / "p.toml") == ["under-trained>20%", "mean(alpha)>5"]
    (tmp_path / "bad.toml").write_text("fail_on = 3\n")
    with pytest.raises(ValueError, match="fail_on"):
        load_policy(tmp_path / "bad.toml")


@pytest.fixture
def models(tmp_path: Path) -> tuple[Path, Path]:
    g = torch.Generator().manual_seed(0)
    base = {f"l{i}.weight": torch.randn(128, 64, generator=g) * 0.05 for i in range(4)}
    tuned = {k: v.clone() for k, v in base.items()}
    tuned["l0.weight"] += 0.05 * torch.randn(128, 64, generator=g)  # a near-random update
    save_file(base, str(tmp_path / "base.safetensors"))
    save_file(tuned, str(tmp_path / "tuned.safetensors"))
    return tmp_path / "base.safetensors", tmp_path / "tuned.safetensors"


def test_compare_cli_gate_exit_codes(
    models: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    base, tuned = map(str, models)
    assert main(["compare", base, tuned, "-q", "--fail-on", "under-trained-update>20%"]) == 1
    err = capsys.readouterr().err
    assert "FAIL under-trained-update>20%" in err and "25.0% of 4" in err
    assert main(["compare", base, tuned, "-q", "--fail-on", "under-trained-update>30%"]) == 0
    assert main(["compare", base, tuned, "-q", "--fail-on", "untouched<3"]) == 0
    assert main(["compare", base, tuned, "-q", "--fail-on", "untouched<4"]) == 1
    assert main(["compare", base, tuned, "-q", "--fail-on", "oops"]) == 2


def test_scan_policy_and_diff(
    models: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base, tuned = models
    policy = tmp_path / "policy.toml"
    policy.write_text('fail_on = ["failed>0"]\n')
    assert (
        main(["scan", str(base), "-q", "--policy", str(policy), "--out", str(tmp_path / "a.json")])
        == 0
    )
    assert main(["scan", str(tuned), "-q", "--out", str(tmp_path / "b.json")]) == 0
    capsys.readouterr()
    code = main(
        [
            "diff",
            str(tmp_path / "a.json"),
            str(tmp_path / "b.json"),
            "--format",
            "csv",
            "--fail-on",
            "max(abs_delta_alpha)>100",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert out.startswith("name,") and "delta_alpha" in out
    assert (
        main(
            [
                "diff",
                str(tmp_path / "a.json"),
                str(tmp_path / "b.json"),
                "-q",
                "--fail-on",
                "max(abs_delta_alpha)>0",
            ]
        )
        == 1
    )
    assert main(["diff", str(tmp_path / "a.json"), str(tmp_path / "missing.json")]) == 2
