"""``conv2d_fft``, the depthwise readings and ``intra`` against WeightWatcher 0.7.7, side by side.

Models: the small EfficientNet-Lite-like CNN trained in the test
(:func:`_ww_options.trained_cnn`: stem, depthwise, pointwise, 3×3 and head layers), a
small MLP trained in the test, and the real MiniLM (first encoder block).

* ``conv2d_fft="weightwatcher"`` must reproduce WeightWatcher's ``conv2d_fft=True`` on every
  layer of the CNN, depthwise ones included (WeightWatcher's FFT runs in float32, as numpy 2
  keeps float32 input in single precision, ours in float64: ~1e-7 relative).
* ``depthwise="slices"`` must reproduce WeightWatcher's default reading of a depthwise
  kernel; the default ``"matrix"`` reading is the C × kh·kw matrix of the filters, whose
  Gram matrix has the slices' eigenvalues (×2) on its diagonal.
* ``intra=True`` must reproduce ``intra=True, sparsify=False``. WeightWatcher multiplies the
  float32 weights in float32, so its singular values carry ~1e-7 relative error: tails
  are compared to 1e-5. Its default ``sparsify=True`` (a dense random 0/1 matrix
  between the layers, drawn from the global numpy RNG) is reproduced through
  :func:`layerscope.functional.intra.product` with the same draws.
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import _ww
import _ww_options
import layerscope
from layerscope.functional import intra, powerlaw
from reference._compare import Check, assert_close, compare_tables, report
from reference.test_ww_fit_options import MINILM_IDS


def _checks(tol: float, extra: tuple[str, ...] = ()) -> tuple[Check, ...]:
    """The compared columns: counts exactly, values within ``tol``."""
    counts = (Check("N"), Check("M"), Check("num_evals"), Check("num_pl_spikes"))
    absolute = ("alpha", "D", "log_norm", "entropy")
    values = tuple(
        Check(c, atol=tol) if c in absolute else Check(c, rtol=tol)
        for c in ("alpha", "xmin", "D", "lambda_max", "log_norm", *extra)
    )
    return counts + values


EXACT = _checks(1e-6)
# WeightWatcher's intra product is formed in float32.
INTRA = _checks(1e-5, ("stable_rank", "entropy"))
CNN_DEPTHWISE = ([3, 6], ("2.weight", "5.weight"))  # WeightWatcher ids, our names
# Every CNN layer but the 96→64 3×3 one (18,432 FFT eigenvalues: ~10 s in both tools).
CNN_FFT = ([1, 3, 4, 6, 7, 13], ("[0-7].weight", "12.weight"))
MINILM_BLOCK = (MINILM_IDS[2:], ("encoder.layer.0.",))


@pytest.fixture(scope="module")
def cnn() -> nn.Module:
    return _ww_options.trained_cnn()


@pytest.fixture(scope="module")
def mlp() -> nn.Module:
    """A 5-layer MLP trained briefly on a random teacher (every matrix side ≥ 24)."""
    gen = torch.Generator().manual_seed(1)
    torch.manual_seed(1)
    sizes = [48, 128, 96, 64, 32, 24]
    layers: list[nn.Module] = []
    for a, b in itertools.pairwise(sizes):
        layers += [nn.Linear(a, b), nn.ReLU()]
    model = nn.Sequential(*layers[:-1])
    x = torch.randn(256, 48, generator=gen)
    y = torch.tanh(x @ torch.randn(48, 24, generator=gen))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.mse_loss(model(x), y).backward()
        opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def minilm() -> tuple[nn.Module, str]:
    return _ww_options.load_minilm()


def _ok(result: layerscope.ScanResult) -> pd.DataFrame:
    layers = result.layers
    ok = layers[layers["status"] == "ok"].copy()
    ok["key"] = ok["name"].str.removesuffix(".weight")
    return ok


# WeightWatcher casts the complex FFT to float (its conv2d_fft keeps the real part).
@pytest.mark.filterwarnings("ignore::numpy.exceptions.ComplexWarning")
def test_conv2d_fft_matches_weightwatcher(cnn: nn.Module) -> None:
    ids, names = CNN_FFT
    ref = _ww.analyze(cnn, layers=ids, conv2d_fft=True)
    fft = layerscope.scan(cnn, include=names, conv2d_fft="weightwatcher", precision="float64")
    ours = _ok(fft)
    assert set(ours["kind"]) == {"conv2d-fft", "conv2d-depthwise-fft", "linear"}
    results = compare_tables(ours, ref, EXACT, ours_key="key", ref_key="longname")
    print(report(results, f"conv2d_fft: layerscope vs WeightWatcher ({len(ours)} layers)"))


def test_depthwise_readings(cnn: nn.Module) -> None:
    ids, names = CNN_DEPTHWISE
    ref = _ww.analyze(cnn, layers=ids)
    depthwise = ("conv2d-depthwise",)
    slices = layerscope.scan(
        cnn, kinds=depthwise, depthwise="slices", keep_spectra=True, precision="float64"
    )
    results = compare_tables(_ok(slices), ref, EXACT, ours_key="key", ref_key="longname")
    print(report(results, "depthwise='slices': layerscope vs WeightWatcher"))
    matrix = layerscope.scan(cnn, kinds=depthwise, keep_spectra=True, precision="float64")
    params = dict(cnn.named_parameters())
    for name in names:
        W = params[name].detach().double().reshape(params[name].shape[0], -1).numpy()
        gram = W.T @ W
        assert_close(matrix.spectra[name], np.linalg.eigvalsh(gram), rtol=1e-9, what=name)
        # WeightWatcher's k² one-column slices: ½·‖column‖², the Gram's diagonal.
        assert_close(slices.spectra[name], np.sort(0.5 * np.diag(gram)), rtol=1e-9, what=name)
    alphas = pd.DataFrame({"slices": _ok(slices)["alpha"].to_numpy()})
    alphas["matrix"] = _ok(matrix)["alpha"].to_numpy()
    assert not np.allclose(alphas["slices"], alphas["matrix"], rtol=1e-3)


def _pair_keys(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(key=[f"pair{i}" for i in range(len(frame))])


def _compare_intra(module: nn.Module, ids: list[int], **scan: Any) -> None:
    ref = _pair_keys(_ww.analyze(module, layers=ids, intra=True, sparsify=False))
    ours = _pair_keys(_ok(layerscope.scan(module, intra=True, precision="float64", **scan)))
    assert (ours["kind"] == "intra").all()
    results = compare_tables(ours, ref, INTRA, ours_key="key", ref_key="key")
    print(report(results, f"intra: layerscope vs WeightWatcher ({len(ours)} pairs)"))


def test_intra_matches_weightwatcher_on_mlp(mlp: nn.Module) -> None:
    _compare_intra(mlp, [])


def test_intra_matches_weightwatcher_on_minilm(minilm: tuple[nn.Module, str]) -> None:
    module, _ = minilm
    ids, names = MINILM_BLOCK
    _compare_intra(module, ids, include=names)


def test_sparsified_intra_reproduces_weightwatcher(mlp: nn.Module) -> None:
    """WeightWatcher's default ``sparsify=True``, rebuilt from the same global-RNG draws."""
    seed = 3
    ref = _ww.analyze(mlp, intra=True, seed=seed)
    weights = [p.detach().numpy() for n, p in mlp.named_parameters() if n.endswith("weight")]
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        rows = []
        for W0, W1 in itertools.pairwise(weights):
            k = intra.shared_dim(W0.shape, W1.shape)
            assert k is not None
            mask = np.random.randint(2, size=k * k).reshape(k, k)
            X = intra.product(W0, W1, mask=mask)
            assert X is not None
            sv = intra.singular_values(np.linalg.eigvalsh(X.T @ X), min(*W0.shape, *W1.shape))
            fit = powerlaw.fit_power_law(sv)
            rows.append({"alpha": fit.alpha, "lambda_max": sv[-1], "log_norm": np.log10(sv.sum())})
    finally:
        np.random.set_state(state)
    ours = pd.DataFrame(rows)
    assert len(ours) == len(ref)
    assert_close(ours["lambda_max"], ref["lambda_max"], rtol=1e-5, what="lambda_max")
    assert_close(ours["log_norm"], ref["log_norm"], atol=1e-5, what="log_norm")
    assert_close(ours["alpha"], ref["alpha"], atol=1e-4, what="alpha")


def test_conv2d_fft_leaves_a_model_without_conv2d_unchanged(minilm: tuple[nn.Module, str]) -> None:
    _, model_dir = minilm
    _, names = MINILM_BLOCK
    plain = layerscope.scan(model_dir, include=names).layers.drop(columns="reason")
    fft = layerscope.scan(model_dir, include=names, conv2d_fft="operator").layers
    pd.testing.assert_frame_equal(plain, fft.drop(columns="reason"))
