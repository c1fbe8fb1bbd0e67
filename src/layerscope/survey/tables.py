"""The survey's tables: one row per model and the per-layer table, and their files.

``models`` columns: identifiers (``key``, ``model``, ``family``, ``path``), ``status``
(``ok``/``error``) and ``error`` (one line), ``scan_s`` and ``peak_rss_mb`` (the
worker's peak memory so far), ``num_params``, the layer and verdict counts of
:func:`layerscope.results.summarize` (nullable integers: ``<NA>`` on error rows),
``<metric>_mean``/``_median``/``_std`` over the analysed layers, and the manifest's
``score_<name>`` columns. ``layers``: the scan's per-layer columns (docs/metrics.md)
after ``key``, ``model``, ``family``. Files: ``OUT`` holds ``models`` and ``OUT``'s
stem + ``.layers`` + suffix holds ``layers`` (``survey.parquet`` -> ``survey.layers.parquet``).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from layerscope.results import atomic_write
from layerscope.survey.sources import SCORE_PREFIX
from layerscope.survey.worker import ModelRecord

ID_COLUMNS = (
    "key",
    "model",
    "family",
    "path",
    "status",
    "error",
    "scan_s",
    "peak_rss_mb",
    "num_params",
)
# Columns that describe the run (engine, machine, load), not the model.
RUN_COLUMNS = ("scan_s", "peak_rss_mb")
# Counts: integers, empty (<NA>) on error rows rather than turning the column into floats.
COUNT_COLUMNS = ("num_params", "num_layers", "num_analysed", "num_failed")
COUNT_PREFIX = "count_"
TABLE_SUFFIXES = (".parquet", ".csv")


def model_frame(records: Sequence[ModelRecord]) -> pd.DataFrame:
    """Summary rows -> DataFrame: identifiers, counts and statistics, then scores."""
    frame = pd.DataFrame.from_records([r.summary for r in records])
    for column in ID_COLUMNS:
        if column not in frame:
            numeric = column in ("num_params", *RUN_COLUMNS)
            frame[column] = pd.Series(dtype="float64" if numeric else "object")
    frame = integer_counts(frame)
    scores = [c for c in frame.columns if str(c).startswith(SCORE_PREFIX)]
    rest = [c for c in frame.columns if c not in ID_COLUMNS and c not in scores]
    return frame[[*ID_COLUMNS, *rest, *scores]]


def integer_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """The count columns as nullable integers (``<NA>`` on error rows)."""
    counts = [c for c in frame.columns if c in COUNT_COLUMNS or str(c).startswith(COUNT_PREFIX)]
    return frame.astype(dict.fromkeys(counts, "Int64"))


def layer_frame(records: Sequence[ModelRecord]) -> pd.DataFrame:
    """Per-layer rows of every scanned model, with the model's name and family."""
    rows: list[dict[str, Any]] = []
    for record in records:
        ids = {"model": record.summary.get("model"), "family": record.summary.get("family")}
        rows.extend({**ids, **layer} for layer in record.layers)
    frame = pd.DataFrame.from_records(rows)
    if frame.empty:
        return pd.DataFrame(columns=["key", "model", "family"])
    front = ["key", "model", "family"]
    return frame[[*front, *(c for c in frame.columns if c not in front)]]


def family_labels(families: pd.Series) -> pd.Series:
    """Families as strings, ``""`` where unknown (a CSV round trip turns them into NaN)."""
    return families.astype("object").where(families.notna(), "").astype(str)


def layers_path(path: str | os.PathLike[str]) -> Path:
    """Where the per-layer table of a survey written to ``path`` goes."""
    p = Path(path)
    return p.with_name(f"{p.stem}.layers{p.suffix}")


@dataclass
class SurveyResult:
    """The result of :func:`layerscope.survey.survey`.

    Attributes:
        models: one row per model (see the module docstring).
        layers: one row per analysed matrix of every model that scanned.
        meta: sources, options, engine, timings, versions.
    """

    models: pd.DataFrame
    layers: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, records: Sequence[ModelRecord], meta: dict[str, Any]) -> SurveyResult:
        """The two tables of a survey from its per-model records."""
        return cls(model_frame(records), layer_frame(records), meta)

    def write(self, path: str | os.PathLike[str]) -> tuple[Path, Path]:
        """Write ``models`` to ``path`` and ``layers`` beside it (atomically, each);
        ``.parquet`` (needs pyarrow; the meta goes in its key-value metadata) or ``.csv``."""
        target = Path(path)
        suffix = target.suffix.lower()
        if suffix not in TABLE_SUFFIXES:
            raise ValueError(f"{path}: a survey is written as .parquet or .csv")
        pairs = ((target, self.models), (layers_path(target), self.layers))
        for file, frame in pairs:
            if suffix == ".csv":
                _write_csv(file, frame)
            else:
                _write_parquet(file, frame, self.meta)
        return pairs[0][0], pairs[1][0]

    @classmethod
    def read(cls, path: str | os.PathLike[str]) -> SurveyResult:
        """Read a survey written by :meth:`write` (the per-layer file may be absent)."""
        target = Path(path)
        reader = pd.read_csv if target.suffix.lower() == ".csv" else pd.read_parquet
        try:
            models = reader(target)
        except (OSError, ValueError, ImportError) as exc:
            raise ValueError(f"{path}: not a readable survey table ({exc})") from exc
        if "status" not in models or "key" not in models:
            raise ValueError(f"{path}: not a survey table (no 'key'/'status' columns)")
        models = integer_counts(models)  # a CSV reads empty counts back as floats
        side = layers_path(target)
        layers = reader(side) if side.exists() else pd.DataFrame()
        return cls(models, layers, _read_meta(target))


def _write_csv(file: Path, frame: pd.DataFrame) -> None:
    text = frame.to_csv(index=False).encode()
    atomic_write(file, lambda h: h.write(text))


def _write_parquet(file: Path, frame: pd.DataFrame, meta: dict[str, Any]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError as exc:
        msg = "parquet output needs pyarrow: pip install 'layerscope[parquet]'"
        raise ValueError(msg) from exc
    table = pa.Table.from_pandas(frame, preserve_index=False)
    extra = {b"layerscope": json.dumps(meta, default=str).encode()}
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **extra})
    atomic_write(file, lambda h: pq.write_table(table, h))


def _read_meta(path: Path) -> dict[str, Any]:
    if path.suffix.lower() != ".parquet":
        return {}
    import pyarrow.parquet as pq

    raw = (pq.read_schema(path).metadata or {}).get(b"layerscope")
    return dict(json.loads(raw)) if raw else {}
