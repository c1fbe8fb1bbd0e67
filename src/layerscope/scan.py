"""Orchestration: model source x metrics -> :class:`ScanResult`. Never prints.

Flow (docs/design.md): adapters yield lazily loaded tensors; ``matrices`` plans
which 2-D matrices each tensor yields (from names and shapes alone, so the skipped
list and the progress total are known before any data is read); each tensor is
loaded once, its matrices go through ``spectrum`` and the metric registry, and the
tensor is dropped. With ``jobs > 1`` tensors are processed by a thread pool (the
eigensolvers release the GIL) with a bounded number in flight, so memory stays
bounded by a few layers.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import torch

from layerscope import metrics as registry
from layerscope._version import __version__
from layerscope.adapters import LayerWeights, Source, open_source
from layerscope.analysis import Analyser
from layerscope.intra import forward_order, intra_rows, pair_count
from layerscope.matrices import MatrixPlan, Skipped, plan_matrices
from layerscope.options import ScanOptions
from layerscope.results import (
    ID_COLUMNS,
    SKIPPED_COLUMNS,
    STATUS_COLUMNS,
    LayerSamples,
    ScanResult,
    SpectrumSample,
    summarize,
)


@dataclass(frozen=True)
class ProgressEvent:
    """Sent to the ``progress`` callback after each analysed matrix."""

    done: int
    total: int
    name: str


def _matches(name: str, pattern: str) -> bool:
    if any(c in pattern for c in "*?["):
        return fnmatch.fnmatchcase(name, pattern)
    return pattern in name


def _selection_reason(plan: MatrixPlan, opts: ScanOptions) -> str | None:
    if opts.include and not any(_matches(plan.name, p) for p in opts.include):
        return "not selected (--include)"
    if any(_matches(plan.name, p) for p in opts.exclude):
        return "excluded (--exclude)"
    if opts.kinds and plan.kind not in opts.kinds and plan.kind.split("-")[0] not in opts.kinds:
        return f"kind {plan.kind} not selected (--kind)"
    if opts.min_size > plan.M:
        return f"smaller than --min-size {opts.min_size} (min dimension {plan.M})"
    return None


def _plan_source(
    source: Source, opts: ScanOptions
) -> tuple[list[tuple[LayerWeights, list[MatrixPlan]]], list[tuple[str, str, str]]]:
    work: list[tuple[LayerWeights, list[MatrixPlan]]] = []
    skipped: list[tuple[str, str, str]] = []
    for layer in source:
        planned = plan_matrices(layer, opts.readings)
        if isinstance(planned, Skipped):
            skipped.append((planned.name, str(tuple(planned.shape)), planned.reason))
            continue
        keep = []
        for plan in planned:
            reason = _selection_reason(plan, opts)
            if reason is None:
                keep.append(plan)
            else:
                skipped.append((plan.name, str((plan.N, plan.M)), reason))
        if keep:
            work.append((layer, keep))
    return work, skipped


def _run(
    work: list[tuple[LayerWeights, list[MatrixPlan]]], analyser: Analyser, jobs: int
) -> Iterator[list[tuple[dict[str, Any], Any]]]:
    """Yield each tensor's rows in source order, at most ``2·jobs`` tensors in flight."""
    if jobs == 1:
        for layer, plans in work:
            yield analyser.layer(layer, plans)
        return
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        pending: list[Future[list[tuple[dict[str, Any], Any]]]] = []
        for layer, plans in work:
            pending.append(pool.submit(analyser.layer, layer, plans))
            if len(pending) >= 2 * jobs:
                yield pending.pop(0).result()
        for fut in pending:
            yield fut.result()


def _frame(rows: Sequence[dict[str, Any]], specs: tuple[registry.MetricSpec, ...]) -> pd.DataFrame:
    columns = [*ID_COLUMNS, *STATUS_COLUMNS, *(c for s in specs for c in s.columns)]
    frame = pd.DataFrame.from_records(list(rows), columns=[c for c in columns if c != "layer_id"])
    frame.insert(0, "layer_id", range(len(frame)))
    return frame


def scan(
    source: Any,
    *,
    progress: Callable[[ProgressEvent], None] | None = None,
    **options: Any,
) -> ScanResult:
    """Analyse every weight matrix of a model from its weights alone.

    Args:
        source: ``torch.nn.Module``; state dict (mapping of names to tensors/arrays);
            path to a ``.safetensors``/``.pt``/``.pth``/``.bin`` file or a Hugging
            Face model directory (single or sharded).
        progress: called after each matrix with a :class:`ProgressEvent`.
        **options: fields of :class:`ScanOptions`: ``metrics`` (``"default"``,
            ``"all"`` or group names: esd, powerlaw, norms, mp, erg, traps, alpha_farms),
            ``include``/``exclude`` name patterns (glob, or substring), ``kinds``,
            ``min_size`` (min matrix dimension), ``seed`` (shuffles for traps), ``traps``
            (``"exact"``, or ``"fast"``: Lanczos + certified count, docs/fast_traps.md),
            ``device`` (cpu|cuda|auto), ``jobs`` (threads), ``precision``
            (auto|float64|float32; auto = float32 where verified accurate, see
            :mod:`layerscope.spectrum`), ``keep_spectra`` (eigenvalues in ``result.spectra``,
            compact samples for reports in ``result.samples``), ``allow_unsafe_pickle``,
            ``fit``/``fix_fingers`` (tail fit), ``conv2d_fft`` (``"operator"``: Conv2d
            kernels read as the convolution on ``fft_size``² inputs through their FFT;
            ``"weightwatcher"``: WeightWatcher 0.7.7's reading), ``depthwise``
            (``"matrix"``: one out × kh·kw matrix; ``"slices"``: WeightWatcher's kh·kw
            one-column slices), ``intra`` (rows for the products of consecutive matrices
            instead of the matrices, :mod:`layerscope.intra`).

    Returns:
        :class:`ScanResult`. Layers that cannot be analysed have ``status`` set to the
        reason; tensors that are not matrices or not selected are in ``skipped``.

    Raises:
        ValueError: invalid options; ``SourceError`` (a ValueError) for unreadable sources.
    """
    opts = ScanOptions.from_kwargs(**options)
    started = time.perf_counter()
    src = open_source(source, allow_unsafe_pickle=opts.allow_unsafe_pickle)
    work, skipped = _plan_source(src, opts)
    analyser = Analyser(opts)
    intra_order = None
    if opts.intra:
        work, reordered = forward_order(work)
        intra_order = "architecture" if reordered else "source"
        total, results_iter = pair_count(work), intra_rows(work, analyser, skipped)
    else:
        total, results_iter = sum(len(p) for _, p in work), _run(work, analyser, opts.jobs)
    rows: list[dict[str, Any]] = []
    spectra: dict[str, Any] = {}
    samples: dict[str, LayerSamples] = {}
    for results in results_iter:
        for row, kept in results:
            rows.append(row)
            if opts.keep_spectra and kept is not None:
                spectra[row["name"]] = kept.evals
                samples[row["name"]] = _samples(kept, row.get("xmin"))
            if progress is not None:
                progress(ProgressEvent(len(rows), total, row["name"]))
    layers = _frame(rows, analyser.specs)
    meta = {
        "source": src.description,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "layerscope_version": __version__,
        "torch_version": torch.__version__,
        "options": {k: v for k, v in asdict(opts).items() if k != "allow_unsafe_pickle"},
        "metric_groups": [s.name for s in analyser.specs],
        "device": str(analyser.device),
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    if intra_order is not None:  # how the pairs were ordered (layerscope.intra)
        meta["intra_order"] = intra_order
    skipped_frame = pd.DataFrame.from_records(skipped, columns=list(SKIPPED_COLUMNS))
    return ScanResult(layers, skipped_frame, summarize(layers), meta, spectra, samples)


def _samples(kept: registry.LayerSpectra, xmin: Any) -> LayerSamples:
    """Compact copies of a matrix's spectrum (full tail above ``xmin``) and shuffled one."""
    tail = float(xmin) if isinstance(xmin, int | float) else None
    shuffled = None if kept.shuffled is None else SpectrumSample.of(kept.shuffled)
    return LayerSamples(SpectrumSample.of(kept.evals, tail), shuffled)


__all__ = ["ProgressEvent", "ScanOptions", "scan"]
