"""The commands of the command line (``layerscope scan|compare|diff|report``)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from layerscope.cli._io import (
    UserError,
    check_html,
    check_outputs,
    emit,
    evaluate_gate,
    gate,
    gate_exit,
    html_report,
    resolve_source,
    scan_options,
    with_progress,
)
from layerscope.cli._io import (
    rules as read_rules,
)
from layerscope.results import ScanResult


def cmd_scan(args: argparse.Namespace) -> int:
    """``layerscope scan``: analyse a model and print/write the per-layer results."""
    from layerscope.report.html import scan_html
    from layerscope.report.terminal import render_scan
    from layerscope.scan import scan

    rules = check_outputs(args)
    source = resolve_source(args.source)
    options = {**scan_options(args), "keep_spectra": bool(args.html)}
    result = with_progress(
        args, "scan", lambda progress: scan(source, progress=progress, **options)
    )
    emit(result, args, lambda console: render_scan(result, console))
    checked = evaluate_gate(rules, result.layers, {})
    html_report(args, lambda: scan_html(result, checked))
    return gate_exit(checked)


def cmd_compare(args: argparse.Namespace) -> int:
    """``layerscope compare``: audit the update from a base model to a tuned one (or a LoRA)."""
    from layerscope.adapters.peft import is_adapter_dir
    from layerscope.compare import compare
    from layerscope.report.html import compare_html
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
        "lora_layer_alpha": args.lora_layer_alpha,
    }
    result = with_progress(
        args, "compare", lambda progress: compare(base, tuned, progress=progress, **options)
    )
    emit(result, args, lambda console: render_compare(result, console))
    checked = evaluate_gate(rules, result.layers, result.gate_counts())
    html_report(args, lambda: compare_html(result, checked))
    return gate_exit(checked)


def cmd_diff(args: argparse.Namespace) -> int:
    """``layerscope diff``: compare two saved scan results without recomputing."""
    from layerscope.diff import diff
    from layerscope.report.terminal_compare import render_diff

    rules = check_outputs(args)
    result = diff(ScanResult.from_json(args.run_a), ScanResult.from_json(args.run_b))
    emit(result, args, lambda console: render_diff(result, console))
    return gate(args, rules, result.layers, result.counts)


def cmd_report(args: argparse.Namespace) -> int:
    """``layerscope report INPUT``: the HTML page of a saved scan/compare/attribution result
    or a run."""
    from layerscope.compare_result import CompareResult
    from layerscope.report.html import compare_html, run_html, scan_html

    gate_rules = read_rules(args)
    check_html(args.out, "--out")
    source = Path(args.input)
    if not source.is_file():
        raise UserError(f"{args.input}: no such file")
    if source.read_bytes()[:16] == b"SQLite format 3\x00":
        if gate_rules:
            raise UserError("--fail-on/--policy apply to scan and compare results, not runs")
        from layerscope.track.view import read_run

        store, run = _open_run(source, args.run)
        args.html = args.out or str(source.with_name(f"{_file_name(run)}.html"))
        try:
            view = read_run(store, run)
        finally:
            store.close()
        html_report(args, lambda: run_html(view))
        return 0
    kind = _result_kind(source)
    args.html = args.out or str(source.with_suffix(".html"))
    if kind == "attribution":
        from layerscope.cli.attribute import report_attribution

        return report_attribution(args, source, gate_rules)
    if kind == "memorization":
        from layerscope.cli.memorized import report_memorization

        return report_memorization(args, source, gate_rules)
    try:
        result = (ScanResult if kind == "scan" else CompareResult).from_json(source)
    except KeyError as exc:
        raise UserError(f"{args.input}: not a complete {kind} result (missing {exc})") from exc
    counts = result.gate_counts() if isinstance(result, CompareResult) else {}
    checked = evaluate_gate(gate_rules, result.layers, counts)
    if isinstance(result, CompareResult):
        html_report(args, lambda: compare_html(result, checked))
    else:
        html_report(args, lambda: scan_html(result, checked))
    return gate_exit(checked)


def _file_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text) or "run"


def _result_kind(path: Path) -> str:
    """``scan``, ``compare``, ``attribution`` or ``memorization``, from a saved result's
    ``kind``; UserError otherwise."""
    import json

    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(
            f"{path}: neither a layerscope JSON result nor a run store ({exc})"
        ) from exc
    kind = data.get("kind", "scan") if isinstance(data, dict) else None
    if kind in ("attribution", "memorization"):
        return str(kind)
    if kind not in ("scan", "compare") or "layers" not in data:
        raise UserError(
            f"{path}: expected a scan, compare, attribution or memorization result, "
            f"found kind {kind!r}"
        )
    return str(kind)


def _open_run(path: Path, run: str | None) -> tuple[Any, str]:
    """The run store at ``path`` and the run to show (``--run``, or its only run)."""
    from layerscope.track import RunStore

    store = RunStore(path, create=False)
    names = [str(n) for n in store.runs()["name"]]
    if run is None and len(names) == 1:
        return store, names[0]
    listed = ", ".join(names[:10]) + (" ..." if len(names) > 10 else "")
    if run is None:
        raise UserError(
            f"{path}: {len(names)} runs in this store; choose one with --run ({listed})"
        )
    if run not in names:
        raise UserError(f"{path}: no run {run!r} in this store (runs: {listed or 'none'})")
    return store, run
