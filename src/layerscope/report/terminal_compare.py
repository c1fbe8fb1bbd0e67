"""Terminal rendering of compare and diff results. Reads results; computes nothing."""

from __future__ import annotations

import pandas as pd
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from layerscope.compare_result import CompareResult
from layerscope.diff import DiffResult
from layerscope.report.terminal import VERDICT_STYLE, fmt_num

UPDATE_STYLE = {**VERDICT_STYLE, "untouched": "dim"}


def _verdict(row: pd.Series) -> Text:
    verdict = str(row.get("verdict") or row.get("status") or "unknown")
    if verdict == "low-rank":  # the reason says it: "rank 8: too few eigenvalues for a tail fit"
        return Text(str(row.get("reason") or verdict), style="dim")
    text = Text(verdict, style=UPDATE_STYLE.get(verdict, "bold red"))
    if row.get("fit_quality", "good") not in ("good", None) and verdict != "untouched":
        text.append(" ?", style="dim")
    return text


def compare_table(result: CompareResult) -> Table:
    """One row per matched matrix: update alpha and size, the layer's alpha before and
    after (for a LoRA: the base layer W and the merged W + s·B·A), verdict."""
    lora = "lora_rank" in result.layers
    table = Table(title="Updates ΔW = tuned − base", header_style="bold")
    after = "merged α" if lora else "tuned α"
    heads = ("#", "name", "kind", "N×M", "ΔW alpha", "‖ΔW‖/‖W‖", "rank", "base α", after, "Δα")
    for col in heads:
        table.add_column(col, justify="left" if col in ("name", "kind") else "right", no_wrap=True)
    table.add_column("verdict", no_wrap=True)
    for _, row in result.layers.iterrows():
        rank = fmt_num(row.get("update_rank"), "d") + (f"/{int(row['lora_rank'])}" if lora else "")
        table.add_row(
            str(row["layer_id"]),
            escape(str(row["name"])),
            str(row["kind"]),
            f"{row['N']}×{row['M']}",
            fmt_num(row.get("alpha")),
            fmt_num(row.get("rel_update"), ".2e"),
            rank,
            fmt_num(row.get("base_alpha")),
            fmt_num(row.get("tuned_alpha")),
            fmt_num(row.get("delta_alpha"), "+.2f"),
            _verdict(row),
        )
    return table


def worst_table(result: CompareResult) -> Table | None:
    """The worst updates first, one line each."""
    worst = result.summary.get("worst") or []
    if not worst:
        return None
    table = Table(title="Worst updates", header_style="bold")
    table.add_column("name")
    table.add_column("verdict")
    table.add_column("reason", style="dim")
    for w in worst:
        style = UPDATE_STYLE.get(w["verdict"], "")
        table.add_row(escape(w["name"]), Text(w["verdict"], style=style), escape(w["reason"]))
    return table


def compare_summary(result: CompareResult) -> Table:
    """Counts: matched, changed, untouched, duplicated, one-sided, mismatched."""
    s = result.summary
    table = Table(title="Summary", show_header=False)
    table.add_column("key", style="bold")
    table.add_column("value", justify="right")
    rows = [
        ("matrices compared", "num_matrices"),
        ("changed", "num_changed"),
        ("untouched", "num_untouched"),
        ("under-trained updates (alpha > 6)", "count_under_trained_updates"),
        ("over-trained updates (alpha < 2)", "count_over_trained_updates"),
        ("updates of rank < 10 (no tail fit)", "count_low_rank_updates"),
        ("layers moved out of alpha 2–6", "num_left_band"),
        ("duplicated pairs", "num_duplicated_pairs"),
        ("only in base", "num_only_in_base"),
        ("only in tuned", "num_only_in_tuned"),
        ("shape mismatches", "num_shape_mismatch"),
        ("mean ‖ΔW‖/‖W‖", "mean_rel_update"),
    ]
    for label, key in rows:
        if s.get(key) is not None:
            value = s[key]
            table.add_row(label, fmt_num(value, ".3e") if isinstance(value, float) else str(value))
    return table


def render_compare(result: CompareResult, console: Console) -> None:
    """Print the update table, duplicated pairs, one-sided layers, worst updates and summary."""
    parts: list[Table] = [compare_table(result)]
    if not result.duplicated.empty:
        dup = Table(title="Duplicated matrices", header_style="bold")
        for col in ("model", "name_a", "name_b", "distance"):
            dup.add_column(col)
        for _, r in result.duplicated.iterrows():
            dup.add_row(
                r["model"], escape(r["name_a"]), escape(r["name_b"]), f"{r['distance']:.1e}"
            )
        parts.append(dup)
    for title, names in (
        ("Only in base", result.only_in_base),
        ("Only in tuned", result.only_in_tuned),
    ):
        if names:
            caption = f"{title} ({len(names)})"
            t = Table(title=caption, show_header=False, min_width=len(caption) + 4)
            t.add_column("name")
            for n in names[:20]:
                t.add_row(escape(n))
            parts.append(t)
    worst = worst_table(result)
    if worst is not None:
        parts.append(worst)
    parts.append(compare_summary(result))
    console.print(Group(*parts))


def render_diff(result: DiffResult, console: Console) -> None:
    """Per-matrix alpha change between two scans, changed verdicts highlighted."""
    table = Table(title="Scan diff (b − a)", header_style="bold")
    for col in ("name", "alpha a", "alpha b", "Δ alpha", "verdict a", "verdict b"):
        left = col == "name" or col.startswith("verdict")
        table.add_column(col, justify="left" if left else "right", no_wrap=True)
    for _, r in result.layers.iterrows():
        style = "bold" if r["changed_verdict"] else ""
        table.add_row(
            escape(str(r["name"])),
            fmt_num(r.get("alpha_a")),
            fmt_num(r.get("alpha_b")),
            fmt_num(r.get("delta_alpha"), "+.2f"),
            str(r["verdict_a"]),
            Text(str(r["verdict_b"]), style=style),
        )
    counts = ", ".join(f"{k}: {v}" for k, v in result.counts.items())
    changed = int(result.layers["changed_verdict"].sum()) if len(result.layers) else 0
    console.print(Group(table, Text(f"changed verdicts: {changed}; {counts}")))
