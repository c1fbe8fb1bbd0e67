"""The command line. The only module that parses arguments or prints."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from layerscope import __version__
from layerscope.adapters import SourceError
from layerscope.results import ScanResult
from layerscope.scan import ProgressEvent, scan

FORMATS = ("table", "json", "csv", "parquet")
EXIT_USAGE = 2


class UserError(Exception):
    """An error in what the user asked for: printed as one line, exit code 2."""


def _load_module_source(spec: str) -> Any:
    """``pkg.module:attr`` -> the object (called if callable and not a torch Module)."""
    module_name, _, attr = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"{spec}: cannot import ({exc})") from exc
    import torch

    if callable(obj) and not isinstance(obj, torch.nn.Module):
        try:
            obj = obj()
        except TypeError as exc:
            raise UserError(f"{spec}: calling it without arguments failed ({exc})") from exc
    return obj


def _resolve_source(arg: str) -> Any:
    if Path(arg).exists():
        return arg
    if ":" in arg and not arg.startswith((".", "/")):
        return _load_module_source(arg)
    raise UserError(f"{arg}: no such file or directory")


def _file_format(args: argparse.Namespace, path: str) -> str:
    """Format of an ``--out`` file: its suffix, else ``--format`` if that names a file format."""
    suffix = Path(path).suffix.lstrip(".").lower()
    if suffix in FORMATS[1:]:
        return suffix
    if args.format and args.format != "table":
        return str(args.format)
    raise UserError(f"--out {path}: cannot infer the format; use .json/.csv/.parquet or --format")


def _emit(result: ScanResult, args: argparse.Namespace, console: Console) -> None:
    """Write every ``--out`` (atomically) and print the table or the raw format to stdout."""
    fmt = args.format or "table"
    for path in args.out:
        file_fmt = _file_format(args, path)
        if file_fmt == "json":
            result.to_json(path)
        elif file_fmt == "csv":
            result.to_csv(path)
        else:
            result.to_parquet(path)
    if fmt == "table" or args.out:
        if not args.quiet:
            from layerscope.report.terminal import render_scan

            render_scan(result, console)
        return
    if fmt == "parquet":
        raise UserError("--format parquet needs --out FILE")
    sys.stdout.write(result.to_json() if fmt == "json" else result.layers.to_csv(index=False))


def _scan_options(args: argparse.Namespace) -> dict[str, Any]:
    metrics: Any = (
        "all" if args.all else (tuple(args.metrics.split(",")) if args.metrics else "default")
    )
    return {
        "metrics": metrics,
        "include": tuple(args.include),
        "exclude": tuple(args.exclude),
        "kinds": tuple(args.kind),
        "min_size": args.min_size,
        "seed": args.seed,
        "device": args.device,
        "jobs": args.jobs,
        "precision": args.precision,
        "allow_unsafe_pickle": args.unsafe_pickle,
    }


def cmd_scan(args: argparse.Namespace) -> int:
    """``layerscope scan``: analyse a model and print/write the per-layer results."""
    for path in args.out:
        _file_format(args, path)  # fail on a bad --out before the work, not after
    # Piped output keeps full rows instead of folding to 80 columns.
    out = Console(width=None if sys.stdout.isatty() else 220)
    err = Console(stderr=True, soft_wrap=True)
    source = _resolve_source(args.source)
    options = _scan_options(args)
    show_progress = not args.quiet and err.is_terminal
    columns = (
        TextColumn("[bold]scan"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=err, transient=True, disable=not show_progress) as bar:
        task = bar.add_task("", total=None)

        def on_progress(event: ProgressEvent) -> None:
            bar.update(task, total=event.total, completed=event.done, description=event.name[-60:])

        result = scan(source, progress=on_progress, **options)
    _emit(result, args, out)
    if args.out and not args.quiet:
        err.print(f"wrote {', '.join(args.out)}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all commands."""
    parser = argparse.ArgumentParser(
        prog="layerscope",
        description="See inside a neural network's layers from the weights alone.",
    )
    parser.add_argument("--version", action="version", version=f"layerscope {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser(
        "scan", help="per-layer spectral scan of a model (HTSR alpha, MP, traps, ERG)"
    )
    p.add_argument(
        "source",
        help="model file or directory (.safetensors, .pt, .bin, HF dir) "
        "or a Python path pkg.module:attr to an nn.Module or a factory",
    )
    p.add_argument(
        "--format", choices=FORMATS, help="output format (default: table, or from --out)"
    )
    p.add_argument(
        "--out",
        "-o",
        action="append",
        default=[],
        metavar="FILE",
        help="also write results to FILE (.json/.csv/.parquet); repeatable",
    )
    p.add_argument(
        "--all", action="store_true", help="every metric, incl. traps (same as --metrics all)"
    )
    p.add_argument(
        "--metrics", help="comma-separated metric groups: esd,powerlaw,norms,mp,erg,traps"
    )
    p.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="PATTERN",
        help="analyse only matrices whose name matches (glob or substring); repeatable",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="skip matrices whose name matches; repeatable",
    )
    p.add_argument(
        "--kind",
        action="append",
        default=[],
        help="analyse only this kind (linear, embedding, conv2d, attention-q, expert...)",
    )
    p.add_argument(
        "--min-size", type=int, default=0, help="skip matrices whose smaller side is below N"
    )
    p.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"))
    p.add_argument("--jobs", "-j", type=int, default=1, help="layers analysed in parallel")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles used for traps")
    p.add_argument(
        "--precision",
        default="float64",
        choices=("float64", "float32"),
        help="Gram matrix accumulation precision",
    )
    p.add_argument(
        "--unsafe-pickle",
        action="store_true",
        help="allow arbitrary unpickling of .pt/.bin files (only for files you trust)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or messages")
    p.set_defaults(func=cmd_scan)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: returns the exit status (0 ok, 2 user error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (UserError, SourceError, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        err = Console(stderr=True, soft_wrap=True)
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
