"""Intra-layer analysis in a scan (``intra=True``): one row per pair of consecutive matrices.

The pairs follow the source's order, after the ``include``/``exclude``/``kinds`` selection:
module order for an ``nn.Module`` (the forward order of a sequential model), file order
for files (Hugging Face safetensors are usually sorted by name, which is not the forward
order: pass the module when the order matters). Each tensor is loaded once. See
:mod:`layerscope.functional.intra` for the product and its ESD.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from layerscope import metrics as registry
from layerscope import spectrum
from layerscope.adapters import LayerWeights
from layerscope.analysis import Analyser
from layerscope.functional import intra
from layerscope.matrices import MatrixPlan

Row = tuple[dict[str, Any], registry.LayerSpectra | None]
Matrix = tuple[LayerWeights, MatrixPlan, np.ndarray[Any, Any] | None]


def _matrices(work: list[tuple[LayerWeights, list[MatrixPlan]]]) -> Iterator[Matrix]:
    """Every planned matrix in order, as float64 (``None``: not one channel-mixing matrix)."""
    for layer, plans in work:
        tensor = layer.load()
        for plan in plans:
            # A depthwise kernel mixes no channels; a conv with kernel positions is several.
            single = plan.num_slices == 1 and plan.reading is None and "depthwise" not in plan.kind
            W = plan.extract(tensor)[0].detach().to(torch.float64).numpy() if single else None
            yield layer, plan, W


def pair_count(work: list[tuple[LayerWeights, list[MatrixPlan]]]) -> int:
    """Number of consecutive pairs (rows or skipped entries) ``intra_rows`` will produce."""
    return max(0, sum(len(plans) for _, plans in work) - 1)


def _skip(a: Matrix, b: Matrix) -> tuple[str, str, str] | None:
    """A skipped entry (name, shapes, reason) for a pair without a product, else ``None``."""
    (_, pa, W0), (_, pb, W1) = a, b
    name = f"{pa.name} x {pb.name}"
    if W0 is None or W1 is None:
        what = pa if W0 is None else pb
        return name, "", f"intra: {what.name} ({what.kind}) is not one channel-mixing matrix"
    if intra.align(W0, W1) is None:
        return name, f"{W0.shape} x {W1.shape}", "intra: no shared dimension"
    return None


def _pair_row(analyser: Analyser, a: Matrix, b: Matrix) -> Row:
    """The metrics row of a pair that has a product (see :func:`_skip`)."""
    (_, pa, W0), (lb, pb, W1) = a, b
    assert W0 is not None and W1 is not None  # checked by _skip
    X = intra.product(W0, W1)
    assert X is not None  # checked by _skip
    N, M = max(X.shape), min(X.shape)
    ident = {
        "name": f"{pa.name} x {pb.name}",
        "kind": "intra",
        "N": N,
        "M": M,
        "num_slices": 1,
        "param": pb.param,
        "dtype": lb.dtype,
    }
    evals = spectrum.eigenvalues(torch.from_numpy(X), "float64", analyser.device)
    sv = intra.singular_values(evals, intra.num_components(W0.shape, W1.shape))
    if not sv.any():
        return {**ident, "status": "all zeros"}, None
    spectra = registry.LayerSpectra(sv, N, M, fit_options=analyser.fit_options)
    row, _ = analyser.rate(spectra, analyser.specs)
    return {**ident, **row}, spectra


def intra_rows(
    work: list[tuple[LayerWeights, list[MatrixPlan]]],
    analyser: Analyser,
    skipped: list[tuple[str, str, str]],
) -> Iterator[list[Row]]:
    """Yield the row of each pair that has a product; append the others to ``skipped``."""
    previous: Matrix | None = None
    for current in _matrices(work):
        if previous is not None:
            skip = _skip(previous, current)
            if skip is None:
                yield [_pair_row(analyser, previous, current)]
            else:
                skipped.append(skip)
        previous = current
