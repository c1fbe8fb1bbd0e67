"""The scan options ``conv2d_fft``, ``fft_size``, ``depthwise`` and ``intra``: wiring and errors.

The spectra themselves are checked elsewhere (tests/functional/test_conv_fft.py against
the operator written out as a matrix, tests/functional/test_intra.py against numpy,
tests/reference/test_ww_intra_fft.py against WeightWatcher 0.7.7); here a scan must hand
each kernel to the right function, pair the right matrices and reject what it cannot do.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import layerscope
from layerscope.cli import build_parser, main
from layerscope.cli._io import scan_options
from layerscope.functional import conv_fft, intra
from layerscope.options import ScanOptions
from reference._compare import assert_close


def _cnn() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3),
        nn.Conv2d(16, 16, 3, groups=16),  # depthwise
        nn.Conv2d(16, 24, 1),
        nn.Flatten(),
        nn.Linear(24, 40),
        nn.Linear(40, 30),
    )


def test_operator_reading_reaches_every_conv2d() -> None:
    model = _cnn()
    n = 6
    res = layerscope.scan(model, conv2d_fft="operator", fft_size=n, keep_spectra=True)
    layers = res.layers.set_index("name")
    params = {k: v.detach().double().numpy() for k, v in model.named_parameters()}
    for name in ("0.weight", "2.weight"):
        assert layers.loc[name, "kind"] == "conv2d-fft"
        assert_close(res.spectra[name], conv_fft.operator_eigenvalues(params[name], n), rtol=1e-12)
    plain = layerscope.scan(model, keep_spectra=True)
    # the depthwise kernel keeps its C × k² matrix reading; the linears are untouched
    assert layers.loc["1.weight", "kind"] == "conv2d-depthwise"
    for name in ("1.weight", "4.weight", "5.weight"):
        assert_close(res.spectra[name], plain.spectra[name], rtol=0.0)


def test_channels_last_kernel_is_permuted_before_the_fft() -> None:
    kernel = torch.randn(3, 3, 8, 12, generator=torch.Generator().manual_seed(1))
    res = layerscope.scan(
        {"conv.weight": kernel}, conv2d_fft="operator", fft_size=5, keep_spectra=True
    )
    ref = conv_fft.operator_eigenvalues(kernel.permute(3, 2, 0, 1).double().numpy(), 5)
    assert_close(res.spectra["conv.weight"], ref, rtol=1e-12)


def test_weightwatcher_reading_and_slices_reading() -> None:
    model = _cnn()
    res = layerscope.scan(model, conv2d_fft="weightwatcher", keep_spectra=True, precision="float64")
    W = dict(model.named_parameters())["0.weight"].detach().double().numpy()
    assert_close(res.spectra["0.weight"], conv_fft.weightwatcher_eigenvalues(W, 32), rtol=1e-12)
    slices = layerscope.scan(model, depthwise="slices", keep_spectra=True, precision="float64")
    D = dict(model.named_parameters())["1.weight"].detach().double().reshape(16, 9).numpy()
    assert_close(slices.spectra["1.weight"], np.sort(0.5 * (D**2).sum(axis=0)), rtol=1e-12)


def test_intra_pairs_consecutive_matrices_and_lists_the_rest() -> None:
    model = _cnn()
    res = layerscope.scan(model, intra=True, keep_spectra=True, precision="float64")
    # the 1×1 conv is a channel-mixing matrix; the 3×3 and depthwise kernels are not
    assert list(res.layers["name"]) == ["2.weight x 4.weight", "4.weight x 5.weight"]
    assert (res.layers["kind"] == "intra").all()
    skipped = res.skipped.set_index("name")["reason"]
    assert "0.weight (conv2d) is not one" in skipped["0.weight x 1.weight"]
    assert "1.weight (conv2d-depthwise) is not one" in skipped["1.weight x 2.weight"]
    W4, W5 = (model[i].weight.detach().double().numpy() for i in (4, 5))
    X = (W4.T @ W5.T) / (np.linalg.norm(W4) * np.linalg.norm(W5))
    ref = np.sort(np.linalg.svd(X, compute_uv=False))[-24:]
    assert_close(res.spectra["4.weight x 5.weight"], ref, rtol=1e-9)
    row = res.layers.set_index("name").loc["4.weight x 5.weight"]
    assert (row["N"], row["M"], row["num_evals"]) == (30, 24, 24)
    assert intra.num_components(W4.shape, W5.shape) == 24


def test_pairs_without_a_shared_dimension_are_listed() -> None:
    state = {"a.weight": torch.randn(20, 12), "b.weight": torch.randn(9, 11)}
    res = layerscope.scan(state, intra=True)
    assert res.layers.empty
    assert "no shared dimension" in res.skipped.set_index("name")["reason"]["a.weight x b.weight"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"conv2d_fft": "fast"}, "conv2d_fft must be"),
        ({"conv2d_fft": "operator", "fft_size": 0}, "fft_size must be"),
        ({"depthwise": "columns"}, "depthwise must be"),
        ({"intra": True, "conv2d_fft": "operator"}, "cannot be combined"),
        ({"intra": True, "metrics": "all"}, "does not support metric group(s) traps"),
        ({"conv2d_fft": "operator", "metrics": ("vectors",)}, "does not support"),
    ],
)
def test_invalid_reading_options_are_rejected(options: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        ScanOptions.from_kwargs(**options)


def test_compare_rejects_the_readings() -> None:
    model = _cnn()
    with pytest.raises(ValueError, match="compare supports neither"):
        layerscope.compare(model, model, intra=True)


def test_cli_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["scan", "m.safetensors", "--conv2d-fft", "operator", "--fft-size", "8"]
    options = scan_options(build_parser().parse_args([*argv, "--depthwise", "slices", "--intra"]))
    assert (options["conv2d_fft"], options["fft_size"]) == ("operator", 8)
    assert (options["depthwise"], options["intra"]) == ("slices", True)
    model_file = tmp_path / "m.safetensors"
    save_file({k: v.detach().contiguous() for k, v in _cnn().state_dict().items()}, model_file)
    argv[1] = str(model_file)
    assert main([*argv, "--format", "json", "-q"]) == 0
    layers = json.loads(capsys.readouterr().out)["layers"]
    assert {row["kind"] for row in layers} >= {"conv2d-fft", "linear"}
    assert main(["scan", str(model_file), "--intra", "--all", "-q"]) == 2
    assert "intra=True does not support" in capsys.readouterr().err


def test_intra_chain_leaves_out_small_and_corrupt_matrices() -> None:
    """Like WeightWatcher's min_evals, a 2-row matrix does not break the chain."""
    gen = torch.Generator().manual_seed(2)
    state = {
        "a.weight": torch.randn(20, 12, generator=gen),
        "tiny.weight": torch.randn(2, 20, generator=gen),
        "b.weight": torch.randn(16, 20, generator=gen),
        "c.weight": torch.full((9, 16), float("nan")),
    }
    res = layerscope.scan(state, intra=True)
    layers = res.layers.set_index("name")
    assert list(layers.index) == ["a.weight x b.weight", "b.weight x c.weight"]
    assert layers.loc["b.weight x c.weight", "status"] == "non-finite values (NaN/Inf)"
    assert "too small" in res.skipped.set_index("name")["reason"]["tiny.weight"]


def test_intra_on_a_saved_directory_pairs_in_module_order(tmp_path: Path) -> None:
    """A save_pretrained directory stores a Llama block sorted by name (mlp.down_proj
    first); the pairs must still be the module's consecutive matrices, as for the module."""
    from transformers import LlamaForCausalLM

    from _hf_models import tiny_config

    torch.manual_seed(0)
    model = LlamaForCausalLM(tiny_config("llama", num_hidden_layers=2)).eval()
    model.save_pretrained(tmp_path / "llama")
    on_dir = layerscope.scan(tmp_path / "llama", intra=True, precision="float64")
    on_module = layerscope.scan(model, intra=True, precision="float64")
    assert on_dir.meta["intra_order"] == "architecture"
    assert on_dir.layers["name"].tolist() == on_module.layers["name"].tolist()
    assert "model.layers.0.self_attn.q_proj.weight x model.layers.0.self_attn.k_proj.weight" in set(
        on_dir.layers["name"]
    )
    np.testing.assert_allclose(on_dir.layers["alpha"], on_module.layers["alpha"], rtol=1e-9)
    bare = {k: v for k, v in model.state_dict().items() if "layers.0" in k}
    assert layerscope.scan(bare, intra=True).meta["intra_order"] == "source"


@pytest.mark.parametrize("seed", [0, 1])
def test_operator_spectrum_of_a_random_kernel_is_marchenko_pastur(seed: int) -> None:
    """i.i.d. kernel: every frequency block is an i.i.d.-like out×in matrix, so no spikes."""
    kernel = torch.randn(64, 32, 3, 3, generator=torch.Generator().manual_seed(seed))
    res = layerscope.scan(
        {"c.weight": kernel}, conv2d_fft="operator", fft_size=8, metrics=("default", "traps")
    )
    row = res.layers.iloc[0]
    assert (row["num_evals"], row["num_spikes"], row["num_traps"]) == (64 * 32, 0, 0)
    assert row["verdict"] == "under-trained"
