"""The command line. The only module that parses arguments or prints."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from layerscope import __version__
from layerscope.adapters import SourceError
from layerscope.results import ScanResult, TableResult
from layerscope.scan import ProgressEvent

FORMATS = ("table", "json", "csv", "parquet")
EXIT_GATE = 1
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


def _stdout() -> Console:
    # Piped output keeps full rows instead of folding to 80 columns.
    return Console(width=None if sys.stdout.isatty() else 220)


def _emit(result: TableResult, args: argparse.Namespace, render: Callable[[Console], None]) -> None:
    """Write every ``--out`` (atomically) and print the table or the raw format to stdout."""
    for path in args.out:
        fmt_out = _file_format(args, path)
        if fmt_out == "json":
            result.to_json(path)
        elif fmt_out == "csv":
            result.to_csv(path)
        else:
            result.to_parquet(path)
    fmt = args.format or "table"
    if fmt == "table" or args.out:
        if not args.quiet:
            render(_stdout())
        return
    if fmt == "parquet":
        raise UserError("--format parquet needs --out FILE")
    sys.stdout.write(result.to_json() if fmt == "json" else result.layers.to_csv(index=False))


def _with_progress(args: argparse.Namespace, label: str, work: Callable[..., Any]) -> Any:
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


def _rules(args: argparse.Namespace) -> list[str]:
    from layerscope.gate import load_policy, parse_rule

    rules = list(args.fail_on) + (load_policy(args.policy) if args.policy else [])
    for rule in rules:
        parse_rule(rule)  # a typo fails before the work, not after
    return rules


def _gate(args: argparse.Namespace, rules: list[str], table: Any, counts: dict[str, int]) -> int:
    """Evaluate gate rules; print each check; exit code 1 if any fails."""
    if not rules:
        return 0
    from layerscope.gate import check
    from layerscope.report.terminal import render_gate

    result = check(table, rules, counts)
    render_gate(result, Console(stderr=True, soft_wrap=True))
    return 0 if result.passed else EXIT_GATE


def _jobs(requested: int) -> int:
    """``--jobs 0`` = one worker per CPU core. With several workers torch's intra-op pool
    is narrowed so workers x threads = cores: small matrices gain from running side by
    side, and oversubscribed OpenMP pools spin (measured 0.8 s -> 4 s on MiniLM). The CLI
    owns its process, so it may set this; the library never does."""
    import os

    import torch

    cores = os.cpu_count() or 1
    jobs = cores if requested == 0 else requested
    if jobs > 1:
        torch.set_num_threads(max(1, cores // jobs))
    return jobs


def _scan_options(args: argparse.Namespace) -> dict[str, Any]:
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
        "jobs": _jobs(args.jobs),
        "precision": args.precision,
        "allow_unsafe_pickle": args.unsafe_pickle,
    }


def _check_outputs(args: argparse.Namespace) -> list[str]:
    for path in args.out:
        _file_format(args, path)
    return _rules(args)


def cmd_scan(args: argparse.Namespace) -> int:
    """``layerscope scan``: analyse a model and print/write the per-layer results."""
    from layerscope.report.terminal import render_scan
    from layerscope.scan import scan

    rules = _check_outputs(args)
    source = _resolve_source(args.source)
    options = _scan_options(args)
    result = _with_progress(
        args, "scan", lambda progress: scan(source, progress=progress, **options)
    )
    _emit(result, args, lambda console: render_scan(result, console))
    return _gate(args, rules, result.layers, {})


def cmd_compare(args: argparse.Namespace) -> int:
    """``layerscope compare``: audit the update from a base model to a tuned one (or a LoRA)."""
    from layerscope.adapters.peft import is_adapter_dir
    from layerscope.compare import compare
    from layerscope.report.terminal_compare import render_compare

    rules = _check_outputs(args)
    if args.tuned is None and not is_adapter_dir(args.base):
        raise UserError(f"{args.base}: give BASE TUNED, or a PEFT adapter directory on its own")
    base, tuned = (None, args.base) if args.tuned is None else (args.base, args.tuned)
    base = None if base is None else _resolve_source(base)
    tuned = _resolve_source(tuned)
    options = {
        **_scan_options(args),
        "untouched_tol": args.untouched_tol,
        "duplicate_tol": args.duplicate_tol,
        "lora_base_alpha": args.lora_base_alpha,
    }
    result = _with_progress(
        args, "compare", lambda progress: compare(base, tuned, progress=progress, **options)
    )
    _emit(result, args, lambda console: render_compare(result, console))
    return _gate(args, rules, result.layers, result.gate_counts())


def cmd_diff(args: argparse.Namespace) -> int:
    """``layerscope diff``: compare two saved scan results without recomputing."""
    from layerscope.diff import diff
    from layerscope.report.terminal_compare import render_diff

    rules = _check_outputs(args)
    result = diff(ScanResult.from_json(args.run_a), ScanResult.from_json(args.run_b))
    _emit(result, args, lambda console: render_diff(result, console))
    return _gate(args, rules, result.layers, result.counts)


def cmd_track(args: argparse.Namespace) -> int:
    """``layerscope track DIR``: scan new checkpoints of a run into the run store."""
    from layerscope.track import RunStore, track_checkpoints
    from layerscope.track.checkpoints import TrackEvent

    err = Console(stderr=True, soft_wrap=True)
    options = _scan_options(args)
    metrics = options.pop("metrics")
    run = args.run or Path(args.directory).resolve().name

    def on_event(event: TrackEvent) -> None:
        if not args.quiet:
            style = "green" if event.status == "ok" else "red"
            err.print(
                f"[{style}]{event.status}[/] step {event.step} {escape(str(event.source))} "
                f"{escape(event.message or '')}",
                highlight=False,
            )

    store = RunStore(args.store)
    try:
        steps = track_checkpoints(
            args.directory,
            run,
            store,
            metrics=metrics,
            follow=args.follow,
            poll_seconds=args.poll,
            progress=on_event,
            **options,
        )
    except KeyboardInterrupt:
        steps = []
    if not args.quiet:
        err.print(f"run {escape(run)}: {len(steps)} new checkpoint(s) scanned into {args.store}")
    return cmd_status(args, run=run)


def cmd_status(args: argparse.Namespace, run: str | None = None) -> int:
    """``layerscope status RUN``: steps and alerts of a run; exit 1 when it has alerts."""
    from layerscope.report.terminal_track import render_status
    from layerscope.track import RunStore

    store = RunStore(args.store, create=False)
    name = run or args.run
    steps, alerts = store.steps(name), store.alerts(name)
    if not args.quiet:
        render_status(name, steps, alerts, _stdout())
    return EXIT_GATE if len(alerts) else 0


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, help="stdout format (default: table)")
    p.add_argument(
        "--out",
        "-o",
        action="append",
        default=[],
        metavar="FILE",
        help="also write results to FILE (.json/.csv/.parquet); repeatable",
    )
    p.add_argument(
        "--fail-on",
        action="append",
        default=[],
        metavar="RULE",
        help="gate: exit 1 when RULE holds, e.g. 'under-trained>20%%', 'mean(alpha)>5'; repeatable",
    )
    p.add_argument("--policy", metavar="TOML", help="gate rules from a file: fail_on = [...]")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or tables")


def _add_scan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--all", action="store_true", help="every metric, incl. traps (= --metrics all)")
    p.add_argument("--metrics", help="comma-separated groups: esd,powerlaw,norms,mp,erg,traps")
    p.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="PATTERN",
        help="analyse only matrices whose name matches (glob or substring)",
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
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=0,
        help="tensors analysed in parallel (default 0: one per CPU core)",
    )
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
        help="allow arbitrary unpickling of .pt/.bin files (only files you trust)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all commands."""
    parser = argparse.ArgumentParser(
        prog="layerscope",
        description="See inside a neural network's layers from the weights alone.",
    )
    parser.add_argument("--version", action="version", version=f"layerscope {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("scan", help="per-layer spectral scan (HTSR alpha, MP fit, traps, ERG)")
    p.add_argument(
        "source",
        help="model file or directory (.safetensors, .pt, .bin, HF dir) "
        "or pkg.module:attr naming an nn.Module or a factory",
    )
    _add_scan_options(p)
    _add_output_options(p)
    p.set_defaults(func=cmd_scan)
    p = sub.add_parser("compare", help="audit a fine-tune: the update tuned - base, or a LoRA")
    p.add_argument("base", help="base model (or a PEFT adapter directory on its own)")
    p.add_argument("tuned", nargs="?", help="tuned or merged model, or a PEFT adapter directory")
    p.add_argument(
        "--untouched-tol",
        type=float,
        default=1e-6,
        help="relative update below which a matrix counts as untouched",
    )
    p.add_argument(
        "--duplicate-tol",
        type=float,
        default=1e-4,
        help="relative distance below which two matrices count as duplicated",
    )
    p.add_argument(
        "--lora-base-alpha",
        action="store_true",
        help="LoRA: also fit the base layers' alpha (a dense spectrum per target)",
    )
    _add_scan_options(p)
    _add_output_options(p)
    p.set_defaults(func=cmd_compare)
    p = sub.add_parser(
        "track", help="scan a directory of checkpoints, in step order, into a run store"
    )
    p.add_argument(
        "directory", help="checkpoint directory (checkpoint-N/, step_N.pt, model_N.safetensors...)"
    )
    p.add_argument("--run", help="run name (default: the directory name)")
    p.add_argument("--store", default="layerscope-runs.db", help="SQLite run store file")
    p.add_argument("--follow", action="store_true", help="keep watching for new checkpoints")
    p.add_argument("--poll", type=float, default=30.0, help="seconds between polls with --follow")
    p.add_argument("--quiet", "-q", action="store_true")
    _add_scan_options(p)
    p.set_defaults(func=cmd_track)
    p = sub.add_parser("status", help="steps and alerts of a tracked run; exit 1 on alerts")
    p.add_argument("run", help="run name")
    p.add_argument("--store", default="layerscope-runs.db", help="SQLite run store file")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("diff", help="difference of two saved scan results (JSON), no recomputing")
    p.add_argument("run_a", help="earlier scan result (.json)")
    p.add_argument("run_b", help="later scan result (.json)")
    _add_output_options(p)
    p.set_defaults(func=cmd_diff)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 ok, 1 a gate rule failed, 2 user error."""
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
