"""Tensor -> matrices: conv slicing, depthwise, fused QKV, experts, skips.

References: numpy slicing of the same tensors written out by hand, and real modules
from torch / transformers so the layouts are the ones the libraries produce.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from _hf_models import tiny_config
from layerscope.adapters import open_source
from layerscope.adapters.base import LayerWeights, dtype_name
from layerscope.matrices import CONV2D_EIG_SCALE, MatrixPlan, Skipped, plan_matrices
from layerscope.spectrum import eigenvalues


def _layer(name: str, t: torch.Tensor, module_type: str | None = None, config=None) -> LayerWeights:
    return LayerWeights(name, tuple(t.shape), dtype_name(t.dtype), lambda: t, module_type, config)


def _plans(layer: LayerWeights) -> list[MatrixPlan]:
    planned = plan_matrices(layer)
    assert not isinstance(planned, Skipped), planned
    return planned


def _svd_evals(mats: list[np.ndarray]) -> np.ndarray:
    return np.sort(np.concatenate([np.linalg.svd(m, compute_uv=False) ** 2 for m in mats]))


def test_linear_and_transpose_same_spectrum() -> None:
    w = torch.randn(50, 20, dtype=torch.float64)
    (p,) = _plans(_layer("fc.weight", w, "Linear"))
    (pt,) = _plans(_layer("fc.weight", w.T.contiguous(), "Linear"))
    assert (p.N, p.M, p.kind) == (50, 20, "linear")
    np.testing.assert_allclose(eigenvalues(p.extract(w)), eigenvalues(pt.extract(w.T)), rtol=1e-10)


def test_conv2d_pools_kernel_slices() -> None:
    conv = nn.Conv2d(16, 32, kernel_size=3).double()
    w = conv.weight.detach()
    (p,) = _plans(_layer("conv.weight", w, "Conv2d"))
    assert (p.kind, p.N, p.M, p.num_slices, p.eig_scale) == ("conv2d", 32, 16, 9, CONV2D_EIG_SCALE)
    ref = _svd_evals([w[:, :, i, j].numpy() for i in range(3) for j in range(3)])
    np.testing.assert_allclose(eigenvalues(p.extract(w)), ref, rtol=1e-9, atol=1e-14)


def test_conv1d_3d_treated_as_conv2d_with_kh_1() -> None:
    w = nn.Conv1d(8, 24, kernel_size=5).weight.detach().double()
    (p,) = _plans(_layer("c.weight", w))  # no module type: inferred from the small last axis
    assert (p.kind, p.num_slices, p.N, p.M) == ("conv1d", 5, 24, 8)
    ref = _svd_evals([w[:, :, k].numpy() for k in range(5)])
    np.testing.assert_allclose(eigenvalues(p.extract(w)), ref, rtol=1e-9, atol=1e-14)


def test_depthwise_conv_uses_filter_matrix() -> None:
    w = nn.Conv2d(32, 32, kernel_size=3, groups=32).weight.detach().double()
    (p,) = _plans(_layer("dw.weight", w, "Conv2d"))
    assert (p.kind, p.N, p.M, p.num_slices) == ("conv2d-depthwise", 32, 9, 1)
    ref = _svd_evals([w.reshape(32, 9).numpy()])
    np.testing.assert_allclose(eigenvalues(p.extract(w)), ref, rtol=1e-9, atol=1e-14)


def test_channels_last_conv_detected() -> None:
    w = torch.randn(3, 3, 16, 32, dtype=torch.float64)  # Keras (kh, kw, in, out)
    (p,) = _plans(_layer("k.kernel", w))
    assert (p.kind, p.N, p.M, p.num_slices) == ("conv2d", 32, 16, 9)
    ref = _svd_evals([w[i, j].numpy() for i in range(3) for j in range(3)])
    np.testing.assert_allclose(eigenvalues(p.extract(w)), ref, rtol=1e-9, atol=1e-14)


def test_multihead_attention_in_proj_split() -> None:
    mha = nn.MultiheadAttention(embed_dim=24, num_heads=4).double()
    src = open_source(mha)
    layer = next(lw for lw in src if lw.name == "in_proj_weight")
    plans = _plans(layer)
    assert [p.name for p in plans] == [f"in_proj_weight[{x}]" for x in "qkv"]
    w = layer.load()
    for i, p in enumerate(plans):
        np.testing.assert_allclose(p.extract(w)[0].numpy(), w[24 * i : 24 * (i + 1)].numpy())


def test_gpt2_c_attn_split_transposed() -> None:
    transformers = pytest.importorskip("transformers")
    cfg = tiny_config("gpt2", n_head=4)
    model = transformers.GPT2LMHeadModel(cfg)
    layer = next(lw for lw in open_source(model) if lw.name.endswith("attn.c_attn.weight"))
    assert layer.module_type == "Conv1D"
    plans = _plans(layer)
    assert [p.kind for p in plans] == ["attention-q", "attention-k", "attention-v"]
    w = layer.load()
    q_ref = w[:, :32]  # Conv1D stores (in, 3*out): Q is the first third of the columns
    np.testing.assert_allclose(plans[0].extract(w)[0].numpy(), q_ref.numpy())


def test_neox_query_key_value_interleaved() -> None:
    heads, hd, d = 4, 8, 32
    w = torch.randn(3 * heads * hd, d, dtype=torch.float64)
    cfg = {"num_attention_heads": heads, "model_type": "gpt_neox"}
    plans = _plans(_layer("gpt_neox.layers.0.attention.query_key_value.weight", w, None, cfg))
    ref_k = w.view(heads, 3, hd, d)[:, 1].reshape(heads * hd, d)
    np.testing.assert_allclose(plans[1].extract(w)[0].numpy(), ref_k.numpy())


def test_gqa_qkv_proj_split_uses_config() -> None:
    heads, kv, hd = 8, 2, 4
    w = torch.randn((heads + 2 * kv) * hd, heads * hd)
    cfg = {"num_attention_heads": heads, "num_key_value_heads": kv, "head_dim": hd}
    plans = _plans(_layer("model.layers.0.self_attn.qkv_proj.weight", w, None, cfg))
    assert [(p.N, p.M) for p in plans] == [(32, 32), (32, 8), (32, 8)]


def test_moe_experts_one_matrix_each() -> None:
    transformers = pytest.importorskip("transformers")
    cfg = transformers.MixtralConfig(
        hidden_size=32,
        intermediate_size=48,
        num_hidden_layers=1,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=64,
        num_local_experts=3,
    )
    model = transformers.MixtralForCausalLM(cfg)
    layers = {lw.name: lw for lw in open_source(model)}
    gate_up = next(v for k, v in layers.items() if k.endswith("experts.gate_up_proj"))
    plans = _plans(gate_up)
    assert len(plans) == 6 and {p.kind for p in plans} == {"expert"}
    assert plans[0].name.endswith("[0.gate]") and plans[1].name.endswith("[0.up]")
    w = gate_up.load()
    np.testing.assert_allclose(plans[3].extract(w)[0].detach().numpy(), w[1, 48:].detach().numpy())


@pytest.mark.parametrize(
    ("shape", "dtype", "reason"),
    [((10,), torch.float32, "1-D"), ((), torch.float32, "scalar"), ((4, 4), torch.int64, "int64")],
)
def test_skips_with_reason(shape: tuple[int, ...], dtype: torch.dtype, reason: str) -> None:
    planned = plan_matrices(_layer("x", torch.zeros(shape, dtype=dtype)))
    assert isinstance(planned, Skipped) and reason in planned.reason


def test_embedding_kind_by_name_without_module() -> None:
    (p,) = _plans(_layer("model.embed_tokens.weight", torch.randn(100, 16)))
    assert p.kind == "embedding"
