"""The stacked trainer of the capacity experiment against Hugging Face's GPT-2.

Reference: ``GPT2LMHeadModel`` itself, one model at a time: the stacked forward pass
must give its logits and loss, the stacked backward pass its gradients, and a stacked
AdamW step the step ``torch.optim.AdamW`` takes on the lone model.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from experiments.capacity import run as cap
from experiments.capacity import stacked


def _models(width: int = 64, layers: int = 2) -> list[torch.nn.Module]:
    cfgs = [cap.Config(layers=layers, width=width, vocab=16, seq_len=12, seed=s) for s in (0, 1, 2)]
    return [cap.build_model(c) for c in cfgs]


@pytest.mark.parametrize(("width", "layers"), [(64, 2), (16, 1)])  # 2 heads; 1 head
def test_logits_and_losses_are_those_of_gpt2(width: int, layers: int) -> None:
    models = _models(width, layers)
    params = stacked.stack(models)
    ids = torch.randint(0, 16, (3, 5, 12), generator=torch.Generator().manual_seed(0))
    heads = max(1, width // 32)
    out, losses = stacked.logits(params, ids, heads), stacked.losses(params, ids, heads)
    for k, model in enumerate(models):
        ref = model(ids[k], labels=ids[k])
        torch.testing.assert_close(out[k], ref.logits, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(losses[k], ref.loss, atol=1e-6, rtol=1e-6)


def test_each_model_gets_its_own_gradient() -> None:
    models = _models()
    params = stacked.stack(models)
    ids = torch.randint(0, 16, (3, 4, 12), generator=torch.Generator().manual_seed(1))
    stacked.losses(params, ids, 2).sum().backward()
    for k, model in enumerate(models):
        model(ids[k], labels=ids[k]).loss.backward()
        own = dict(model.named_parameters())
        for name, value in params.items():
            assert value.grad is not None and own[name].grad is not None
            torch.testing.assert_close(value.grad[k], own[name].grad, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize("max_norm", [0.05, 1e6])  # every model clipped; none
def test_clipping_is_torchs_clip_grad_norm_on_each_model(max_norm: float) -> None:
    models = _models()
    params = stacked.stack(models)
    ids = torch.randint(0, 16, (3, 4, 12), generator=torch.Generator().manual_seed(3))
    stacked.losses(params, ids, 2).sum().backward()
    norms = stacked.clip_grad_norms(params, max_norm)
    for k, model in enumerate(models):
        model(ids[k], labels=ids[k]).loss.backward()
        ref = torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm)
        torch.testing.assert_close(norms[k], ref, atol=1e-6, rtol=1e-5)
        own = dict(model.named_parameters())
        for name, value in params.items():
            assert value.grad is not None and own[name].grad is not None
            torch.testing.assert_close(value.grad[k], own[name].grad, atol=1e-7, rtol=1e-4)
    assert (norms > 0.05).all()  # so the small bound clips every model


def test_adamw_steps_leave_the_other_models_untouched() -> None:
    """Model 0 trained next to two others ends where it ends next to two different ones."""

    def trained(ids: torch.Tensor) -> dict[str, torch.Tensor]:
        params = stacked.stack(_models())
        opt = torch.optim.AdamW(params.values(), lr=1e-2, weight_decay=0.0)
        for _ in range(3):
            opt.zero_grad()
            stacked.losses(params, ids, 2).sum().backward()
            opt.step()
        return {n: v.detach()[0] for n, v in params.items()}

    # One thread: a threaded BLAS may split a product differently from run to run, and
    # AdamW turns last-bit noise in a near-zero gradient into a whole step.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    ids = torch.randint(0, 16, (3, 4, 12), generator=torch.Generator().manual_seed(1))
    other = ids.clone()
    other[1:] = torch.randint(0, 16, (2, 4, 12), generator=torch.Generator().manual_seed(2))
    try:
        first, second = trained(ids), trained(other)
    finally:
        torch.set_num_threads(threads)
    assert all(torch.equal(first[n], second[n]) for n in first)
    assert not torch.equal(first["transformer.wte.weight"], _models()[0].transformer.wte.weight)


def test_load_copies_one_model_back() -> None:
    models = _models(16, 1)
    params = stacked.stack(models)
    with torch.no_grad():
        for value in params.values():
            value.add_(1.0)
    copy = stacked.load(
        params, 2, cap.build_model(cap.Config(layers=1, width=16, vocab=16, seq_len=12))
    )
    own = dict(copy.named_parameters())
    assert all(torch.equal(own[n], v[2]) for n, v in params.items())
    assert len(own) == len(params)  # every trainable tensor is stacked (the head is tied)


def test_sample_draws_each_models_rows_uniformly() -> None:
    data = torch.arange(2 * 10).reshape(2, 10, 1).expand(2, 10, 3)  # row r of model k: 10k + r
    sizes = torch.tensor([4, 10])
    rows = stacked.sample(data, sizes, 20_000, torch.Generator().manual_seed(0))[:, :, 0]
    assert rows.shape == (2, 20_000)
    counts0 = torch.bincount(rows[0], minlength=20)
    assert counts0[4:].sum() == 0 and counts0[:4].min() > 4_700  # 5,000 expected each
    counts1 = torch.bincount(rows[1] - 10, minlength=10)
    assert counts1.min() > 1_800  # 2,000 expected each


def test_a_group_must_share_its_shape() -> None:
    with pytest.raises(ValueError, match="differ only in samples and seed"):
        cap.train_group([cap.Config(width=16), cap.Config(width=32)])
