"""SOURCES -> survey jobs: model paths, globs and manifests (CSV or JSON Lines).

A manifest has a ``path`` column (relative paths are read from the manifest's folder),
an optional ``family`` and ``model`` (a display name), and any number of numeric
columns: those are scores (test accuracy, loss...) and become ``score_<name>``
columns of the survey table. A directory is one model (a Hugging Face model folder);
use a glob such as ``zoo/*.safetensors`` to survey the files in a folder.
"""

from __future__ import annotations

import glob
import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

MANIFEST_SUFFIXES = (".csv", ".jsonl")
SCORE_PREFIX = "score_"
_RESERVED = ("path", "family", "model")


@dataclass(frozen=True)
class Job:
    """One model to scan: where it is, its family and the scores known for it."""

    path: str
    family: str = ""
    model: str = ""
    scores: dict[str, float] = field(default_factory=dict, hash=False, compare=False)


def expand_sources(sources: list[str] | tuple[str, ...]) -> list[Job]:
    """Paths, globs and manifests -> jobs in the order given, duplicates dropped.

    Raises:
        ValueError: a glob matches nothing, or a manifest is unreadable or has no
            ``path`` column (one line naming the file).
    """
    jobs: list[Job] = []
    seen: set[str] = set()
    for source in sources:
        for job in _expand_one(str(source)):
            if job.path not in seen:
                seen.add(job.path)
                jobs.append(job)
    return jobs


def _expand_one(source: str) -> list[Job]:
    path = Path(source)
    if path.suffix.lower() in MANIFEST_SUFFIXES and path.is_file():
        return read_manifest(path)
    if any(c in source for c in "*?[") and not path.exists():
        matches = sorted(glob.glob(source, recursive=True))
        if not matches:
            raise ValueError(f"{source}: the pattern matches no file")
        return [_job(m) for m in matches]
    # A missing path still becomes a job: the survey reports it as an error row.
    return [_job(source)]


def _job(path: str | Path, family: str = "", model: str = "", **scores: float) -> Job:
    resolved = os.path.abspath(path)
    return Job(resolved, family, model or Path(resolved).name, dict(scores))


def read_manifest(path: Path) -> list[Job]:
    """Jobs from a CSV or JSON Lines manifest (see the module docstring)."""
    try:
        if path.suffix.lower() == ".csv":
            frame = pd.read_csv(path)
        else:
            frame = pd.read_json(path, lines=True)
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable manifest ({_first_line(exc)})") from exc
    if "path" not in frame.columns:
        raise ValueError(f"{path}: a manifest needs a 'path' column, found {list(frame.columns)}")
    scores = [
        c for c in frame.columns if c not in _RESERVED and pd.api.types.is_numeric_dtype(frame[c])
    ]
    jobs = []
    for rec in frame.to_dict(orient="records"):
        target = Path(str(rec["path"]))
        if not target.is_absolute():
            target = path.parent / target
        jobs.append(
            _job(
                target,
                _text(rec.get("family")),
                _text(rec.get("model")),
                **{c: float(rec[c]) for c in scores},
            )
        )
    return jobs


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def file_identity(path: str) -> list[Any]:
    """(size, mtime in ns) of a file; of every file under a directory, sorted by name.

    A rewritten checkpoint changes size or mtime, so its old result is not reused; a
    copied file with the same name, size and mtime is (content is not hashed: hashing
    every file of a large hub would cost as much I/O as scanning it).
    """
    p = Path(path)
    if p.is_file():
        st = p.stat()
        return [st.st_size, st.st_mtime_ns]
    if p.is_dir():
        return [
            [str(f.relative_to(p)), f.stat().st_size, f.stat().st_mtime_ns]
            for f in sorted(p.rglob("*"))
            if f.is_file()
        ]
    return ["missing"]


def job_key(job: Job, options: dict[str, Any]) -> str:
    """Store key of a job: SHA-1 of its path, file identity and the scan options."""
    payload = json.dumps([job.path, file_identity(job.path), options], sort_keys=True, default=str)
    return hashlib.sha1(payload.encode()).hexdigest()
