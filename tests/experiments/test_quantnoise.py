"""Quantization-noise study: the block quantizers against gguf's own code and a per-block
loop, the noise's size and spectral edge against closed forms and simulation, the
comparison helpers against scipy/numpy, and the study end to end on a tiny model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from experiments.quantnoise import compare, quant, run
from scipy import stats

from layerscope.control.plan import allocate


def weights(shape: tuple[int, int] = (48, 256), seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    w = rng.standard_normal(shape).astype(np.float32) * 0.05
    w[0, :32] = 0.01  # a constant block: zero scale
    w[1, :32] *= 40.0  # an outlier block
    return w


def loop_reference(w: np.ndarray, bits: int) -> np.ndarray:
    """k-bit asymmetric block-32 quantization, block by block in float64."""
    out = np.empty_like(w, dtype=np.float32)
    flat, res = w.reshape(-1, 32), out.reshape(-1, 32)
    top = 2**bits - 1
    for i, block in enumerate(flat.astype(np.float64)):
        lo, d = block.min(), (block.max() - block.min()) / top
        q = np.zeros(32) if d == 0 else np.clip(np.floor((block - lo) / d + 0.5), 0, top)
        res[i] = np.float16(d).astype(np.float64) * q + np.float16(lo).astype(np.float64)
    return out


def test_kbit_at_4_bits_is_ggufs_q4_1() -> None:
    for seed, shape in ((0, (48, 256)), (1, (7, 96))):
        w = weights(shape, seed)
        assert np.array_equal(quant.kbit(w, 4), quant.gguf_roundtrip(w, "Q4_1"))


@pytest.mark.parametrize("bits", [2, 3, 4, 6])
def test_kbit_matches_a_per_block_loop(bits: int) -> None:
    w = weights()
    got = quant.kbit(w, bits)
    np.testing.assert_allclose(got, loop_reference(w, bits), rtol=0, atol=1e-7)
    blocks = got.reshape(-1, 32)
    assert max(np.unique(b).size for b in blocks) <= 2**bits
    step = quant.block_steps(w, f"{bits}bit")
    err = np.abs(got - w).reshape(-1, 32).max(axis=1)
    assert np.all(err <= step / 2 + np.abs(w).reshape(-1, 32).max(axis=1) * 2.0**-10)


def test_gguf_types_round_trip_within_their_step() -> None:
    w = weights()
    scale = np.abs(w).reshape(-1, 32).max(axis=1)
    for qtype in quant.GGUF_TYPES:
        err = np.abs(quant.gguf_roundtrip(w, qtype) - w).reshape(-1, 32).max(axis=1)
        # Q4_0/Q5_0 map the signed extreme to −8/−16 steps: the other end is clipped at
        # +7/+15, up to one step off; the rest round to nearest. fp16 scale and minimum
        # add up to 2^-11 of the block's largest magnitude.
        half = 1.0 if qtype in ("Q4_0", "Q5_0") else 0.5
        bound = quant.block_steps(w, qtype) * half + scale * 2.0**-10
        assert np.all(err <= bound), qtype


def test_q4_1_is_idempotent_on_its_own_output() -> None:
    once = quant.gguf_roundtrip(weights(), "Q4_1")
    assert np.array_equal(quant.gguf_roundtrip(once, "Q4_1"), once)


def test_bad_inputs_name_the_problem() -> None:
    with pytest.raises(ValueError, match="multiple of 32"):
        quant.kbit(np.zeros((4, 30)), 3)
    with pytest.raises(ValueError, match="unknown GGUF type"):
        quant.gguf_roundtrip(np.zeros((4, 32)), "Q3_K")
    with pytest.raises(ValueError, match="unknown scheme"):
        quant.quantizer("three")


def test_error_variance_is_step_squared_over_12() -> None:
    """Uniform rounding error (Widrow & Kollár): s² = Δ²/12, except that the block's min
    and max are exact in the asymmetric scheme (2 of 32 entries: factor 30/32)."""
    w = np.random.default_rng(3).standard_normal((256, 512)).astype(np.float32)
    for scheme, factor in (("6bit", 30 / 32), ("Q8_0", 31 / 32), ("Q5_0", 31 / 32)):
        s2 = float(np.mean((quant.quantizer(scheme)(w) - w) ** 2))
        assert s2 == pytest.approx(factor * quant.predicted_noise_var(w, scheme), rel=0.03)


def test_noise_edge_and_spike_shift_match_simulation() -> None:
    rng = np.random.default_rng(4)
    n, m, var = 1200, 400, 0.01
    noise = rng.normal(0, np.sqrt(var), (n, m))
    top = np.linalg.eigvalsh(noise.T @ noise)[-1]
    assert top == pytest.approx(quant.mp_noise_edge(var, n, m), rel=0.03)
    u, v = rng.standard_normal(n), rng.standard_normal(m)
    lam = 4.0 * var * np.sqrt(n * m)  # well above the detection threshold var·√(nm)
    signal = np.sqrt(lam) * np.outer(u / np.linalg.norm(u), v / np.linalg.norm(v))
    spiked = np.linalg.eigvalsh((signal + noise).T @ (signal + noise))[-1]
    assert spiked == pytest.approx(float(quant.spike_shift(lam, var, n, m)), rel=0.02)


def test_spearman_matches_scipy_with_ties() -> None:
    a = np.array([3.0, 1.0, 2.0, 2.0, 5.0, 4.0])
    b = np.array([2.5, 0.5, 2.5, 1.0, 9.0, 3.0])
    assert compare.spearman(a, b) == pytest.approx(stats.spearmanr(a, b).statistic)
    assert np.isnan(compare.spearman(a, np.ones(6)))


def test_abs_delta_skips_nan_and_aligns_names() -> None:
    ref = pd.Series([1.0, 2.0, np.nan, 4.0], index=["a", "b", "c", "d"])
    other = pd.Series([4.5, 2.0, 3.0, 1.5], index=["d", "b", "c", "a"])
    assert compare.abs_delta(ref, other) == (pytest.approx(1 / 3), 0.5, 3)


def frame(values: list[float]) -> pd.DataFrame:
    names = [f"model.layers.{i // 2}.{'qk'[i % 2]}.weight" for i in range(len(values))]
    return pd.DataFrame(
        {
            "name": names,
            "param": names,
            "kind": "linear",
            "status": "ok",
            "N": [64, 32] * (len(values) // 2),
            "M": 16,
            "num_slices": 1,
            "alpha": values,
            "alpha_peak": values[::-1],
        }
    )


def test_block_helpers_and_plan_change_against_direct_computation() -> None:
    ref, other = frame([2.0, 4.0, 3.0, 3.0, 6.0, 2.0]), frame([2.0, 4.0, 5.0, 3.0, 6.0, 2.0])
    assert compare.block_means(ref, "alpha").tolist() == [3.0, 3.0, 4.0]
    want = stats.spearmanr([3.0, 3.0, 4.0], [3.0, 4.0, 4.0]).statistic
    assert compare.block_spearman(ref, other, "alpha") == pytest.approx(want)
    params = np.array([64, 32] * 3) * 16
    a = allocate(np.repeat([3.0, 3.0, 4.0], 2), params, 0.7, 0.2)
    b = allocate(np.repeat([3.0, 4.0, 4.0], 2), params, 0.7, 0.2)
    assert compare.plan_change(ref, other, "alpha", 0.7, 0.2) == pytest.approx(np.abs(a - b).max())
    assert compare.plan_change(ref, ref, "alpha_peak", 0.7, 0.2) == 0.0


def test_tail_alpha_recovers_a_pareto_exponent() -> None:
    rng = np.random.default_rng(5)
    x = (1.0 - rng.random(20_000)) ** (-1.0 / 2.0)  # density ∝ x^-3: alpha = 3
    assert compare.tail_alpha(x, x.size) == pytest.approx(3.0, abs=3 * 2.0 / np.sqrt(x.size))
    by_hand = 1.0 + 50 / np.log(np.sort(x)[-50:] / np.sort(x)[-50]).sum()
    assert compare.tail_alpha(x, 50) == pytest.approx(by_hand)
    assert np.isnan(compare.tail_alpha(x[:1], 2))


def test_study_end_to_end_on_a_tiny_model(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(6)
    tiny = {
        f"layers.{b}.{p}.weight": (rng.standard_t(3, (96, 64)) * 0.02).astype(np.float32)
        for b in range(3)
        for p in ("q", "up")
    }
    monkeypatch.setitem(run.LOADERS, "tiny", lambda: tiny)
    res = run.study("tiny", ["Q8_0", "2bit"])
    q8, b2 = res["schemes"]["Q8_0"], res["schemes"]["2bit"]
    assert q8["alpha_median"]["layers"] == 6 and q8["max_abs_weight_change"] > 0
    assert q8["noise"]["edge_over_xmin_median"] < b2["noise"]["edge_over_xmin_median"]
    assert len(res["layers"]["2bit"]) == 6 and set(res["gaussian"]) == {"Q8_0", "2bit"}
    text = run.markdown("tiny", res)
    assert "| 2bit | alpha_farms |" in text and "| Q8_0 |" in text


def test_real_minilm_matrices_and_their_quantization_noise() -> None:
    """The loader keeps the 36 encoder matrices of the real MiniLM; on them the k-bit code is
    gguf's Q4_1 and the error variance is the blocks' Δ²/12 less the exact min and max."""
    w = run.minilm_weights()
    assert len(w) == 36 and {v.shape for v in w.values()} == {(384, 384), (1536, 384), (384, 1536)}
    m = w["encoder.layer.3.intermediate.dense.weight"]
    assert np.array_equal(quant.kbit(m, 4), quant.gguf_roundtrip(m, "Q4_1"))
    s2 = float(np.mean((quant.kbit(m, 4) - m) ** 2))
    assert s2 == pytest.approx(30 / 32 * quant.predicted_noise_var(m, "4bit"), rel=0.03)


def test_perturbed_copies_and_their_plans() -> None:
    from experiments.quantnoise import perplexity

    rng = np.random.default_rng(7)
    w = {
        f"model.layers.{b}.mlp.{p}.weight": (rng.standard_t(3, (96, 64)) * 0.02).astype(np.float32)
        for b in range(3)
        for p in ("up_proj", "down_proj")
    }
    made = perplexity.copies(w, seed=1)
    assert list(made) == ["file", "Q8_0", "gauss1"] and made["file"] is w
    k = "model.layers.0.mlp.up_proj.weight"
    s2_q8 = np.mean((made["Q8_0"][k].astype(np.float64) - w[k]) ** 2)
    s2_g = np.mean((made["gauss1"][k].astype(np.float64) - w[k]) ** 2)
    assert s2_q8 > 0 and s2_g == pytest.approx(s2_q8, rel=0.1)  # 6144 draws: ±1.8 % sd
    uniform, alpha = perplexity.plan(w, "uniform", 0.5), perplexity.plan(w, "alpha", 0.5)
    assert set(uniform) == set(w)
    np.testing.assert_allclose(list(uniform.values()), 0.5)
    assert np.mean(list(alpha.values())) == pytest.approx(0.5)  # equal parameter counts
    assert perplexity.max_change(uniform, alpha) == pytest.approx(
        max(abs(a - 0.5) for a in alpha.values())
    )


def test_block_matrices_of_a_llama_keep_the_seven_block_weights() -> None:
    from transformers import LlamaForCausalLM

    from _hf_models import tiny_config

    cfg = tiny_config("llama", vocab_size=64, hidden_size=32, intermediate_size=64)
    got = run.block_matrices(LlamaForCausalLM(cfg))
    assert len(got) == 14 and all(k.startswith("model.layers.") for k in got)
    assert got["model.layers.1.self_attn.k_proj.weight"].shape == (16, 32)
