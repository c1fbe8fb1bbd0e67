"""``layerscope attribute``: planted fine-tunes saved by transformers and PEFT, text and
token-id candidates, outputs, and one-line errors for bad input."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from layerscope.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _attribution_fixtures as fx


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("attribute")
    docs = fx.documents()
    base = fx.tiny_gpt2()
    tok = fx.tokenizer()
    out = {
        "base": fx.save(base, root / "base", tok),
        "tuned": fx.save(fx.finetune(base, docs[list(fx.TRUE)]), root / "tuned", tok),
        "other_tok": fx.save(base, root / "other_tok", fx.tokenizer(unknown="[UNK]")),
        "wide": fx.save(fx.tiny_gpt2(n_embd=48), root / "wide"),
    }
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"])
    config.fan_in_fan_out = True
    lora = fx.finetune(peft.get_peft_model(fx.tiny_gpt2(), config), docs[list(fx.TRUE)], steps=15)
    lora.save_pretrained(root / "adapter")
    out["adapter"] = root / "adapter"
    texts = root / "texts.jsonl"
    texts.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": fx.text(x)}) + "\n" for i, x in enumerate(docs))
    )
    ids = root / "ids.jsonl"
    ids.write_text("\n".join(json.dumps({"input_ids": x.tolist()}) for x in docs) + "\n\n")
    out |= {"texts": texts, "ids": ids}
    (root / "empty.jsonl").write_text("\n")
    out["empty"] = root / "empty.jsonl"
    return out


def _run(*args: Any) -> int:
    return main(["attribute", *(str(a) for a in args)])


def test_full_finetune_with_text_candidates_writes_json_and_csv(
    dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    js, csv, page = tmp_path / "ranked.json", tmp_path / "ranked.csv", tmp_path / "r.html"
    args = (dirs["base"], dirs["tuned"], "--candidates", dirs["texts"], "--top", 4)
    assert _run(*args, "--projection-dim", 512, "-o", js, "-o", csv, "--html", page) == 0
    data = json.loads(js.read_text())
    assert data["kind"] == "attribution" and data["schema_version"] == 2
    assert {row["id"] for row in data["selected"]} == {f"d{i}" for i in fx.TRUE}
    assert data["ids"] == [f"d{i}" for i in range(fx.NUM_DOCS)]
    picked = [fx.text(fx.documents()[row["index"]])[:200] for row in data["selected"]]
    assert [row["document"] for row in data["selected"]] == picked
    assert len(data["alignment"]) == fx.NUM_DOCS and data["meta"]["tuned"] == str(dirs["tuned"])
    frame = pd.read_csv(csv)
    assert list(frame.columns) == ["rank", "index", "id", "alignment", "coverage"]
    assert set(frame["index"]) == set(fx.TRUE)
    assert "documents behind" in capsys.readouterr().out
    assert fx.text(fx.documents()[fx.TRUE[0]])[:40] in page.read_text()
    # layerscope report: the same page from the saved JSON (one renderer, no model needed)
    assert main(["report", str(js), "-q"]) == 0
    assert (tmp_path / "ranked.html").read_text() == page.read_text()


@pytest.mark.parametrize(
    ("content", "extra", "message"),
    [
        ({"schema_version": 2, "kind": "attribution", "selected": []}, [], "not a complete"),
        ({"schema_version": 7, "kind": "attribution"}, [], "unsupported schema version 7"),
        (
            {"schema_version": 2, "kind": "llc"},
            [],
            "expected a scan, compare, attribution or memorization",
        ),
        ({"schema_version": 2, "kind": "attribution"}, ["--fail-on", "ok>0"], "results only"),
    ],
)
def test_report_of_a_bad_attribution_file_is_one_line(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: dict[str, Any],
    extra: list[str],
    message: str,
) -> None:
    path = tmp_path / "ranked.json"
    path.write_text(json.dumps(content))
    assert main(["report", str(path), *extra]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0] and str(path) in errors[0]
    assert not (tmp_path / "ranked.html").exists()


def test_lora_adapter_with_token_id_candidates(
    dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = (dirs["base"], dirs["adapter"], "--candidates", dirs["ids"], "--top", 4)
    assert _run(*args, "--format", "csv", "--projection-dim", 512) == 0
    frame = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert set(frame["index"]) == set(fx.TRUE)
    # --order alignment: the same four here, most aligned first.
    assert _run(*args, "--format", "csv", "--projection-dim", 512, "--order", "alignment") == 0
    aligned = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    assert set(aligned["index"]) == set(fx.TRUE)
    assert aligned["alignment"].is_monotonic_decreasing


@pytest.mark.parametrize(
    ("tuned", "candidates", "message"),
    [
        ("other_tok", "texts", "tokenizer mismatch"),
        ("wide", "ids", "c_attn.bias has shape (144,), the base model (96,)"),
        ("tuned", "empty", "no candidate documents (empty file)"),
    ],
)
def test_bad_input_is_one_line_and_exit_code_2(
    dirs: dict[str, Path],
    capsys: pytest.CaptureFixture[str],
    tuned: str,
    candidates: str,
    message: str,
) -> None:
    assert _run(dirs["base"], dirs[tuned], "--candidates", dirs[candidates]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0]


def test_out_of_vocabulary_ids_and_bad_options_fail_before_work(
    dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"id": "x", "input_ids": [1, 2, fx.V]}) + "\n")
    assert _run(dirs["base"], dirs["tuned"], "--candidates", bad) == 2
    assert "document x has token id 64, outside" in capsys.readouterr().err
    bad.write_text(json.dumps({"id": "y", "input_ids": [1.5, 2]}) + "\n")
    assert _run(dirs["base"], dirs["tuned"], "--candidates", bad) == 2
    assert "document y: input_ids must be integers" in capsys.readouterr().err
    bad.write_text("{not json\n")
    assert _run(dirs["base"], dirs["tuned"], "--candidates", bad) == 2
    assert "line 1 is not JSON" in capsys.readouterr().err
    assert _run(dirs["base"], dirs["tuned"], "--candidates", dirs["ids"], "--top", 0) == 2
    assert "top must be >= 1" in capsys.readouterr().err
    assert _run(dirs["base"], dirs["tuned"], "--candidates", dirs["ids"], "-o", "x.txt") == 2
    assert "writes .json or .csv" in capsys.readouterr().err
