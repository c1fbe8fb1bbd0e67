"""``layerscope track`` and ``layerscope status``: a run's checkpoints, phases and alerts."""

from __future__ import annotations

import argparse
import tomllib
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.markup import escape

from layerscope.cli._io import EXIT_GATE, UserError, html_report, scan_options, stdout

EXIT_CODES = (
    "exit codes: 0 the run has no alert and is not over-fitting; 1 it has an alert (stored, "
    "or raised when its stored scans are replayed) or its current phase is over-fitting "
    "(the generalization-collapse warning); 2 bad input."
)


def add_rules_arguments(p: argparse.ArgumentParser) -> None:
    """``--rules FILE`` and ``--rule NAME=VALUE``: the phase detector's rules."""
    p.add_argument(
        "--rules",
        metavar="TOML",
        help="phase-detector rules from a TOML file (top-level keys or a [phases] table: "
        "growth = 2.0, trap_scale = 1.0, ...; docs/grokking.md lists them)",
    )
    p.add_argument(
        "--rule",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="one phase-detector rule, e.g. --rule trap_scale=1.5 (overrides --rules)",
    )


def read_rules(args: argparse.Namespace) -> Any:
    """The :class:`PhaseRules` of ``--rules``/``--rule`` (one-line errors on bad input)."""
    from layerscope.track.phases import rules_from

    values: dict[str, Any] = {}
    source = "--rule"
    if args.rules:
        source = args.rules
        try:
            data = tomllib.loads(Path(args.rules).read_text())
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise UserError(f"{args.rules}: cannot read the rules ({exc})") from exc
        values.update(data.get("phases", data))
    for item in args.rule:
        name, sep, text = item.partition("=")
        if not sep:
            raise UserError(f"--rule {item}: expected NAME=VALUE")
        try:
            values[name.strip()] = tomllib.loads(f"v = {text.strip()}")["v"]
        except tomllib.TOMLDecodeError as exc:
            raise UserError(f"--rule {item}: {text!r} is not a number or true/false") from exc
    try:
        return rules_from(values)
    except ValueError as exc:
        raise UserError(f"{source}: {exc}") from exc


def add_track_parser(sub: Any, add_scan_options: Any, add_html_options: Any) -> None:
    """The ``track`` command (scan options and HTML options come from the CLI module)."""
    from layerscope.cli.llc import add_track_llc_arguments

    p = sub.add_parser(
        "track",
        help="scan a directory of checkpoints, in step order, into a run store, raise "
        "alerts, then show the run's status (exit 1 on alerts)",
        description="Scan new checkpoints into a run store (every metric incl. traps unless "
        "--metrics: the phase detector needs them), store the alerts the phase detector "
        "raises exactly as a Monitor would, then print the run's status. " + EXIT_CODES,
    )
    p.add_argument(
        "directory", help="checkpoint directory (checkpoint-N/, step_N.pt, model_N.safetensors...)"
    )
    p.add_argument("--run", help="run name (default: the directory name)")
    p.add_argument("--store", default="layerscope-runs.db", help="SQLite run store file")
    p.add_argument("--follow", action="store_true", help="keep watching for new checkpoints")
    p.add_argument("--poll", type=float, default=30.0, help="seconds between polls with --follow")
    p.add_argument(
        "--no-detector", action="store_true", help="store scans only: no phase detector, no alerts"
    )
    p.add_argument("--format", choices=("table", "json"), help="status output (default: table)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress lines or tables")
    add_rules_arguments(p)
    add_scan_options(p)
    add_html_options(p)
    add_track_llc_arguments(p)
    p.set_defaults(func=cmd_track)


def add_status_parser(sub: Any, add_html_options: Any) -> None:
    """The ``status`` command."""
    p = sub.add_parser(
        "status",
        help="steps, phases and alerts of a tracked run; exit 1 on alerts or over-fitting",
        description="Show a run's steps, phases (per layer and for the model, with the "
        "reason, or why a collapse cannot be judged yet) and alerts (the step each was raised "
        "at and the step its evidence dates from). " + EXIT_CODES,
    )
    p.add_argument("run", help="run name")
    p.add_argument("--store", default="layerscope-runs.db", help="SQLite run store file")
    p.add_argument(
        "--format",
        choices=("table", "json"),
        help="json: phases per step, alerts with evidence, reasons (schema_version 1)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no tables (the exit code only)")
    add_rules_arguments(p)
    add_html_options(p)
    p.set_defaults(func=cmd_status)


def cmd_track(args: argparse.Namespace) -> int:
    """``layerscope track DIR``: scan new checkpoints of a run into the run store."""
    from layerscope.cli.llc import track_hook
    from layerscope.track import RunStore, track_checkpoints
    from layerscope.track.checkpoints import TrackEvent

    err = Console(stderr=True, soft_wrap=True)
    rules = read_rules(args)
    llc = track_hook(args)  # --llc-data: fails here on a bad path, before any scan
    if llc is not None and not args.quiet:
        llc.report = lambda line: err.print(escape(line), highlight=False)
    options = scan_options(args)
    metrics = options.pop("metrics") if (args.all or args.metrics) else None
    options.pop("metrics", None)
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
            detector=None if args.no_detector else "phases",
            rules=rules,
            follow=args.follow,
            poll_seconds=args.poll,
            progress=on_event,
            on_checkpoint=llc,
            **options,
        )
    except KeyboardInterrupt:
        steps = []
    if not args.quiet:
        err.print(f"run {escape(run)}: {len(steps)} new checkpoint(s) scanned into {args.store}")
    return show_status(args, store, run, rules)


def cmd_status(args: argparse.Namespace) -> int:
    """``layerscope status RUN``: steps, phases and alerts of a run (see EXIT_CODES)."""
    from layerscope.track import RunStore

    try:
        store = RunStore(args.store, create=False)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    try:
        return show_status(args, store, args.run, read_rules(args))
    finally:
        store.close()


def show_status(args: argparse.Namespace, store: Any, run: str, rules: Any) -> int:
    """Print (table or JSON) and write the HTML of a run's status; return the exit code."""
    from layerscope.report.html import run_html
    from layerscope.report.terminal_track import render_status
    from layerscope.track.view import read_run

    try:
        view = read_run(store, run, rules)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    if args.format == "json":
        print(view.to_json())
    elif not args.quiet:
        render_status(view, stdout())
    html_report(args, lambda: run_html(view))
    return EXIT_GATE if view.failing else 0


__all__ = ["add_status_parser", "add_track_parser", "cmd_status", "cmd_track", "read_rules"]
