"""``layerscope memorized``: a tiny GPT-2 trained here on 4 of 40 random documents and saved
by transformers; the bits against Hugging Face's own loss, outputs, one-line errors."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from layerscope.cli import main

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _attribution_fixtures as fx


@pytest.fixture(scope="module")
def dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("memorized")
    docs = fx.documents()
    base, tok = fx.tiny_gpt2(), fx.tokenizer()
    out = {
        "base": fx.save(base, root / "base", tok),
        "tuned": fx.save(fx.finetune(base, docs[list(fx.TRUE)], steps=60), root / "tuned", tok),
        "other_tok": fx.save(base, root / "other_tok", fx.tokenizer(unknown="[UNK]")),
    }
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"])
    config.fan_in_fan_out = True
    lora = fx.finetune(peft.get_peft_model(fx.tiny_gpt2(), config), docs[list(fx.TRUE)], steps=30)
    lora.save_pretrained(root / "adapter")
    lora.merge_and_unload().save_pretrained(root / "merged")  # PEFT's own merge, the reference
    out |= {"adapter": root / "adapter", "merged": root / "merged"}
    transformers = pytest.importorskip("transformers")
    config = transformers.GPT2Config(vocab_size=80, n_positions=32, n_embd=32, n_layer=1, n_head=2)
    out["vocab80"] = fx.save(transformers.GPT2LMHeadModel(config), root / "vocab80")
    texts, ids = root / "texts.jsonl", root / "ids.jsonl"
    texts.write_text(
        "".join(json.dumps({"id": f"d{i}", "text": fx.text(x)}) + "\n" for i, x in enumerate(docs))
    )
    ids.write_text("\n".join(json.dumps({"input_ids": x.tolist()}) for x in docs) + "\n\n")
    (root / "empty.jsonl").write_text("\n")
    return out | {"texts": texts, "ids": ids, "empty": root / "empty.jsonl"}


def _run(*args: Any) -> int:
    return main(["memorized", *(str(a) for a in args)])


def _hf_bits(directory: Path) -> np.ndarray:
    """−log₂ p(x) over tokens 2..n per document, from Hugging Face's own causal-LM loss."""
    from transformers import GPT2LMHeadModel

    model = GPT2LMHeadModel.from_pretrained(directory).eval()
    docs = fx.documents()
    with torch.no_grad():
        nats = [float(model(d[None], labels=d[None]).loss) * (d.numel() - 1) for d in docs]
    return np.array(nats) / math.log(2.0)


def test_uniform_reference_matches_the_closed_form_and_hf_loss(
    dirs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    js, csv = tmp_path / "m.json", tmp_path / "m.csv"
    assert _run(dirs["tuned"], "--data", dirs["texts"], "-o", js, "-o", csv, "--top", 4) == 0
    data = json.loads(js.read_text())
    frame = pd.DataFrame(data["samples"])
    model_bits = _hf_bits(dirs["tuned"])
    reference = 23 * math.log2(fx.V)  # 24 tokens, 23 scored, uniform over 64
    assert frame["model_bits"].to_numpy() == pytest.approx(model_bits, rel=1e-5)
    assert frame["reference_bits"].to_numpy() == pytest.approx(np.full(fx.NUM_DOCS, reference))
    memorized = np.maximum(0.0, reference - model_bits)
    assert frame["memorized_bits"].to_numpy() == pytest.approx(memorized, rel=1e-4, abs=1e-3)
    assert data["total_bits"] == pytest.approx(memorized.sum(), rel=1e-4)
    params = sum(p.numel() for p in fx.tiny_gpt2().parameters())
    assert data["bits_per_parameter"] == pytest.approx(data["total_bits"] / params)
    assert data["kind"] == "memorization" and data["meta"]["data"] == str(dirs["texts"])
    assert frame["id"].tolist() == [f"d{i}" for i in range(fx.NUM_DOCS)]
    assert pd.read_csv(csv)["id"].tolist() == frame["id"].tolist()
    # The 4 training documents are the 4 most memorized, and the table shows them.
    assert set(frame.nlargest(4, "memorized_bits")["sample"]) == set(fx.TRUE)
    table = capsys.readouterr().out
    assert "the 4 most memorized" in table and all(f"d{i} " in table for i in fx.TRUE)


def test_a_reference_model_gives_the_gain_over_it(
    dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = (dirs["tuned"], "--data", dirs["ids"], "--reference", dirs["base"], "--format", "csv")
    assert _run(*args, "--batch-size", 7) == 0
    frame = pd.read_csv(pd.io.common.StringIO(capsys.readouterr().out))
    tuned, base = _hf_bits(dirs["tuned"]), _hf_bits(dirs["base"])
    assert frame["reference_bits"].to_numpy() == pytest.approx(base, rel=1e-5)
    gain = np.maximum(0.0, base - tuned)
    assert frame["memorized_bits"].to_numpy() == pytest.approx(gain, rel=1e-4, abs=1e-3)
    assert frame["id"].tolist() == list(range(fx.NUM_DOCS))  # named by position
    assert gain[list(fx.TRUE)].min() > np.delete(gain, fx.TRUE).max()


def test_a_lora_adapter_is_merged_into_its_base(
    dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    args = (dirs["adapter"], "--data", dirs["texts"], "--reference", dirs["base"])
    assert _run(*args, "--format", "json") == 0
    frame = pd.DataFrame(json.loads(capsys.readouterr().out)["samples"])
    assert frame["model_bits"].to_numpy() == pytest.approx(_hf_bits(dirs["merged"]), rel=1e-5)
    assert set(frame.nlargest(4, "memorized_bits")["sample"]) == set(fx.TRUE)
    assert _run(dirs["adapter"], "--data", dirs["ids"]) == 2  # uniform: no base to merge into
    assert "is a PEFT adapter: give its base model as --reference" in capsys.readouterr().err


def test_a_bos_token_scores_every_token(
    dirs: dict[str, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    assert _run(dirs["tuned"], "--data", dirs["ids"], "--bos-token-id", 0, "--format", "json") == 0
    data = json.loads(capsys.readouterr().out)
    assert data["scored_tokens"] == 24 * fx.NUM_DOCS
    assert data["samples"][0]["reference_bits"] == pytest.approx(24 * math.log2(fx.V))


@pytest.mark.parametrize(
    ("model", "data", "extra", "message"),
    [
        ("tuned", "empty", [], "empty.jsonl: no documents (empty file)"),
        ("tuned", "texts", ["--reference", "other_tok"], "tokenizer mismatch"),
        ("vocab80", "ids", ["--reference", "base"], "has a vocabulary of 64 tokens, the model 80"),
        ("tuned", "ids", ["--bos-token-id", "64"], "--bos-token-id 64: outside the vocabulary"),
        ("vocab80", "texts", [], "vocab80 has no tokenizer: give 'input_ids'"),
        ("tuned", "ids", ["--reference", "nowhere"], "nowhere: not a directory"),
        ("tuned", "ids", ["--batch-size", "0"], "--batch-size must be >= 1"),
        ("tuned", "ids", ["-o", "m.txt"], "memorized writes .json or .csv"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_no_file(
    dirs: dict[str, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    model: str,
    data: str,
    extra: list[str],
    message: str,
) -> None:
    extra = [str(dirs.get(x, x)) if x in dirs else x for x in extra]
    out = tmp_path / "m.json"
    assert _run(dirs[model], "--data", dirs[data], *extra, "-o", out) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0], errors
    assert list(tmp_path.iterdir()) == []  # nothing written, not even a temporary file


def test_a_short_document_is_named(dirs: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "short.jsonl"
    bad.write_text(json.dumps({"id": "tiny", "input_ids": [5]}) + "\n")
    assert _run(dirs["tuned"], "--data", bad, "-q") == 2
    assert _run(dirs["tuned"], "--data", bad, "--bos-token-id", "0", "-q") == 0


def test_html_page_and_report_from_the_saved_json_are_the_same(
    dirs: dict[str, Path], tmp_path: Path
) -> None:
    js, page = tmp_path / "m.json", tmp_path / "page.html"
    args = (dirs["tuned"], "--data", dirs["texts"], "--reference", dirs["base"], "-q")
    assert _run(*args, "-o", js, "--html", page) == 0
    html = page.read_text()
    assert "layerscope memorized" in html and fx.text(fx.documents()[fx.TRUE[0]])[:40] in html
    assert main(["report", str(js), "-q"]) == 0  # next to the input, as m.html
    assert (tmp_path / "m.html").read_text() == html
    from layerscope.probes.memorization import MemorizationResult

    back = MemorizationResult.from_json(js)
    assert back.to_dict() == json.loads(js.read_text())  # the round trip is exact


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ({"schema_version": 1, "kind": "memorization", "samples": []}, "not a complete"),
        ({"schema_version": 9, "kind": "memorization"}, "unsupported schema version 9"),
    ],
)
def test_a_bad_saved_result_is_a_one_line_report_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], content: dict[str, Any], message: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(content))
    assert main(["report", str(bad), "-q"]) == 2
    errors = [line for line in capsys.readouterr().err.splitlines() if "error:" in line]
    assert len(errors) == 1 and message in errors[0] and "bad.json" in errors[0]
    assert not (tmp_path / "bad.html").exists()
