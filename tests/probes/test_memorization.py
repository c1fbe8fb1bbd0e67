"""Memorized bits against closed forms: a fixed-distribution model, a bigram table,
the uniform reference, and Hugging Face's own causal-LM loss on a tiny GPT-2."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.special import log_softmax
from torch import nn

from _toy_lms import Unigram
from layerscope.probes import memorization
from layerscope.probes.memorization import memorized_bits
from layerscope.scan import ProgressEvent

V = 11


class Bigram(nn.Module):
    """p(x_t | x_<t) = softmax(table[x_{t-1}])[x_t]."""

    def __init__(self, table: torch.Tensor) -> None:
        super().__init__()
        self.table = nn.Parameter(table.clone())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.table[ids]


def _unigram_bits(w: np.ndarray, x: np.ndarray, first: int) -> float:
    logp = log_softmax(w) / math.log(2)
    return float(-logp[x[first:]].sum())


def _bigram_bits(table: np.ndarray, x: np.ndarray) -> float:
    logp = log_softmax(table, axis=1) / math.log(2)
    return float(-sum(logp[a, b] for a, b in itertools.pairwise(x)))


def test_unigram_model_against_uniform_reference_matches_the_closed_form() -> None:
    gen = torch.Generator().manual_seed(0)
    w = torch.randn(V, generator=gen, dtype=torch.float64) * 2
    data = torch.randint(0, V, (9, 7), generator=gen)
    data[0] = int(torch.argmax(w))  # a sample the model codes in fewer bits than uniform
    data[1] = int(torch.argmin(w))  # one it codes in more bits: clipped to 0
    result = memorized_bits(Unigram(w), data, batch_size=4)
    x = data.numpy()
    expect_model = [_unigram_bits(w.numpy(), row, 1) for row in x]
    np.testing.assert_allclose(result.model_bits, expect_model, rtol=1e-12)
    np.testing.assert_allclose(result.reference_bits, 6 * math.log2(V), rtol=1e-12)
    expect = np.maximum(0.0, 6 * math.log2(V) - np.array(expect_model))
    np.testing.assert_allclose(result.memorized_bits, expect, rtol=1e-12)
    assert result.memorized_bits[0] > 0 and result.memorized_bits[1] == 0
    assert result.total_bits == pytest.approx(expect.sum())
    assert result.bits_per_parameter == pytest.approx(expect.sum() / V)
    assert result.vocab_size == V and result.reference == "uniform"


def test_bos_scores_every_token() -> None:
    w = torch.linspace(-1, 1, V, dtype=torch.float64)
    data = torch.tensor([[1, 2, 3, 4], [5, 5, 5, 5]])
    result = memorized_bits(Unigram(w), data, bos_token_id=0)
    expect = [_unigram_bits(w.numpy(), row, 0) for row in data.numpy()]
    np.testing.assert_allclose(result.model_bits, expect, rtol=1e-12)
    np.testing.assert_allclose(result.reference_bits, 4 * math.log2(V), rtol=1e-12)
    assert result.scored_tokens.tolist() == [4, 4]


def test_bigram_model_against_a_bigram_reference_with_ragged_lengths() -> None:
    gen = torch.Generator().manual_seed(1)
    model_t = torch.randn(V, V, generator=gen, dtype=torch.float64) * 3
    ref_t = torch.randn(V, V, generator=gen, dtype=torch.float64)
    data = [torch.randint(0, V, (n,), generator=gen) for n in (5, 9, 5, 2, 9, 9, 5)]
    events: list[ProgressEvent] = []
    result = memorized_bits(
        Bigram(model_t), data, reference=Bigram(ref_t), batch_size=2, progress=events.append
    )
    m = [_bigram_bits(model_t.numpy(), x.numpy()) for x in data]
    r = [_bigram_bits(ref_t.numpy(), x.numpy()) for x in data]
    np.testing.assert_allclose(result.model_bits, m, rtol=1e-12)
    np.testing.assert_allclose(result.reference_bits, r, rtol=1e-12)
    np.testing.assert_allclose(result.memorized_bits, np.maximum(0, np.subtract(r, m)))
    assert result.scored_tokens.tolist() == [4, 8, 4, 1, 8, 8, 4]
    assert result.reference == "Bigram"
    assert events[-1].done == events[-1].total == 5  # lengths 2 | 5 5 | 5 | 9 9 | 9


@pytest.mark.parametrize("chunk", [1, 2 * 3 * V, 4 * 3 * V])  # 1, 2 and 4 positions
def test_chunked_cross_entropy_matches_the_closed_form(
    monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    # Chunks of at most `chunk` logits, 3 samples x V = 33 per position (at least one
    # position): 11 scored positions in chunks of 1, 2 or 4, the last one shorter.
    monkeypatch.setattr(memorization, "CHUNK_ELEMENTS", chunk)
    gen = torch.Generator().manual_seed(3)
    table = torch.randn(V, V, generator=gen, dtype=torch.float64) * 2
    data = torch.randint(0, V, (3, 10), generator=gen)
    result = memorized_bits(Bigram(table), data, bos_token_id=4)
    with_bos = torch.cat([torch.full((3, 1), 4), data], dim=1).numpy()
    expect = [_bigram_bits(table.numpy(), x) for x in with_bos]
    np.testing.assert_allclose(result.model_bits, expect, rtol=1e-12)


def _tiny_gpt2(vocab: int = 32, seed: int = 0) -> nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(seed)
    config = transformers.GPT2Config(
        vocab_size=vocab, n_positions=32, n_embd=16, n_layer=1, n_head=2
    )
    return transformers.GPT2LMHeadModel(config)


def test_transformers_gpt2_matches_its_own_causal_lm_loss() -> None:
    model = _tiny_gpt2()
    data = torch.randint(0, 32, (6, 12), generator=torch.Generator().manual_seed(2))
    result = memorized_bits(model, data, batch_size=4)
    model.eval()
    with torch.no_grad():
        hf = [float(model(x[None], labels=x[None]).loss) * 11 / math.log(2) for x in data]
    np.testing.assert_allclose(result.model_bits, hf, rtol=1e-5)
    assert result.num_parameters == sum(p.numel() for p in model.parameters())
    assert model.training is False  # the mode it had on entry is restored
    model.train()
    memorized_bits(model, data)
    assert model.training


def test_training_on_random_data_memorizes_bits_that_held_out_data_lacks() -> None:
    model = _tiny_gpt2(vocab=16, seed=3)
    gen = torch.Generator().manual_seed(3)
    train, held_out = torch.randint(0, 16, (8, 16), generator=gen), torch.randint(0, 16, (8, 16))
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        opt.zero_grad()
        model(train, labels=train).loss.backward()
        opt.step()
    seen, unseen = memorized_bits(model, train), memorized_bits(model, held_out)
    assert seen.total_bits > 0.5 * 8 * 15 * 4  # more than half of the data's entropy
    assert seen.total_bits <= 8 * 15 * 4 + 1e-9
    assert unseen.total_bits < 0.1 * seen.total_bits


def test_bad_input_is_a_one_line_error() -> None:
    model = Unigram(torch.zeros(V))
    with pytest.raises(ValueError, match="no samples"):
        memorized_bits(model, [])
    with pytest.raises(ValueError, match="no token to score"):
        memorized_bits(model, [[1, 2], [3]])
    with pytest.raises(ValueError, match=r"expected \(samples, length\)"):
        memorized_bits(model, torch.zeros(2, 3, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="integer token ids"):
        memorized_bits(model, [np.array([0.5, 1.0])])
    with pytest.raises(ValueError, match=r"'uniform' or an nn\.Module"):
        memorized_bits(model, [[1, 2]], reference="zipf")
    with pytest.raises(ValueError, match="vocabulary of 5 tokens"):
        memorized_bits(model, [[1, 2]], reference=Unigram(torch.zeros(5)))
