"""Terminal rendering of scan results with rich. Reads results; computes nothing."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from layerscope.gate import GateResult
from layerscope.results import ScanResult

VERDICT_STYLE = {
    "ok": "green",
    "under-trained": "yellow",
    "over-trained": "red",
    "traps": "magenta",
    "unknown": "dim",
}


def fmt_num(value: Any, fmt: str = ".2f") -> str:
    """A table cell: ``value`` in ``fmt`` (``d``: an integer), or a dash when missing."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "—"
    if isinstance(value, float) and fmt == "d":
        return str(int(value))
    return format(value, fmt)


def _verdict_text(row: pd.Series) -> Text:
    if row.get("status", "ok") != "ok":
        return Text("n/a", style="bold red")
    verdict = str(row.get("verdict", "unknown"))
    text = Text(verdict, style=VERDICT_STYLE.get(verdict, ""))
    if row.get("fit_quality", "good") != "good":
        text.append(" ?", style="dim")
    return text


def _note(row: pd.Series) -> str:
    if row.get("status", "ok") != "ok":
        return str(row["status"])
    quality = row.get("fit_quality", "good")
    return "" if quality == "good" else f"shaky fit: {quality}"


def layer_table(result: ScanResult) -> Table:
    """One row per analysed matrix, verdicts coloured, shaky fits marked with ``?``."""
    layers = result.layers
    has_traps = "num_traps" in layers
    has_erg = "ERG_gap" in layers
    table = Table(title="Layers", header_style="bold", show_lines=False, expand=False)
    for col, justify in [
        ("#", "right"),
        ("name", "left"),
        ("kind", "left"),
        ("N×M", "right"),
        ("alpha ± σ", "right"),
        ("tail n", "right"),
        ("D", "right"),
        ("log_norm", "right"),
        ("α_w", "right"),
        ("spikes", "right"),
    ]:
        table.add_column(col, justify=justify, no_wrap=True)  # type: ignore[arg-type]
    if has_traps:
        table.add_column("traps", justify="right")
    if has_erg:
        table.add_column("ERG gap", justify="right")
    table.add_column("verdict", no_wrap=True)
    table.add_column("note", style="dim", no_wrap=True)
    for _, row in layers.iterrows():
        cells = [
            str(row["layer_id"]),
            escape(str(row["name"])),
            str(row["kind"]),
            f"{row['N']}×{row['M']}" + (f"×{row['num_slices']}" if row["num_slices"] > 1 else ""),
            f"{fmt_num(row.get('alpha'))} ± {fmt_num(row.get('sigma'))}",
            fmt_num(row.get("num_pl_spikes"), "d"),
            fmt_num(row.get("D"), ".3f"),
            fmt_num(row.get("log_norm")),
            fmt_num(row.get("alpha_weighted")),
            fmt_num(row.get("num_spikes"), "d"),
        ]
        if has_traps:
            cells.append(fmt_num(row.get("num_traps"), "d"))
        if has_erg:
            cells.append(fmt_num(row.get("ERG_gap"), "d"))
        table.add_row(*cells, _verdict_text(row), escape(_note(row)))
    return table


def summary_table(result: ScanResult) -> Table:
    """Model-level counts and means."""
    s = result.summary
    table = Table(title="Summary", show_header=False, header_style="bold")
    table.add_column("key", style="bold")
    table.add_column("value", justify="right")
    table.add_row("source", escape(str(result.meta.get("source", ""))))
    table.add_row("layers analysed", f"{s.get('num_analysed', 0)} of {s.get('num_layers', 0)}")
    for key, label, style in [
        ("count_ok", "ok", "green"),
        ("count_under_trained", "under-trained (alpha > 6)", "yellow"),
        ("count_over_trained", "over-trained (alpha < 2)", "red"),
        ("count_traps", "correlation traps", "magenta"),
        ("count_shaky_fits", "shaky fits (?)", "dim"),
        ("num_failed", "not analysable (see note)", "red"),
    ]:
        if key in s:
            table.add_row(Text(label, style=style), str(s[key]))
    for key in ("alpha", "alpha_weighted", "log_norm", "num_traps", "ERG_gap"):
        if s.get(key) is not None:
            table.add_row(f"mean {key}", fmt_num(float(s[key])))
    table.add_row("skipped tensors", str(len(result.skipped)))
    table.add_row("time", f"{result.meta.get('elapsed_s', 0):.2f} s")
    return table


def skipped_table(result: ScanResult) -> Table | None:
    """Skipped tensors grouped by reason (count and an example), or None if none."""
    if result.skipped.empty:
        return None
    table = Table(title="Skipped (not analysed)", header_style="bold")
    table.add_column("reason")
    table.add_column("count", justify="right")
    table.add_column("example", style="dim")
    for reason, group in result.skipped.groupby("reason", sort=False):
        table.add_row(escape(str(reason)), str(len(group)), escape(str(group["name"].iloc[0])))
    return table


def render_scan(result: ScanResult, console: Console) -> None:
    """Print the layer table, the skipped summary and the model summary."""
    parts: list[Table] = [layer_table(result)]
    skipped = skipped_table(result)
    if skipped is not None:
        parts.append(skipped)
    parts.append(summary_table(result))
    console.print(Group(*parts))


def render_gate(result: GateResult, console: Console) -> None:
    """One line per gate rule: PASS/FAIL and the observed value."""
    for c in result.checks:
        mark = "[bold red]FAIL[/]" if c.failed else "[green]pass[/]"
        console.print(f"gate {mark} {escape(c.rule)}: {escape(c.message)}", highlight=False)
    verdict = "[green]gate passed[/]" if result.passed else "[bold red]gate failed[/]"
    console.print(verdict)
