"""Intra-layer analysis in a scan (``intra=True``): one row per pair of consecutive matrices.

The pairs follow the model's module order, after the ``include``/``exclude``/``kinds``
selection, as WeightWatcher pairs them: registration order for an ``nn.Module`` (the
forward order of a sequential model). Files are stored sorted by name (a Llama block reads
``mlp.down_proj, mlp.gate_proj, …, self_attn.v_proj``), so for a file or directory with a
Hugging Face ``config.json`` naming its ``architectures`` the order is taken from that
class built on the meta device (no memory, no weights; needs ``transformers``); without
one, file order is kept and :func:`forward_order` says so. Matrices with fewer than ``MIN_EVALS``
eigenvalues are left out of the chain, as WeightWatcher leaves out layers below its
``min_evals``. Each tensor is loaded once; pairs run one after another (``jobs`` is not
used). See :mod:`layerscope.functional.intra` for the product and its ESD.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import torch

from layerscope import metrics as registry
from layerscope import spectrum
from layerscope.adapters import LayerWeights
from layerscope.analysis import Analyser
from layerscope.functional import intra
from layerscope.matrices import MIN_EVALS, MatrixPlan

Row = tuple[dict[str, Any], registry.LayerSpectra | None]
Skip = tuple[str, str, str]
# A planned matrix and either its values (float64) or why it cannot be one side of a pair.
Matrix = tuple[LayerWeights, MatrixPlan, np.ndarray[Any, Any] | str]
Work = list[tuple[LayerWeights, list[MatrixPlan]]]


def _chain(work: Work, skipped: list[Skip]) -> Work:
    """``work`` without the matrices too small to analyse (listed in ``skipped``)."""
    out: Work = []
    for layer, plans in work:
        keep = [p for p in plans if p.M * p.num_slices >= MIN_EVALS]
        for p in plans:
            if p not in keep:
                reason = f"intra: too small: {p.M * p.num_slices} eigenvalues < {MIN_EVALS}"
                skipped.append((p.name, str((p.N, p.M)), reason))
        if keep:
            out.append((layer, keep))
    return out


def _load(layer: LayerWeights) -> torch.Tensor | str:
    try:
        return layer.load()
    except (ValueError, RuntimeError, OSError) as exc:
        return f"corrupt tensor: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"


def _matrices(work: Work) -> Iterator[Matrix]:
    """Every planned matrix in order, as float64, or why it is not one channel-mixing matrix."""
    for layer, plans in work:
        tensor = _load(layer)
        for plan in plans:
            # A depthwise kernel mixes no channels; a conv with kernel positions is several.
            if plan.num_slices != 1 or plan.reading is not None or "depthwise" in plan.kind:
                yield layer, plan, f"{plan.name} ({plan.kind}) is not one channel-mixing matrix"
            elif isinstance(tensor, str):
                yield layer, plan, f"{plan.name}: {tensor}"
            else:
                yield layer, plan, plan.extract(tensor)[0].detach().to(torch.float64).numpy()


def _skip(a: Matrix, b: Matrix) -> Skip | None:
    """A skipped entry (name, shapes, reason) for a pair without a product, else ``None``."""
    (_, pa, W0), (_, pb, W1) = a, b
    name = f"{pa.name} x {pb.name}"
    if isinstance(W0, str) or isinstance(W1, str):
        return name, "", f"intra: {W0 if isinstance(W0, str) else W1}"
    if intra.align(W0, W1) is None:
        return name, f"{W0.shape} x {W1.shape}", "intra: no shared dimension"
    return None


def _pair_row(analyser: Analyser, a: Matrix, b: Matrix) -> Row:
    """The metrics row of a pair that has a product (see :func:`_skip`)."""
    (_, pa, W0), (lb, pb, W1) = a, b
    assert not isinstance(W0, str) and not isinstance(W1, str)  # checked by _skip
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
    try:
        evals = spectrum.eigenvalues(torch.from_numpy(X), "float64", analyser.device)
    except spectrum.NonFiniteError as exc:
        return {**ident, "status": str(exc)}, None
    sv = intra.singular_values(evals, intra.num_components(W0.shape, W1.shape))
    if not sv.any():
        return {**ident, "status": "all zeros"}, None
    spectra = registry.LayerSpectra(sv, N, M, fit_options=analyser.fit_options)
    row, _ = analyser.rate(spectra, analyser.specs)
    return {**ident, **row}, spectra


def pair_count(work: Work) -> int:
    """Number of consecutive pairs: an upper bound on the rows (some pairs are skipped)."""
    sizes = [p.M * p.num_slices for _, plans in work for p in plans]
    return max(0, sum(size >= MIN_EVALS for size in sizes) - 1)


def _module_order(config: Mapping[str, Any]) -> list[str] | None:
    """Parameter names of the config's first architecture in registration order, or None."""
    arch = (config.get("architectures") or [None])[0]
    try:
        import transformers

        cls = getattr(transformers, str(arch))
        cfg = transformers.AutoConfig.for_model(**dict(config))
        with torch.device("meta"):
            model = cls(cfg)
    except Exception:  # no transformers, unknown class or config: keep the file order
        return None
    return [name for name, _ in model.named_parameters(remove_duplicate=False)]


def forward_order(work: Work) -> tuple[Work, bool]:
    """``work`` in the module order of its Hugging Face architecture (module docstring),
    and whether that order was found; names the architecture lacks keep their place."""
    config = next((layer.config for layer, _ in work if layer.config), None)
    order = _module_order(config) if config else None
    if not order:
        return work, False
    index = {name: i for i, name in enumerate(order)}
    known = [index.get(layer.name) for layer, _ in work]
    if sum(i is not None for i in known) < len(work) / 2:  # another naming: do not guess
        return work, False
    # unknown names stay right after the known name before them
    keys, last = [], -1
    for pos, i in enumerate(known):
        last = i if i is not None else last
        keys.append((last, i is None, pos))
    return [w for _, w in sorted(zip(keys, work, strict=True), key=lambda kw: kw[0])], True


def intra_rows(work: Work, analyser: Analyser, skipped: list[Skip]) -> Iterator[list[Row]]:
    """Yield the row of each pair that has a product; append the others to ``skipped``."""
    previous: Matrix | None = None
    for current in _matrices(_chain(work, skipped)):
        if previous is not None:
            skip = _skip(previous, current)
            if skip is None:
                yield [_pair_row(analyser, previous, current)]
            else:
                skipped.append(skip)
        previous = current
