"""Terminal rendering of a tracked run: steps with model-level means, phases, alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd
from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from layerscope.report.terminal import fmt_num

if TYPE_CHECKING:
    from layerscope.track.phases import RunPhases

STEP_COLUMNS = (
    "alpha",
    "alpha_weighted",
    "num_traps",
    "ERG_gap",
    "count_under_trained",
    "count_over_trained",
    "llc",
)


PHASE_STYLES = {
    "over-fitting": "bold red",
    "under-trained": "yellow",
    "learning": "cyan",
    "converged": "green",
}


def render_phases(phases: RunPhases) -> Table:
    """The current phase of every layer and of the model, with the evidence."""
    table = Table(title="Phases", header_style="bold")
    for col in ("layer", "phase", "since", "alpha", "trap_scale", "num_traps", "ERG_gap"):
        table.add_column(col, justify="left" if col in ("layer", "phase") else "right")
    for _, r in phases.current_layers().iterrows():
        phase = str(r["phase"])
        table.add_row(
            escape(str(r["name"])),
            Text(phase, style=PHASE_STYLES.get(phase, "")),
            str(r["since"]),
            fmt_num(r.get("alpha")),
            fmt_num(r.get("trap_scale")),
            fmt_num(r.get("num_traps"), "d"),
            fmt_num(r.get("ERG_gap"), "d"),
        )
    style = PHASE_STYLES.get(phases.phase, "")
    table.add_section()
    table.add_row("model", Text(phases.phase, style=style), str(phases.since))
    return table


def render_status(
    run: str,
    steps: pd.DataFrame,
    alerts: pd.DataFrame,
    console: Console,
    phases: RunPhases | None = None,
) -> None:
    """One row per recorded step (status and the summary means), phases, then the alerts."""
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
    if phases is not None and len(phases.model):
        parts.append(render_phases(phases))
    if len(alerts):
        at = Table(title="Alerts", header_style="bold red")
        for col in ("step", "level", "message"):
            at.add_column(col)
        for _, a in alerts.iterrows():
            at.add_row(str(a["step"]), str(a["level"]), escape(str(a["message"])))
        parts.append(at)
    elif phases is not None and phases.phase == "over-fitting":
        note = f"no stored alerts, but the run is over-fitting since step {phases.since}"
        parts.append(Text(note + " (collapse warning)", style="bold red"))
    else:
        parts.append(Text("no alerts", style="green"))
    console.print(Group(*parts))
