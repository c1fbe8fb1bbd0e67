"""Terminal rendering of an LLC estimate. Reads the result; computes nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from layerscope.report.terminal import fmt_num

if TYPE_CHECKING:
    from layerscope.probes.llc import LLCResult


def llc_table(result: LLCResult, checkpoint: str) -> Table:
    """The estimate, its settings and its diagnostics, one per row."""
    d = result.diagnostics
    table = Table(title=f"LLC of {escape(checkpoint)}", header_style="bold", show_header=False)
    table.add_column("what", style="bold")
    table.add_column("value", justify="right")
    rows = (
        ("LLC (mean)", fmt_num(result.mean, ".4g")),
        ("std across chains", fmt_num(result.std, ".4g")),
        ("per chain", ", ".join(fmt_num(v, ".4g") for v in result.per_chain)),
        ("nβ", fmt_num(result.nbeta, ".4g")),
        ("step size ε", fmt_num(result.step_size, ".4g")),
        ("localization γ", fmt_num(result.localization, ".4g")),
        ("chains × draws (burn-in)", f"{result.num_chains} × {result.num_draws} ({result.burnin})"),
        ("batch size / samples", f"{result.batch_size or '?'} / {result.num_samples or '?'}"),
        ("baseline", f"{result.baseline}, mean loss {fmt_num(result.baseline_loss, '.4g')}"),
        ("acceptance (MALA, minibatch)", fmt_num(d.acceptance, ".2f")),
        ("split R-hat", fmt_num(d.r_hat, ".3f")),
        (
            "drift between halves (z)",
            f"{fmt_num(d.drift, '+.1%')} ({fmt_num(d.stationarity_z, '.2f')})",
        ),
        ("negative draws", fmt_num(d.negative_fraction, ".1%")),
        ("diverged chains", str(d.diverged_chains)),
    )
    for what, value in rows:
        table.add_row(what, value)
    return table


def render_llc_warnings(result: LLCResult, console: Console) -> None:
    """Each diagnostic warning on its own line, or a note that there is none."""
    if not result.warnings:
        console.print("[green]no diagnostic warnings[/]", highlight=False)
    for warning in result.warnings:
        console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)


def render_llc(result: LLCResult, checkpoint: str, console: Console) -> None:
    """The table of :func:`llc_table`, then the warnings."""
    console.print(llc_table(result, checkpoint))
    render_llc_warnings(result, console)
