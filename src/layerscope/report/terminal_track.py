"""Terminal rendering of a tracked run: steps with model-level means, and alerts."""

from __future__ import annotations

import pandas as pd
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from layerscope.report.terminal import fmt_num

STEP_COLUMNS = (
    "alpha",
    "alpha_weighted",
    "num_traps",
    "ERG_gap",
    "count_under_trained",
    "count_over_trained",
)


def render_status(run: str, steps: pd.DataFrame, alerts: pd.DataFrame, console: Console) -> None:
    """One row per recorded step (status and the summary means), then the alerts."""
    table = Table(title=f"Run {escape(run)}", header_style="bold")
    shown = [c for c in STEP_COLUMNS if c in steps]
    for col in ("step", "status", *shown, "source"):
        table.add_column(col, justify="left" if col in ("status", "source") else "right")
    for _, r in steps.iterrows():
        status = str(r.get("status", ""))
        style = {"ok": "green", "error": "red", "skipped": "dim"}.get(status, "")
        source = str(r.get("source") or r.get("error") or "")
        table.add_row(
            str(r["step"]),
            Text(status, style=style),
            *(fmt_num(r.get(c)) for c in shown),
            escape(source[-60:]),
        )
    parts: list[Table | Text] = [table]
    if len(alerts):
        at = Table(title="Alerts", header_style="bold red")
        for col in ("step", "level", "message"):
            at.add_column(col)
        for _, a in alerts.iterrows():
            at.add_row(str(a["step"]), str(a["level"]), escape(str(a["message"])))
        parts.append(at)
    else:
        parts.append(Text("no alerts", style="green"))
    console.print(Group(*parts))
