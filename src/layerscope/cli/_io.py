"""Shared pieces of the command line: sources, outputs, progress, gates, options."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from layerscope.gate import GateResult
from layerscope.results import TableResult
from layerscope.scan import ProgressEvent

FORMATS = ("table", "json", "csv", "parquet")
EXIT_GATE = 1
EXIT_USAGE = 2


class UserError(Exception):
    """An error in what the user asked for: printed as one line, exit code 2."""


def import_object(spec: str) -> Any:
    """``pkg.module:attr`` (``attr`` may be dotted) -> the object, not called."""
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise UserError(f"{spec}: expected a Python path pkg.module:name")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"{spec}: cannot import ({exc})") from exc
    return obj


def load_module_source(spec: str) -> Any:
    """``pkg.module:attr`` -> the object (called if callable and not a torch Module)."""
    obj = import_object(spec)
    import torch

    if callable(obj) and not isinstance(obj, torch.nn.Module):
        try:
            obj = obj()
        except TypeError as exc:
            raise UserError(f"{spec}: calling it without arguments failed ({exc})") from exc
    return obj


def resolve_source(arg: str) -> Any:
    if ":" in arg and not arg.startswith((".", "/")) and not Path(arg).exists():
        return load_module_source(arg)
    return existing_path(arg)


def existing_path(arg: str) -> str:
    """``arg`` if the file or directory exists; a one-line UserError otherwise."""
    if not Path(arg).exists():
        raise UserError(f"{arg}: no such file or directory")
    return arg


def file_format(args: argparse.Namespace, path: str) -> str:
    """Format of an ``--out`` file: its suffix, else ``--format`` if that names a file format."""
    suffix = Path(path).suffix.lstrip(".").lower()
    if suffix in FORMATS[1:]:
        return suffix
    if args.format and args.format != "table":
        return str(args.format)
    raise UserError(f"--out {path}: cannot infer the format; use .json/.csv/.parquet or --format")


def stdout() -> Console:
    # Piped output keeps full rows instead of folding to 80 columns.
    return Console(width=None if sys.stdout.isatty() else 220)


def emit(result: TableResult, args: argparse.Namespace, render: Callable[[Console], None]) -> None:
    """Write every ``--out`` (atomically) and print the table or the raw format to stdout."""
    for path in args.out:
        fmt_out = file_format(args, path)
        if fmt_out == "json":
            result.to_json(path)
        elif fmt_out == "csv":
            result.to_csv(path)
        else:
            result.to_parquet(path)
    fmt = args.format or "table"
    if fmt == "table" or args.out:
        if not args.quiet:
            render(stdout())
        return
    if fmt == "parquet":
        raise UserError("--format parquet needs --out FILE")
    sys.stdout.write(result.to_json() if fmt == "json" else result.layers.to_csv(index=False))


def with_progress(args: argparse.Namespace, label: str, work: Callable[..., Any]) -> Any:
    """Run ``work(progress=callback)`` under a transient rich progress bar on stderr."""
    err = Console(stderr=True, soft_wrap=True)
    columns = (
        TextColumn(f"[bold]{label}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    show = not args.quiet and err.is_terminal
    with Progress(*columns, console=err, transient=True, disable=not show) as bar:
        task = bar.add_task("", total=None)

        def on_progress(event: ProgressEvent) -> None:
            bar.update(task, total=event.total, completed=event.done, description=event.name[-60:])

        return work(progress=on_progress)


def rules(args: argparse.Namespace) -> list[str]:
    from layerscope.gate import load_policy, parse_rule

    rules = list(args.fail_on) + (load_policy(args.policy) if args.policy else [])
    for rule in rules:
        parse_rule(rule)  # a typo fails before the work, not after
    return rules


def gate(args: argparse.Namespace, rules: list[str], table: Any, counts: dict[str, int]) -> int:
    """Evaluate gate rules; print each check; exit code 1 if any fails."""
    return gate_exit(evaluate_gate(rules, table, counts))


def evaluate_gate(rules: list[str], table: Any, counts: dict[str, int]) -> GateResult | None:
    """The gate rules evaluated on a result table (``None`` without rules)."""
    if not rules:
        return None
    from layerscope.gate import check

    return check(table, rules, counts)


def gate_exit(result: GateResult | None) -> int:
    """Print each check of an evaluated gate; exit code 1 if any fails."""
    if result is None:
        return 0
    from layerscope.report.terminal import render_gate

    render_gate(result, Console(stderr=True, soft_wrap=True))
    return 0 if result.passed else EXIT_GATE


def html_report(args: argparse.Namespace, render: Callable[[], str]) -> None:
    """Write the page ``render()`` to ``--html FILE`` (atomically); ``--open`` opens it."""
    path = getattr(args, "html", None)
    if not path:
        return
    from layerscope.report.html import write_html

    write_html(path, render())
    err = Console(stderr=True, soft_wrap=True)
    if not getattr(args, "quiet", False):
        err.print(f"report written to {escape(str(path))}", highlight=False)
    if getattr(args, "open", False):
        open_in_browser(path, err)


def open_in_browser(path: str | Path, err: Console) -> None:
    """Open a file in the default browser; only a note when there is none (never fails)."""
    import webbrowser

    try:
        opened = webbrowser.open(Path(path).resolve().as_uri())
    except webbrowser.Error:
        opened = False
    if not opened:
        err.print(f"no browser found: open {escape(str(path))} yourself", highlight=False)


def check_html(path: str | None, flag: str = "--html") -> None:
    """Reject an ``--html`` target that cannot be a file, before any work is done."""
    if path is not None and Path(path).is_dir():
        raise UserError(f"{flag} {path}: is a directory, expected a file name")


def jobs(requested: int) -> int:
    """``--jobs 0`` = one worker per CPU core. With several workers torch's intra-op pool
    is narrowed to max(1, cores // workers) threads, so workers x threads ≤ cores while
    workers ≤ cores (one thread each beyond that): small matrices gain from running side by
    side, and oversubscribed OpenMP pools spin (measured 0.8 s -> 4 s on MiniLM). The CLI
    owns its process, so it may set this; the library never does."""
    import os

    import torch

    cores = os.cpu_count() or 1
    jobs = cores if requested == 0 else requested
    if jobs > 1:
        torch.set_num_threads(max(1, cores // jobs))
    return jobs


def scan_options(args: argparse.Namespace) -> dict[str, Any]:
    metrics: Any = "default"
    if args.all:
        metrics = "all"
    elif args.metrics:
        metrics = tuple(args.metrics.split(","))
    return {
        "metrics": metrics,
        "include": tuple(args.include),
        "exclude": tuple(args.exclude),
        "kinds": tuple(args.kind),
        "min_size": args.min_size,
        "seed": args.seed,
        "device": args.device,
        "jobs": jobs(args.jobs),
        "precision": args.precision,
        "allow_unsafe_pickle": args.unsafe_pickle,
        "fit": args.fit,
        "fix_fingers": args.fix_fingers,
        "conv2d_fft": args.conv2d_fft,
        "fft_size": args.fft_size,
        "depthwise": args.depthwise,
        "intra": args.intra,
        "traps": args.traps,
    }


def check_outputs(args: argparse.Namespace) -> list[str]:
    for path in args.out:
        file_format(args, path)
    check_html(getattr(args, "html", None))
    return rules(args)
