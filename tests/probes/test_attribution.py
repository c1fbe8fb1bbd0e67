"""SELECT attribution: the sketch against exact inner products, the greedy step against
brute force, the LoRA delta against PEFT's merged weights, and planted fine-tunes
whose training documents are known."""

from __future__ import annotations

import copy
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from layerscope.adapters.base import LayerWeights
from layerscope.probes._sketch import CountSketch
from layerscope.probes.attribution import (
    aligned_select,
    attribute,
    delta_from_lora,
    delta_from_weights,
    document_gradients,
    greedy_select,
    tangent_part,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import _attribution_fixtures as fx


def test_sketch_is_unbiased_with_the_jl_variance_and_order_free() -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(5000, generator=gen, dtype=torch.float64)
    y = 0.3 * x + torch.randn(5000, generator=gen, dtype=torch.float64)
    dim, seeds = 64, 300
    est = np.array(
        [
            float(CountSketch(dim, s).project([("x", x)]) @ CountSketch(dim, s).project([("x", y)]))
            for s in range(seeds)
        ]
    )
    exact = float(x @ y)
    bound = 2 * float(x @ x) * float(y @ y) / dim  # Var ≤ 2‖x‖²‖y‖²/dim
    assert abs(est.mean() - exact) < 4 * np.sqrt(bound / seeds)
    assert est.var() < 1.2 * bound
    a, b = torch.ones(3, 4), torch.arange(5.0)
    sketch = CountSketch(16, 7)
    torch.testing.assert_close(
        sketch.project([("a", a), ("b", b)]), CountSketch(16, 7).project([("b", b), ("a", a)])
    )


def _greedy_naive(g: np.ndarray, t: np.ndarray, k: int) -> list[int]:
    picked: list[int] = []
    for _ in range(k):
        best, best_cos = -1, -np.inf
        for i in range(len(g)):
            if i in picked:
                continue
            s = g[[*picked, i]].sum(axis=0)
            cos = s @ t / np.linalg.norm(s)
            if cos > best_cos:
                best, best_cos = i, cos
        picked.append(best)
    return picked


@pytest.mark.parametrize(
    ("select", "with_duplicate"),
    # The greedy order skips a duplicate of the best document (it adds no coverage) for the
    # complementary one; the alignment order takes the duplicate second.
    [(greedy_select, [0, 2]), (aligned_select, [0, 1])],
    ids=["greedy", "alignment"],
)
def test_selection_order_and_its_coverage(select: Any, with_duplicate: list[int]) -> None:
    rng = np.random.default_rng(0)
    g = rng.normal(size=(30, 8))
    g /= np.linalg.norm(g, axis=1, keepdims=True)
    t = rng.normal(size=8)
    t /= np.linalg.norm(t)
    order, coverage = select(torch.from_numpy(g), torch.from_numpy(t), 6)
    expected = _greedy_naive(g, t, 6) if select is greedy_select else np.argsort(-(g @ t))[:6]
    assert order.tolist() == list(expected)
    s = np.cumsum(g[order], axis=0)
    np.testing.assert_allclose(coverage, s @ t / np.linalg.norm(s, axis=1), rtol=1e-12)
    e1, e2 = np.eye(3)[0], np.eye(3)[1]
    rows = np.stack([e1, e1, 0.8 * e2 + 0.6 * np.eye(3)[2]])
    order, _ = select(torch.from_numpy(rows), torch.from_numpy((e1 + e2) / np.sqrt(2)), 2)
    assert order.tolist() == with_duplicate


def test_attribute_order_option_selects_by_alignment() -> None:
    docs = fx.documents()
    base = fx.tiny_gpt2()
    tuned = fx.finetune(base, docs[list(fx.TRUE)])
    delta = fx.delta(base, tuned)
    result = attribute(base, delta, list(docs), top=6, projection_dim=512, order="alignment")
    assert result.selected.tolist() == np.argsort(-result.alignment)[:6].tolist()
    assert result.meta["order"] == "alignment"
    assert attribute(base, delta, list(docs), top=6, projection_dim=512).meta["order"] == "greedy"
    with pytest.raises(ValueError, match="order must be one of"):
        attribute(base, delta, list(docs), order="best")


def test_planted_sgd_finetune_ranks_the_training_documents_first() -> None:
    docs = fx.documents()
    base = fx.tiny_gpt2()
    tuned = fx.finetune(base, docs[list(fx.TRUE)])
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    result = attribute(base, fx.delta(base, tuned), list(docs), top=4, projection_dim=512)
    assert set(result.selected.tolist()) == set(fx.TRUE)
    others = np.delete(result.alignment, list(fx.TRUE))
    assert result.alignment[list(fx.TRUE)].min() > others.max()
    assert np.all(np.diff(result.coverage) > 0)  # each planted document adds coverage
    frame = result.to_frame()
    assert frame["rank"].tolist() == [1, 2, 3, 4] and set(frame["id"]) == {str(i) for i in fx.TRUE}
    for n, p in base.named_parameters():
        torch.testing.assert_close(p.detach(), before[n], rtol=0, atol=0)


def test_synthetic_checkpoints_sum_gradients_on_the_line_base_to_tuned() -> None:
    docs = list(fx.documents()[:5])
    base = fx.tiny_gpt2()
    delta = fx.delta(base, fx.finetune(base, fx.documents()[:2], steps=3))
    before = {n: p.detach().clone() for n, p in base.named_parameters()}
    got = document_gradients(base, docs, delta, CountSketch(32), checkpoints=3)
    expect = torch.zeros_like(got)
    for c in range(3):
        moved = copy.deepcopy(base)
        with torch.no_grad():
            for n, p in moved.named_parameters():
                p.add_(c / 3 * delta[n])
        for i, x in enumerate(docs):
            moved.zero_grad()
            moved(x[None], labels=x[None]).loss.backward()
            grads = [(n, p.grad) for n, p in moved.named_parameters() if n in delta]
            expect[i] += CountSketch(32).project(grads)
    torch.testing.assert_close(got, expect, rtol=1e-4, atol=1e-8)
    for n, p in base.named_parameters():  # the checkpoints leave the base model as it was
        torch.testing.assert_close(p.detach(), before[n], rtol=0, atol=0)


def test_planted_adam_finetune_puts_the_training_documents_in_the_top_fifth() -> None:
    docs = fx.documents()
    base = fx.tiny_gpt2()
    tuned = fx.finetune(base, docs[list(fx.TRUE)], adam=True)
    result = attribute(base, fx.delta(base, tuned), list(docs), top=8, projection_dim=512)
    ranked = np.argsort(-result.alignment)[:8]
    assert set(fx.TRUE) <= set(ranked.tolist())  # random: 0.8 of them expected


def _lora(base: object, tmp_path: Path) -> tuple[object, Path]:
    peft = pytest.importorskip("peft")
    config = peft.LoraConfig(
        r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True
    )
    model = peft.get_peft_model(fx.finetune(base, fx.documents()[:0], steps=0), config)
    return model, tmp_path / "adapter"


def test_lora_delta_matches_peft_merged_weights(tmp_path: Path) -> None:
    from layerscope.adapters.peft import open_lora

    base = fx.tiny_gpt2()
    model, where = _lora(base, tmp_path)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.1, generator=torch.Generator().manual_seed(len(n)))
    model.save_pretrained(where)
    delta, tangents = delta_from_lora(base, open_lora(where), fan_in_fan_out=True, where="a")
    merged = dict(model.merge_and_unload().named_parameters())
    expect = {n: merged[n].detach() - p.detach() for n, p in base.named_parameters()}
    assert sorted(delta) == sorted(n for n, d in expect.items() if torch.any(d != 0))
    for name, d in delta.items():
        torch.testing.assert_close(d, expect[name], rtol=1e-5, atol=1e-6)
        U, V = tangents[name]  # orthonormal bases of Δ's column and row spaces
        torch.testing.assert_close(U.T @ U, torch.eye(4), rtol=0, atol=1e-5)
        torch.testing.assert_close(U @ (U.T @ d) @ V @ V.T, d, rtol=1e-4, atol=1e-6)
        torch.testing.assert_close(tangent_part(d, (U, V)), d, rtol=1e-4, atol=1e-6)
        g = torch.randn(d.shape, generator=torch.Generator().manual_seed(0))
        t = tangent_part(g, (U, V))
        torch.testing.assert_close(tangent_part(t, (U, V)), t, rtol=1e-4, atol=1e-5)
        assert float((t * d).sum()) == pytest.approx(float((g * d).sum()), rel=1e-4)
        # Everything outside both spaces is removed.
        torch.testing.assert_close(
            tangent_part(g - U @ U.T @ g - g @ V @ V.T + U @ U.T @ g @ V @ V.T, (U, V)),
            torch.zeros_like(g),
            rtol=0,
            atol=1e-5,
        )


def test_planted_lora_finetune_ranks_the_training_documents_first(tmp_path: Path) -> None:
    from layerscope.adapters.peft import open_lora

    docs = fx.documents()
    base = fx.tiny_gpt2()
    model, where = _lora(base, tmp_path)
    tuned = fx.finetune(model, docs[list(fx.TRUE)], steps=15)
    tuned.save_pretrained(where)
    delta, tangents = delta_from_lora(base, open_lora(where), fan_in_fan_out=True, where="a")
    result = attribute(base, delta, list(docs), top=4, projection_dim=512, tangents=tangents)
    assert set(result.selected.tolist()) == set(fx.TRUE)


def _layer(name: str, tensor: torch.Tensor) -> LayerWeights:
    return LayerWeights(name, tuple(tensor.shape), "float32", lambda: tensor)


def test_bad_input_is_a_one_line_error() -> None:
    base = fx.tiny_gpt2()
    params = dict(base.named_parameters())
    same = [_layer(n, p.detach()) for n, p in params.items()]
    assert delta_from_weights(base, same) == {}
    name = "transformer.h.0.attn.c_attn.weight"
    wrong = [*same[:2], _layer(name, torch.zeros(3, 3))]
    with pytest.raises(ValueError, match=r"c_attn.weight has shape \(3, 3\), the base model"):
        delta_from_weights(base, wrong, where="tuned/")
    with pytest.raises(ValueError, match="lacks 1 base parameter"):
        delta_from_weights(base, [x for x in same if x.name != name])
    docs = list(fx.documents()[:3])
    one = {name: torch.ones_like(params[name])}
    with pytest.raises(ValueError, match="no candidate documents"):
        attribute(base, one, [])
    with pytest.raises(ValueError, match="fewer than 2 tokens"):
        attribute(base, one, [*docs, torch.tensor([5])])
    with pytest.raises(ValueError, match="equal the base weights"):
        attribute(base, {}, docs)
    with pytest.raises(ValueError, match="top must be >= 1"):
        attribute(base, one, docs, top=0)
