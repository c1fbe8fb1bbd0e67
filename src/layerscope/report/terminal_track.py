"""Terminal rendering of a tracked run: steps with model-level means, phases, alerts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console, Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from layerscope.report.terminal import fmt_num

if TYPE_CHECKING:
    from layerscope.track.phases import RunPhases
    from layerscope.track.view import RunView

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


def render_status(view: RunView, console: Console) -> None:
    """One row per recorded step (status and the summary means), phases, then the alerts
    (raised step and the step their evidence dates from; replayed ones marked)."""
    steps = view.steps
    table = Table(title=f"Run {escape(view.run)}", header_style="bold")
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
    if len(view.phases.model):
        parts.append(render_phases(view.phases))
        note = f"model: {view.phases.phase} — {view.phases.reason}"
        parts.append(Text(note, style=PHASE_STYLES.get(view.phases.phase, "")))
    jumps = view.phases.jumps()
    if len(jumps):
        listed = ", ".join(f"{n} at {s}" for n, s in zip(jumps["name"], jumps["step"], strict=True))
        parts.append(Text(f"alpha jumps (tail fit; smoothed for the labels): {listed}", "dim"))
    parts.append(_alerts(view))
    console.print(Group(*parts))


def _alerts(view: RunView) -> Table | Text:
    if not len(view.alerts):
        return Text("no alerts", style="green")
    table = Table(title="Alerts", header_style="bold red")
    for col in ("raised at", "evidence from", "level", "message"):
        table.add_column(col, justify="left" if col in ("level", "message") else "right")
    for _, a in view.alerts.iterrows():
        message = str(a["message"])
        if not a["stored"]:
            message += " (replayed from the stored scans; not stored: tracked without the detector)"
        table.add_row(str(a["step"]), str(a["evidence_step"]), str(a["level"]), escape(message))
    return table
