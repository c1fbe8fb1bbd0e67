"""Tail-fit options (``fit="TPL"``, ``fix_fingers``) against independent references.

References: mpmath for Γ(s, z); the ``powerlaw`` package (2.0.0, which WeightWatcher
calls) for the TPL and peak-range fits; WeightWatcher's ``fit_clipped_powerlaw`` for
``clip_xmax``. Whole-model parity with WeightWatcher is in
tests/reference/test_ww_fit_options.py.
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import layerscope
from layerscope.cli import build_parser
from layerscope.cli._io import scan_options
from layerscope.functional import fingers, tpl
from layerscope.options import ScanOptions


def _spectrum(n: int, m: int, df: float, seed: int) -> np.ndarray:
    W = np.random.default_rng(seed).standard_t(df, size=(n, m))
    return np.sort(np.linalg.eigvalsh(W.T @ W))


@pytest.mark.parametrize("s", [-1.7, -1.0, -0.4, 0.0, 0.3, 0.9])
@pytest.mark.parametrize("z", [1e-4, 0.3, 5.0, 40.0])
def test_upper_gamma_matches_mpmath(s: float, z: float) -> None:
    mpmath = pytest.importorskip("mpmath")
    expected = float(mpmath.gammainc(s, z))
    assert float(tpl.upper_gamma(s, np.asarray(z))) == pytest.approx(expected, rel=1e-10)


@pytest.mark.parametrize(("df", "scale"), [(3.0, 1.0), (4.0, 0.05)])
def test_tpl_matches_powerlaw_package(df: float, scale: float) -> None:
    powerlaw = pytest.importorskip("powerlaw")
    x = _spectrum(150, 50, df, seed=int(df)) * scale**2
    ours = tpl.fit_truncated_power_law(x)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = powerlaw.Fit(x, verbose=False, xmin_distribution="truncated_power_law")
        dist = ref.truncated_power_law
    assert ours.xmin == ref.xmin
    assert ours.alpha == pytest.approx(dist.alpha, abs=1e-6)
    assert ours.Lambda == pytest.approx(dist.Lambda, rel=1e-6)
    assert pytest.approx(ref.D, abs=1e-9) == ours.D
    assert ours.num_pl_spikes == np.count_nonzero(x >= ref.xmin)


@pytest.mark.parametrize("intended", [False, True])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_peak_fit_matches_powerlaw_package(intended: bool, seed: int) -> None:
    powerlaw = pytest.importorskip("powerlaw")
    x = _spectrum(600, 200, 3.0 + seed, seed) * (0.05 if seed == 1 else 1.0)
    mode = "xmin_peak_intended" if intended else "xmin_peak"
    ours = fingers.fit_tail(x, 0.0, fingers.FitOptions("PL", mode))
    counts, edges = np.histogram(np.log10(x), bins=100)
    peak = 10 ** edges[np.argmax(counts)]
    low = 0.95 * peak if intended else np.log10(0.95 * peak)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ref = powerlaw.Fit(x, xmin=(low, 1.5 * peak), verbose=False)
    assert ours.xmin == ref.xmin
    assert ours.alpha == pytest.approx(ref.alpha, abs=1e-9)
    assert pytest.approx(ref.D, abs=1e-9) == ours.D
    assert ours.sigma == pytest.approx((ref.alpha - 1) / np.sqrt(ref.n), abs=1e-9)


def test_weightwatcher_peak_bound_is_a_log_value() -> None:
    """WeightWatcher's range starts at log10(0.95·peak), the intended one at 0.95·peak."""
    assert fingers.peak_range(50.0, intended=False) == (np.log10(47.5), 75.0)
    assert fingers.peak_range(50.0, intended=True) == (47.5, 75.0)


@pytest.mark.parametrize("fingers_added", [0, 3])
def test_clip_xmax_matches_weightwatcher(fingers_added: int) -> None:
    import _ww

    _, rmt_util, _ = _ww.import_ww()
    logging.getLogger("RMT_Util").setLevel(logging.ERROR)
    x = _spectrum(600, 200, 4.0, seed=7)
    x = np.concatenate([x, x[-1] * np.array([3.0, 5.0, 8.0])[:fingers_added]])
    ours = fingers.fit_tail(x, 0.0, fingers.FitOptions("PL", "clip_xmax"))
    with _ww.quiet_and_seeded():
        best, num_fingers, first = rmt_util.fit_clipped_powerlaw(x)
    assert ours.alpha == pytest.approx(best.alpha, abs=1e-9)
    assert ours.raw_alpha == pytest.approx(first.alpha, abs=1e-9)
    assert ours.num_fingers == num_fingers
    assert ours.xmax == best.xmax
    assert ours.num_pl_spikes == np.count_nonzero(x >= best.xmin)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"fit": "tpl"}, "fit must be one of PL, TPL"),
        ({"fix_fingers": "peak"}, "fix_fingers must be one of"),
        ({"fit": "TPL", "fix_fingers": "clip_xmax"}, "cannot be combined"),
    ],
)
def test_invalid_fit_options_are_rejected(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ScanOptions.from_kwargs(**options)


def test_scan_adds_the_fit_columns_only_when_asked() -> None:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 96), nn.Linear(96, 48))
    plain = layerscope.scan(model).layers
    clipped = layerscope.scan(model, fix_fingers="clip_xmax").layers
    assert "Lambda" not in plain.columns
    assert {"Lambda", "num_fingers", "raw_alpha"} <= set(clipped.columns)
    assert (clipped["raw_alpha"] == plain["alpha"]).all()


def test_cli_flags_reach_the_scan_options() -> None:
    args = build_parser().parse_args(
        ["scan", "m.safetensors", "--fit", "TPL", "--fix-fingers", "xmin_peak"]
    )
    options = scan_options(args)
    assert (options["fit"], options["fix_fingers"]) == ("TPL", "xmin_peak")
    assert ScanOptions.from_kwargs(**options).fit_options == fingers.FitOptions("TPL", "xmin_peak")
