"""One model of a survey: scan it with :func:`layerscope.scan` and summarise the layers.

This is what an engine runs in a worker (a pool process or a Ray task): plain data in
(a :class:`Job` and the scan options as a dict), plain data out (:class:`ModelRecord`),
so it pickles cheaply and the model itself never travels: the worker reads it from
its path.
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from layerscope.adapters import open_source
from layerscope.results import SUMMARY_MEANS, records, summarize
from layerscope.scan import scan
from layerscope.survey.sources import SCORE_PREFIX, Job

# Per-layer columns that identify a matrix rather than measure it.
_NOT_METRICS = frozenset({"layer_id", "N", "M", "num_slices"})
STATS = ("mean", "median", "std")


@dataclass(frozen=True)
class ModelRecord:
    """A scanned (or failed) model: its summary row and its per-layer rows."""

    key: str
    summary: dict[str, Any]
    layers: list[dict[str, Any]] = field(default_factory=list)


def job_row(job: Job, key: str) -> dict[str, Any]:
    """The identifier columns of a model's summary row."""
    row: dict[str, Any] = {"key": key, "model": job.model, "family": job.family, "path": job.path}
    row.update({SCORE_PREFIX + name: value for name, value in job.scores.items()})
    return row


def scan_one(job: Job, key: str, options: dict[str, Any]) -> ModelRecord:
    """Scan ``job.path`` with ``options``; any failure becomes an error row.

    Every exception is caught on purpose: a survey must outlive a corrupt file, an
    unsupported format or a model that runs the eigensolver out of memory, and the
    row keeps the reason (exception type and first line), not a sentinel value.
    """
    started = time.perf_counter()
    row = job_row(job, key)
    try:
        result = scan(job.path, **options)
        params = parameter_count(job.path, bool(options.get("allow_unsafe_pickle")))
    except Exception as exc:
        return error_record(job, key, reason(exc), time.perf_counter() - started)
    seconds = time.perf_counter() - started
    row.update(status="ok", error="", scan_s=seconds, peak_rss_mb=peak_rss_mb(), num_params=params)
    row.update(summary_stats(result.layers))
    layers = result.layers.copy()
    layers.insert(0, "key", key)
    return ModelRecord(key, row, records(layers))


def error_record(job: Job, key: str, why: str, seconds: float = math.nan) -> ModelRecord:
    """The summary row of a model that could not be scanned, with a one-line reason."""
    row = job_row(job, key)
    row.update(status="error", error=why, scan_s=seconds)
    return ModelRecord(key, row)


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB (NaN where unknown).

    In a worker this is the largest footprint of any model it scanned so far."""
    try:
        import resource
    except ImportError:  # Windows
        return math.nan
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 2**10  # bytes vs KiB


def reason(exc: BaseException) -> str:
    """``Type: first line of the message`` of an exception."""
    text = str(exc).strip()
    first = text.splitlines()[0] if text else ""
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__


def parameter_count(path: str, allow_unsafe_pickle: bool) -> int:
    """Number of stored parameters (tied copies counted once), from shapes alone."""
    source = open_source(path, allow_unsafe_pickle=allow_unsafe_pickle)
    return sum(math.prod(layer.shape) for layer in source if layer.tied_to is None)


def summary_stats(layers: pd.DataFrame) -> dict[str, Any]:
    """Layer counts, verdict counts and mean/median/std of every numeric metric.

    Statistics are over the analysed (``status == "ok"``) layers; ``std`` is the
    sample standard deviation (ddof = 1), NaN for a single layer.
    """
    out = summarize(layers)
    for name in SUMMARY_MEANS:
        out.pop(name, None)  # the plain means reappear as <metric>_mean
    ok = layers[layers["status"] == "ok"]
    for column in layers.columns:
        if column in _NOT_METRICS or not pd.api.types.is_numeric_dtype(layers[column]):
            continue
        values = pd.to_numeric(ok[column], errors="coerce").to_numpy(dtype=np.float64)
        values = values[np.isfinite(values)]
        out[f"{column}_mean"] = float(values.mean()) if values.size else math.nan
        out[f"{column}_median"] = float(np.median(values)) if values.size else math.nan
        out[f"{column}_std"] = float(values.std(ddof=1)) if values.size > 1 else math.nan
    return out
