"""Contract tests run over every entry of ``layerscope.metrics.REGISTRY``.

A new metric group is covered as soon as it is registered: on a few valid heavy-tailed
random matrices every column it declares is produced and finite, the row is the same
for W and Wᵀ, and its columns behave as declared in ``SCALING`` under W → c·W. A new
column that is missing from ``SCALING`` fails ``test_scaling`` with a message asking
for its declaration (scikit-learn's common checks do the same for estimator tags).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from functools import cache
from typing import Any

import numpy as np
import pytest
import torch

from layerscope import metrics, spectrum
from layerscope.metrics import REGISTRY, LayerSpectra, MetricSpec

# How each column responds to W → c·W (eigenvalues λ → c²λ):
#   "invariant"        unchanged
#   "c2"               multiplied by c²
#   "log10 c2"         shifted by log10(c²)
#   "alpha log10 c2"   shifted by alpha·log10(c²)
#   "absolute"         depends on an absolute threshold, not checked (weak_rank_loss
#                      counts λ ≤ 1e-6, a WeightWatcher convention)
SCALING: Mapping[str, str] = {
    "num_evals": "invariant",
    "rank_loss": "invariant",
    "weak_rank_loss": "absolute",
    "lambda_max": "c2",
    "alpha": "invariant",
    "xmin": "c2",
    "xmax": "c2",
    "D": "invariant",
    "sigma": "invariant",
    "num_pl_spikes": "invariant",
    "fit_quality": "invariant",
    "alpha_spread": "invariant",
    "norm": "c2",
    "log_norm": "log10 c2",
    "spectral_norm": "c2",
    "log_spectral_norm": "log10 c2",
    "stable_rank": "invariant",
    "matrix_rank": "invariant",
    "entropy": "invariant",
    "alpha_weighted": "alpha log10 c2",
    "log_alpha_norm": "alpha log10 c2",
    "num_spikes": "invariant",
    "sigma_mp": "invariant",
    "mp_softrank": "invariant",
    "bulk_min": "c2",
    "bulk_max": "c2",
    "detX_num": "invariant",
    "detX_val": "c2",
    "ERG_gap": "invariant",
    "num_traps": "invariant",
    "rand_sigma_mp": "invariant",
    "rand_bulk_max": "c2",
    "trap_scale": "invariant",
    "rand_distance": "invariant",
    # vectors: eigenvectors do not change under W -> c·W, and xmin scales with λ.
    **{
        f"{part}_{stat}_{m}": "invariant"
        for m in ("vec_entropy", "loc_ratio", "part_ratio")
        for part in ("bulk", "tail")
        for stat in ("mean", "var")
    },
    "alpha_farms": "invariant",
    "alpha_median": "invariant",
    "farms_D": "invariant",
    "farms_windows": "invariant",
    "farms_window": "invariant",
}
SCALES = (0.01, 4.0, 30.0)
RTOL = 1e-9


CASES = ("t3-Q2", "pareto-Q1.5", "t4-wide-small")


def _matrix(case: str) -> torch.Tensor:
    rng = np.random.default_rng(CASES.index(case))
    if case == "t3-Q2":
        values = rng.standard_t(3, (300, 150))
    elif case == "pareto-Q1.5":
        values = np.sign(rng.standard_normal((240, 160))) * (rng.pareto(2.5, (240, 160)) + 0.5)
    else:  # "t4-wide-small": stored wide, 60 eigenvalues (5 pooled shuffles)
        values = rng.standard_t(4, (60, 150))
    return torch.as_tensor(values, dtype=torch.float64)


@cache
def _spectra(case: str, transpose: bool = False, scale: float = 1.0) -> LayerSpectra:
    """LayerSpectra of c·W (or c·Wᵀ) with its shuffled spectra, as a scan builds them.

    The shuffled copies are drawn once from W and transformed along with it, so the
    transposed/scaled spectra are those of a valid shuffle of the transformed matrix.
    """
    W = _matrix(case)
    gen = torch.Generator().manual_seed(0)
    copies = 5 if min(W.shape) < 100 else 1
    shuffled = [spectrum.shuffle_entries(W[None], gen)[0] for _ in range(copies)]
    mats = [W, *shuffled]
    if transpose:
        mats = [m.T for m in mats]
    mats = [scale * m for m in mats]
    evals = [spectrum.eigenvalues(m) for m in mats]
    N, M = max(W.shape), min(W.shape)
    vec_evals, vecs = spectrum.eigenvectors(mats[0])
    pooled = np.sort(np.concatenate(evals[1:]))
    return LayerSpectra(
        evals[0],
        N,
        M,
        pooled,
        evals[1],
        vector_evals=vec_evals,
        vectors=vecs,
        matrix=mats[0][None].numpy(),
    )


def _row(spec: MetricSpec, spectra: LayerSpectra) -> dict[str, Any]:
    return metrics.compute_row(spectra, metrics.resolve([spec.name]))


def _same(a: Any, b: Any, rtol: float = RTOL) -> bool:
    if isinstance(a, str) or isinstance(b, str):
        return bool(a == b)
    return math.isclose(float(a), float(b), rel_tol=rtol, abs_tol=1e-12)


SPECS = [pytest.param(s, id=s.name) for s in REGISTRY]


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("spec", SPECS)
def test_columns_produced_and_finite(spec: MetricSpec, case: str) -> None:
    row = _row(spec, _spectra(case))
    missing = [c for c in spec.columns if c not in row]
    assert not missing, f"{spec.name} did not produce {missing}"
    for column, value in row.items():
        if isinstance(value, str):
            assert value, column
            continue
        assert np.isfinite(float(value)), f"{spec.name}: {column} = {value}"
    assert _row(spec, _spectra(case)) == row, "not deterministic"


@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("spec", SPECS)
def test_transpose_invariance(spec: MetricSpec, case: str) -> None:
    row = _row(spec, _spectra(case))
    row_t = _row(spec, _spectra(case, transpose=True))
    assert row.keys() == row_t.keys()
    differ = {c: (row[c], row_t[c]) for c in spec.columns if not _same(row[c], row_t[c])}
    assert not differ, f"{spec.name}: W and Wᵀ differ in {differ}"


def _expected_under_scaling(column: str, value: Any, row: Mapping[str, Any], c: float) -> Any:
    rule = SCALING[column]
    if rule == "invariant":
        return value
    if rule == "c2":
        return value * c * c
    if rule == "log10 c2":
        return value + 2.0 * math.log10(c)
    assert rule == "alpha log10 c2", rule
    return value + float(row["alpha"]) * 2.0 * math.log10(c)


@pytest.mark.parametrize("c", SCALES)
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("spec", SPECS)
def test_scaling(spec: MetricSpec, case: str, c: float) -> None:
    undeclared = [col for col in spec.columns if col not in SCALING]
    assert not undeclared, (
        f"declare how {undeclared} respond to W -> c·W in SCALING (tests/test_metrics_contract.py)"
    )
    row = _row(spec, _spectra(case))
    scaled = _row(spec, _spectra(case, scale=c))
    differ = {}
    for column in spec.columns:
        if SCALING[column] == "absolute":
            continue
        expected = _expected_under_scaling(column, row[column], row, c)
        if not _same(scaled[column], expected):
            differ[column] = {"unscaled": row[column], "expected": expected, "got": scaled[column]}
    assert not differ, f"{spec.name} under W -> {c}·W: {differ}"


def test_scaling_declares_only_registered_columns() -> None:
    registered = {c for s in REGISTRY for c in s.columns}
    assert set(SCALING) <= registered, set(SCALING) - registered
