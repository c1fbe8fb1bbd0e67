"""``survey()``: many models -> one summary row per model and the per-layer table.

Orchestration only: sources are expanded (:mod:`.sources`), each model is scanned by
:func:`layerscope.scan` in an engine's worker (:mod:`.engines`, :mod:`.worker`), and
every finished model is committed to the store (:mod:`.store`) before the next is
reported, so the table can always be rebuilt from what finished. Never prints.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Generator, Sequence
from contextlib import closing
from dataclasses import asdict, dataclass
from typing import Any

from layerscope.options import ScanOptions
from layerscope.results import SCHEMA_VERSION
from layerscope.survey.engines import import_ray, run_local, run_ray
from layerscope.survey.sources import Job, expand_sources, job_key
from layerscope.survey.store import SurveyStore
from layerscope.survey.tables import SurveyResult
from layerscope.survey.worker import ModelRecord

ENGINES = ("local", "ray")


@dataclass(frozen=True)
class SurveyOptions:
    """Validated options of :func:`survey` (the scan options are a :class:`ScanOptions`)."""

    engine: str = "local"
    workers: int = 1
    address: str | None = None
    gpus: float = 0.0
    store: str | None = None
    retry_errors: bool = False

    def __post_init__(self) -> None:
        if self.engine not in ENGINES:
            raise ValueError(f"engine must be one of {', '.join(ENGINES)}, got {self.engine!r}")
        if self.workers < 1:
            raise ValueError(f"workers must be >= 1, got {self.workers}")
        if self.gpus < 0:
            raise ValueError(f"gpus must be >= 0, got {self.gpus}")
        if self.engine == "local" and (self.address is not None or self.gpus):
            raise ValueError("address and gpus apply to the ray engine only")


@dataclass(frozen=True)
class SurveyEvent:
    """Sent to the ``progress`` callback when a model finishes (and once at the start)."""

    done: int
    total: int
    failed: int
    resumed: int
    model: str
    status: str


def scan_kwargs(options: ScanOptions) -> dict[str, Any]:
    """The options each worker passes to ``scan`` (spectra are never kept)."""
    return {k: v for k, v in asdict(options).items() if k != "keep_spectra"}


def key_options(options: ScanOptions) -> dict[str, Any]:
    """The scan options that can change a result (thread count cannot)."""
    return {k: v for k, v in scan_kwargs(options).items() if k != "jobs"}


def _plan(
    sources: Sequence[str], scan_options: dict[str, Any]
) -> tuple[list[Job], list[str], ScanOptions]:
    if "keep_spectra" in scan_options:
        raise ValueError("keep_spectra is not a survey option (a survey keeps no spectra)")
    opts = ScanOptions.from_kwargs(**scan_options)
    if isinstance(sources, str | os.PathLike):
        sources = [str(sources)]
    jobs = expand_sources(list(sources))
    if not jobs:
        raise ValueError("no models to survey: give paths, globs or a manifest")
    keyed = key_options(opts)
    return jobs, [job_key(job, keyed) for job in jobs], opts


def survey(
    sources: Sequence[str] | str,
    *,
    engine: str = "local",
    workers: int = 1,
    address: str | None = None,
    gpus: float = 0.0,
    store: str | os.PathLike[str] | None = None,
    retry_errors: bool = False,
    progress: Callable[[SurveyEvent], None] | None = None,
    **scan_options: Any,
) -> SurveyResult:
    """Scan many models and return one summary row per model plus the per-layer table.

    Args:
        sources: model paths, globs (``zoo/**/*.safetensors``) and manifests
            (``.csv``/``.jsonl`` with ``path``, optional ``family``, ``model`` and numeric
            score columns; see :mod:`layerscope.survey.sources`).
        engine: ``"local"`` (worker processes here) or ``"ray"`` (``layerscope[ray]``).
        workers: models scanned at once (local); CPUs of a Ray cluster started here.
        address: Ray cluster to join (``"auto"`` or ``HOST:PORT``); default: the running
            Ray session, else a new local one.
        gpus: GPUs each Ray task requests (e.g. 1, or 0.25 to share one).
        store: SQLite file of finished models; a rerun with the same file skips every
            model already there with the same file identity and scan options.
        retry_errors: rescan models whose stored row is an error.
        progress: called with a :class:`SurveyEvent` as each model finishes.
        **scan_options: options of :func:`layerscope.scan` (metrics, include, ...).

    Returns:
        :class:`SurveyResult` with ``models`` (one row per source, in source order,
        ``status`` ``ok`` or ``error`` with a one-line ``error``) and ``layers``.

    Raises:
        ValueError: bad options or sources; a missing ``ray`` for ``engine="ray"``.
        KeyboardInterrupt: passed on; every model finished before it is in ``store``.
    """
    sopts = SurveyOptions(engine, workers, address, gpus, _str(store), retry_errors)
    jobs, keys, opts = _plan(sources, scan_options)
    if sopts.engine == "ray":
        import_ray()  # fail before any work when the extra is missing
    started = time.perf_counter()
    with SurveyStore(sopts.store or ":memory:") as db:
        skip = db.keys(("ok",) if retry_errors else ("ok", "error"))
        todo = [(j, k) for j, k in zip(jobs, keys, strict=True) if k not in skip]
        resumed = len(jobs) - len(todo)
        failed = len(db.keys(("error",)) & skip & set(keys))
        notify = progress or (lambda _event: None)
        notify(SurveyEvent(resumed, len(jobs), failed, resumed, "", "start"))
        done = resumed
        # closing(): on Ctrl-C (or an error in the callback) the engine stops its
        # workers now, not when the generator is garbage-collected.
        with closing(_engine(sopts, todo, scan_kwargs(opts))) as records:
            for record in records:
                db.put(record)
                done += 1
                failed += record.summary.get("status") != "ok"
                status = str(record.summary.get("status"))
                notify(SurveyEvent(done, len(jobs), failed, resumed, _name(record), status))
        meta = _meta(sopts, opts, sources, time.perf_counter() - started, resumed)
        return SurveyResult.of(db.get(keys), meta)


def collect(
    sources: Sequence[str] | str, store: str | os.PathLike[str], **scan_options: Any
) -> SurveyResult:
    """The survey table of the models of ``sources`` that ``store`` holds (no scanning),
    e.g. after an interrupted run."""
    jobs, keys, _ = _plan(sources, scan_options)
    with SurveyStore(store) as db:
        records = db.get(keys)
    return SurveyResult.of(records, {"partial": len(records) < len(jobs)})


def _engine(
    sopts: SurveyOptions, todo: list[tuple[Job, str]], options: dict[str, Any]
) -> Generator[ModelRecord, None, None]:
    if sopts.engine == "ray":
        return run_ray(todo, options, sopts.workers, sopts.address, sopts.gpus)
    return run_local(todo, options, sopts.workers)


def _name(record: ModelRecord) -> str:
    return str(record.summary.get("model", record.key))


def _str(path: str | os.PathLike[str] | None) -> str | None:
    return None if path is None else os.fspath(path)


def _meta(
    sopts: SurveyOptions, opts: ScanOptions, sources: Any, elapsed: float, resumed: int
) -> dict[str, Any]:
    from layerscope._version import __version__

    return {
        "schema_version": SCHEMA_VERSION,
        "kind": "survey",
        "sources": [str(sources)] if isinstance(sources, str) else [str(s) for s in sources],
        "survey_options": asdict(sopts),
        "scan_options": scan_kwargs(opts),
        "resumed": resumed,
        "elapsed_s": round(elapsed, 3),
        "layerscope_version": __version__,
    }


__all__ = ["SurveyEvent", "SurveyOptions", "collect", "survey"]
