"""The commands of the command line (``layerscope scan|compare|diff|track|status``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from layerscope.cli._io import (
    EXIT_GATE,
    UserError,
    check_outputs,
    emit,
    gate,
    resolve_source,
    scan_options,
    stdout,
    with_progress,
)
from layerscope.results import ScanResult


def cmd_scan(args: argparse.Namespace) -> int:
    """``layerscope scan``: analyse a model and print/write the per-layer results."""
    from layerscope.report.terminal import render_scan
    from layerscope.scan import scan

    rules = check_outputs(args)
    source = resolve_source(args.source)
    options = scan_options(args)
    result = with_progress(
        args, "scan", lambda progress: scan(source, progress=progress, **options)
    )
    emit(result, args, lambda console: render_scan(result, console))
    return gate(args, rules, result.layers, {})


def cmd_compare(args: argparse.Namespace) -> int:
    """``layerscope compare``: audit the update from a base model to a tuned one (or a LoRA)."""
    from layerscope.adapters.peft import is_adapter_dir
    from layerscope.compare import compare
    from layerscope.report.terminal_compare import render_compare

    rules = check_outputs(args)
    if args.tuned is None and not is_adapter_dir(args.base):
        raise UserError(f"{args.base}: give BASE TUNED, or a PEFT adapter directory on its own")
    base, tuned = (None, args.base) if args.tuned is None else (args.base, args.tuned)
    base = None if base is None else resolve_source(base)
    tuned = resolve_source(tuned)
    options = {
        **scan_options(args),
        "untouched_tol": args.untouched_tol,
        "duplicate_tol": args.duplicate_tol,
        "lora_base_alpha": args.lora_base_alpha,
    }
    result = with_progress(
        args, "compare", lambda progress: compare(base, tuned, progress=progress, **options)
    )
    emit(result, args, lambda console: render_compare(result, console))
    return gate(args, rules, result.layers, result.gate_counts())


def cmd_diff(args: argparse.Namespace) -> int:
    """``layerscope diff``: compare two saved scan results without recomputing."""
    from layerscope.diff import diff
    from layerscope.report.terminal_compare import render_diff

    rules = check_outputs(args)
    result = diff(ScanResult.from_json(args.run_a), ScanResult.from_json(args.run_b))
    emit(result, args, lambda console: render_diff(result, console))
    return gate(args, rules, result.layers, result.counts)


def cmd_track(args: argparse.Namespace) -> int:
    """``layerscope track DIR``: scan new checkpoints of a run into the run store."""
    from layerscope.track import RunStore, track_checkpoints
    from layerscope.track.checkpoints import TrackEvent

    err = Console(stderr=True, soft_wrap=True)
    options = scan_options(args)
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
        render_status(name, steps, alerts, stdout())
    return EXIT_GATE if len(alerts) else 0
