"""Scan results as plain data: a per-layer DataFrame, the skipped list, a summary.

Column names follow WeightWatcher's where the quantity is the same; every column is
documented in docs/metrics.md. Files are written atomically (temp file + rename), so
a crash never leaves a half-written result behind.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
from numpy.typing import NDArray

SCHEMA_VERSION = 1

ID_COLUMNS = ("layer_id", "name", "kind", "N", "M")
STATUS_COLUMNS = ("num_slices", "param", "dtype", "status", "verdict", "reason", "warning")
SKIPPED_COLUMNS = ("name", "shape", "reason")
# Model-level means reported in ``summary`` (over analysed layers).
SUMMARY_MEANS = (
    "alpha",
    "alpha_weighted",
    "log_norm",
    "log_spectral_norm",
    "stable_rank",
    "log_alpha_norm",
    "entropy",
    "mp_softrank",
    "num_traps",
    "ERG_gap",
)


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """Write a file through ``write(handle)`` into a temp file, then rename over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_value(v: Any) -> Any:
    if isinstance(v, float | np.floating):
        return None if not math.isfinite(float(v)) else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def summarize(layers: pd.DataFrame) -> dict[str, Any]:
    """Model-level summary: counts by verdict and means of the main metrics."""
    ok = layers[layers["status"] == "ok"] if "status" in layers else layers
    summary: dict[str, Any] = {
        "num_layers": len(layers),
        "num_analysed": len(ok),
        "num_failed": len(layers) - len(ok),
    }
    if "verdict" in ok:
        counts = ok["verdict"].value_counts()
        for v in ("ok", "under-trained", "over-trained", "traps"):
            summary[f"count_{v.replace('-', '_')}"] = int(counts.get(v, 0))
    if "fit_quality" in ok:
        summary["count_shaky_fits"] = int((ok["fit_quality"] != "good").sum())
    for col in SUMMARY_MEANS:
        if col in ok and len(ok):
            summary[col] = json_value(pd.to_numeric(ok[col], errors="coerce").mean())
    return summary


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """DataFrame rows as JSON-ready dicts (NaN/Inf -> None, numpy scalars -> Python)."""
    rows = frame.to_dict(orient="records")
    return [{str(k): json_value(v) for k, v in rec.items()} for rec in rows]


def read_json(path: str | os.PathLike[str], kind: str) -> dict[str, Any]:
    """Load a result file written by ``to_json`` and check its schema version and kind."""
    try:
        data: dict[str, Any] = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable layerscope JSON result ({exc})") from exc
    if data.get("schema_version") != SCHEMA_VERSION:
        raise ValueError(f"{path}: unsupported schema version {data.get('schema_version')!r}")
    if data.get("kind", "scan") != kind:
        raise ValueError(f"{path}: a {data.get('kind', 'scan')} result, expected a {kind} result")
    return data


class TableResult:
    """Shared writers of results whose main content is the ``layers`` table."""

    layers: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """Serialise to JSON; write atomically to ``path`` when given."""
        text = json.dumps(self.to_dict(), indent=2, default=str)
        if path is not None:
            atomic_write(path, lambda h: h.write(text.encode()))
        return text

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the per-matrix table as CSV (atomically)."""
        atomic_write(path, lambda h: h.write(self.layers.to_csv(index=False).encode()))

    def to_parquet(self, path: str | os.PathLike[str]) -> None:
        """Write the per-matrix table as Parquet (needs ``pyarrow``; atomically)."""
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            msg = "parquet output needs pyarrow: pip install 'layerscope[parquet]'"
            raise ValueError(msg) from exc
        atomic_write(path, lambda h: self.layers.to_parquet(h, index=False))


@dataclass
class ScanResult(TableResult):
    """The result of :func:`layerscope.scan`.

    Attributes:
        layers: one row per analysed matrix, identifier columns first.
        skipped: tensors not analysed (name, shape, reason).
        summary: model-level counts and means (see :func:`summarize`).
        meta: source, options, versions, timings.
        spectra: eigenvalues per row name when the scan kept them (``keep_spectra``).
    """

    layers: pd.DataFrame
    skipped: pd.DataFrame
    summary: dict[str, Any]
    meta: dict[str, Any]
    spectra: dict[str, NDArray[np.float64]] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: schema version, meta, summary, layers, skipped."""
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "scan",
            "meta": self.meta,
            "summary": {k: json_value(v) for k, v in self.summary.items()},
            "layers": records(self.layers),
            "skipped": self.skipped.to_dict(orient="records"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScanResult:
        """Inverse of :meth:`to_dict`."""
        layers = pd.DataFrame.from_records(list(data["layers"]))
        skipped = pd.DataFrame.from_records(list(data["skipped"]), columns=list(SKIPPED_COLUMNS))
        return cls(layers, skipped, dict(data["summary"]), dict(data["meta"]))

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> ScanResult:
        """Read a result written by :meth:`to_json`."""
        return cls.from_dict(read_json(path, "scan"))
