"""``layerscope survey`` (many models -> tables) and ``layerscope correlate`` (metrics vs scores).

The library side is :mod:`layerscope.survey`; this module parses, shows progress and
prints. ``survey`` always keeps a store beside ``--out`` (``survey.parquet`` ->
``survey.db``): a rerun resumes, and Ctrl-C writes the table of what finished.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from layerscope.cli._io import UserError, check_html, html_report, scan_options, stdout
from layerscope.results import SCHEMA_VERSION, atomic_write, records

EXIT_INTERRUPTED = 130
TABLE_SUFFIXES = (".parquet", ".csv")


def add_survey_parser(
    sub: Any, add_scan_options: Callable[[argparse.ArgumentParser], None]
) -> None:
    """The ``survey`` and ``correlate`` sub-commands (``add_scan_options``: scan's flags)."""
    p = sub.add_parser("survey", help="scan many models into one table (resumable; local or Ray)")
    p.add_argument(
        "sources",
        nargs="+",
        metavar="SOURCE",
        help="model files/dirs, globs ('zoo/*.pt'), manifests (.csv/.jsonl: path, family, scores)",
    )
    p.add_argument(
        "--out",
        "-o",
        required=True,
        metavar="FILE",
        help="write the model table to FILE "
        "(.parquet or .csv); the per-layer table goes to FILE's stem + .layers + suffix",
    )
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="where models run")
    p.add_argument(
        "--workers", type=int, default=0, help="models scanned at once (default 0: one per core)"
    )
    p.add_argument("--address", help="Ray cluster to join: auto or HOST:PORT (--engine ray)")
    p.add_argument("--gpus", type=float, default=0.0, help="GPUs per Ray task (--engine ray)")
    p.add_argument("--store", metavar="DB", help="result store (default: FILE with .db)")
    p.add_argument("--retry-errors", action="store_true", help="rescan models that failed before")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or summary")
    add_scan_options(p)
    p.set_defaults(func=cmd_survey)
    p = sub.add_parser("correlate", help="rank correlations of survey metrics with model scores")
    p.add_argument("survey", help="survey table written by 'layerscope survey' (.parquet/.csv)")
    p.add_argument(
        "--scores",
        metavar="FILE",
        help="CSV with a path or model column and numeric scores "
        "(default: the score columns of the survey's manifest)",
    )
    p.add_argument(
        "--metric", action="append", default=[], help="correlate only this column; repeatable"
    )
    p.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples (0: none)")
    p.add_argument("--level", type=float, default=0.95, help="interval level (default 0.95)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed")
    p.add_argument("--top", type=int, default=10, help="rows shown per family and score")
    p.add_argument(
        "--out", "-o", metavar="FILE", help="write the full table to FILE (.csv/.parquet/.json)"
    )
    p.add_argument(
        "--html", metavar="FILE", help="also write a page: scatters of the top metrics, tables"
    )
    p.add_argument("--open", action="store_true", help="open the HTML page in a browser")
    p.add_argument("--quiet", "-q", action="store_true", help="no tables")
    p.set_defaults(func=cmd_correlate)


def _options(args: argparse.Namespace) -> dict[str, Any]:
    # Parallelism is across models; each scan runs single-threaded unless --jobs says so.
    options = scan_options(argparse.Namespace(**{**vars(args), "jobs": 1}))
    options["jobs"] = max(1, args.jobs)
    return options


def cmd_survey(args: argparse.Namespace) -> int:
    """``layerscope survey``: scan every source and write the two tables."""
    from layerscope.report.terminal_survey import render_survey
    from layerscope.survey import collect, survey

    out = Path(args.out)
    if out.suffix.lower() not in TABLE_SUFFIXES:
        raise UserError(f"--out {out}: a survey is written as .parquet or .csv")
    store = args.store or str(out.with_suffix(".db"))
    options = _options(args)
    workers = args.workers or os.cpu_count() or 1
    engine = {"engine": args.engine, "workers": workers, "store": store}
    engine.update(address=args.address, gpus=args.gpus)  # the local engine rejects them
    err = Console(stderr=True, soft_wrap=True)
    try:
        with _SurveyBar(err, args.quiet) as bar:
            result = survey(args.sources, progress=bar.update, **engine, **options)
    except KeyboardInterrupt:
        partial = collect(args.sources, store, **options)
        written = [str(p) for p in partial.write(out)]
        err.print(
            f"interrupted: wrote {len(partial.models)} finished models to {escape(written[0])}; "
            "rerun the same command to resume",
            highlight=False,
        )
        return EXIT_INTERRUPTED
    written = [str(p) for p in result.write(out)]
    if not args.quiet:
        render_survey(result, stdout(), written)
    return 0


class _SurveyBar:
    """A rich bar: models done/total, rate, ETA and failures (stderr, terminals only)."""

    def __init__(self, console: Console, quiet: bool) -> None:
        self._progress = Progress(
            TextColumn("[bold]survey"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]}"),
            TimeElapsedColumn(),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            TextColumn("[red]{task.fields[failed]}"),
            TextColumn("{task.description}"),
            console=console,
            transient=True,
            disable=quiet or not console.is_terminal,
        )
        self._task = self._progress.add_task("", total=None, rate="", failed="")
        self._start = time.perf_counter()
        self._resumed = 0

    def __enter__(self) -> _SurveyBar:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    def update(self, event: Any) -> None:
        if event.status == "start":
            self._resumed = event.resumed
            self._progress.reset(self._task, total=event.total, completed=event.done)
            return
        fresh = event.done - self._resumed
        rate = fresh / max(time.perf_counter() - self._start, 1e-9)
        self._progress.update(
            self._task,
            completed=event.done,
            description=event.model[-40:],
            rate=f"{rate:.2f} models/s",
            failed=f"{event.failed} failed" if event.failed else "",
        )


def cmd_correlate(args: argparse.Namespace) -> int:
    """``layerscope correlate``: which survey metric tracks the scores."""
    from layerscope.report.html.survey_view import correlation_html
    from layerscope.report.terminal_survey import render_correlation
    from layerscope.survey.correlate import correlate, join_scores
    from layerscope.survey.tables import SurveyResult

    if args.out and Path(args.out).suffix.lower() not in (*TABLE_SUFFIXES, ".json"):
        raise UserError(f"--out {args.out}: use .csv, .parquet or .json")
    check_html(args.html)
    models = SurveyResult.read(args.survey).models
    if args.scores:
        models = join_scores(models, _read_scores(Path(args.scores)), Path(args.scores).parent)
    result = correlate(
        models,
        metrics=args.metric or None,
        resamples=args.bootstrap,
        level=args.level,
        seed=args.seed,
    )
    if args.out:
        _write_correlation(Path(args.out), result.table, result.excluded)
    if not args.quiet:
        render_correlation(result, stdout(), args.top)
    title = f"layerscope correlate: {Path(args.survey).name}"
    html_report(args, lambda: correlation_html(models, result, title))
    return 0


def _read_scores(path: Path) -> pd.DataFrame:
    try:
        if path.suffix.lower() == ".jsonl":
            return pd.read_json(path, lines=True)
        return pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"--scores {path}: not a readable CSV/JSONL file ({exc})") from exc


def _write_correlation(path: Path, table: pd.DataFrame, excluded: pd.DataFrame) -> None:
    suffix = path.suffix.lower()
    if suffix == ".json":
        data = {
            "schema_version": SCHEMA_VERSION,
            "kind": "correlation",
            "table": records(table),
            "excluded": records(excluded),
        }
        text = json.dumps(data, indent=2).encode()
        atomic_write(path, lambda h: h.write(text))
    elif suffix == ".csv":
        csv = table.to_csv(index=False).encode()
        atomic_write(path, lambda h: h.write(csv))
    else:
        atomic_write(path, lambda h: table.to_parquet(h, index=False))
