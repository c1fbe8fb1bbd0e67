"""Scan results as plain data: a per-layer DataFrame, the skipped list, a summary.

Column names follow WeightWatcher's where the quantity is the same; every column is
documented in docs/metrics.md. Files are written atomically (temp file + rename), so
a crash never leaves a half-written result behind.
"""

from __future__ import annotations

import json
import math
import os
import stat
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

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


# Compact spectra kept for reports (``keep_spectra``): at most this many points per
# spectrum, plus the fitted tail (its largest SAMPLE_TAIL values), at SAMPLE_DIGITS
# significant digits.
SAMPLE_POINTS = 512
SAMPLE_TAIL = 1024
SAMPLE_DIGITS = 4


@dataclass(frozen=True)
class SpectrumSample:
    """A compact subsample of a sorted spectrum that keeps each value's rank.

    ``values[j]`` is the ``index[j]``-th smallest of ``n`` eigenvalues (0-based), so the
    empirical survival function P(λ ≥ values[j]) = (n − index[j]) / n is exact at every
    kept point. Spectra of up to ``SAMPLE_POINTS`` values are kept whole.
    """

    n: int
    index: NDArray[np.int64]
    values: NDArray[np.float64]

    @classmethod
    def of(
        cls, evals: ArrayLike, tail_from: float | None = None, points: int = SAMPLE_POINTS
    ) -> SpectrumSample:
        """Sample ``evals``: ``points/2`` evenly spaced ranks, ``points/2`` ranks log-spaced
        from the top (so the largest values are exact), and every value ≥ ``tail_from``
        (the fitted xmin; at most ``SAMPLE_TAIL`` of them)."""
        x = np.sort(np.asarray(evals, dtype=np.float64).ravel())
        n = x.size
        if n <= points:
            return cls(n, np.arange(n, dtype=np.int64), x)
        half = points // 2
        parts: list[NDArray[Any]] = [
            np.linspace(0, n - 1, half).round(),
            n - np.geomspace(1, n, half).round(),
        ]
        if tail_from is not None and math.isfinite(tail_from):
            start = max(int(np.searchsorted(x, tail_from, side="left")), n - SAMPLE_TAIL)
            parts.append(np.arange(start, n))
        idx = np.unique(np.concatenate(parts).astype(np.int64))
        return cls(n, idx, x[idx])

    def to_dict(self) -> dict[str, Any]:
        """``{"n", "values"[, "index"]}``; ``index`` is omitted when every value is kept."""
        out: dict[str, Any] = {
            "n": self.n,
            "values": [float(f"{v:.{SAMPLE_DIGITS}g}") for v in self.values],
        }
        if self.index.size != self.n:
            out["index"] = self.index.tolist()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SpectrumSample:
        """Inverse of :meth:`to_dict`; ValueError when the parts do not fit together."""
        n = int(data["n"])
        values = np.asarray(data["values"], dtype=np.float64)
        index = np.asarray(data.get("index", range(n)), dtype=np.int64)
        if index.shape != values.shape or (index.size and not 0 <= index.min() <= index.max() < n):
            raise ValueError(f"spectrum sample: {values.size} values, {index.size} ranks of {n}")
        return cls(n, index, values)


@dataclass(frozen=True)
class LayerSamples:
    """The kept spectra of one matrix: its eigenvalues and, with traps, the shuffled ones."""

    evals: SpectrumSample
    shuffled: SpectrumSample | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the kept spectrum, and the shuffled one when kept."""
        out = {"evals": self.evals.to_dict()}
        if self.shuffled is not None:
            out["shuffled"] = self.shuffled.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LayerSamples:
        """The inverse of :meth:`to_dict`."""
        shuffled = data.get("shuffled")
        return cls(
            SpectrumSample.from_dict(data["evals"]),
            None if shuffled is None else SpectrumSample.from_dict(shuffled),
        )


def _file_mode(target: Path) -> int:
    """Permissions of the file being replaced, else those of a new file (0o666 − umask);
    the temp file's own 0o600 would make every result private."""
    try:
        return stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        umask = os.umask(0o022)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write(path: str | os.PathLike[str], write: Callable[[BinaryIO], object]) -> None:
    """Write a file through ``write(handle)`` into a temp file, then rename over ``path``."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
        os.chmod(tmp, _file_mode(target))
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_value(v: Any) -> Any:
    """A JSON-ready scalar: numpy types to Python, NaN and ±inf to None."""
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


def dumps(data: Mapping[str, Any]) -> str:
    """JSON with two-space indents, except that each kept spectrum (``"spectra"``) is
    written on one line: thousands of numbers one per line would dwarf the table."""
    head = json.dumps({k: v for k, v in data.items() if k != "spectra"}, indent=2, default=str)
    spectra = data.get("spectra")
    if not spectra:
        return head
    lines = ",\n".join(
        f"    {json.dumps(name)}: {json.dumps(s, separators=(',', ':'))}"
        for name, s in spectra.items()
    )
    return f'{head[:-2]},\n  "spectra": {{\n{lines}\n  }}\n}}'


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


PREVIEW_CHARS = 200  # characters of a document kept in a saved result, for the reports


def preview(content: str | list[int]) -> str:
    """The start of a document for the reports: its text with whitespace collapsed, or
    its token ids separated by spaces."""
    text = content if isinstance(content, str) else " ".join(map(str, content))
    return " ".join(text.split())[:PREVIEW_CHARS]


def load_json(path: str | os.PathLike[str]) -> Any:
    """The parsed content of a saved result file; ``ValueError`` naming it if unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: not a readable JSON result ({exc})") from exc


def check_header(data: Any, kind: str, versions: tuple[int, ...], where: str) -> None:
    """A saved result's ``kind`` and ``schema_version``; ``ValueError`` naming ``where``."""
    article = "an" if kind[0] in "aeiou" else "a"
    if not isinstance(data, dict) or data.get("kind") != kind:
        found = data.get("kind") if isinstance(data, dict) else type(data).__name__
        raise ValueError(f"{where}: expected {article} {kind} result, found kind {found!r}")
    if data.get("schema_version") not in versions:
        raise ValueError(
            f"{where}: unsupported schema version {data.get('schema_version')!r} of "
            f"{article} {kind} result (this layerscope reads {versions})"
        )


class TableResult:
    """Shared writers of results whose main content is the ``layers`` table."""

    layers: pd.DataFrame

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the result (each result type defines it)."""
        raise NotImplementedError

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """Serialise to JSON; write atomically to ``path`` when given."""
        text = dumps(self.to_dict())
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
        spectra: eigenvalues per row name when the scan kept them (``keep_spectra``);
            in memory only.
        samples: compact spectra per row name (``keep_spectra``), for reports; written
            to JSON under ``"spectra"`` and read back (older files have none).
    """

    layers: pd.DataFrame
    skipped: pd.DataFrame
    summary: dict[str, Any]
    meta: dict[str, Any]
    spectra: dict[str, NDArray[np.float64]] = field(default_factory=dict, repr=False)
    samples: dict[str, LayerSamples] = field(default_factory=dict, repr=False)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: schema version, meta, summary, layers, skipped[, spectra]."""
        out = {
            "schema_version": SCHEMA_VERSION,
            "kind": "scan",
            "meta": self.meta,
            "summary": {k: json_value(v) for k, v in self.summary.items()},
            "layers": records(self.layers),
            "skipped": self.skipped.to_dict(orient="records"),
        }
        if self.samples:
            out["spectra"] = {name: s.to_dict() for name, s in self.samples.items()}
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ScanResult:
        """Inverse of :meth:`to_dict` (full ``spectra`` are not stored, ``samples`` are)."""
        layers = pd.DataFrame.from_records(list(data["layers"]))
        skipped = pd.DataFrame.from_records(list(data["skipped"]), columns=list(SKIPPED_COLUMNS))
        try:
            samples = {n: LayerSamples.from_dict(s) for n, s in data.get("spectra", {}).items()}
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed 'spectra' in scan result: {exc}") from exc
        return cls(layers, skipped, dict(data["summary"]), dict(data["meta"]), samples=samples)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> ScanResult:
        """Read a result written by :meth:`to_json`."""
        return cls.from_dict(read_json(path, "scan"))
