"""Terminal rendering of survey and correlation results. Reads results; computes nothing."""

from __future__ import annotations

import pandas as pd
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from layerscope.report.terminal import fmt_num
from layerscope.survey.correlate import CorrelationResult
from layerscope.survey.tables import SurveyResult, family_labels

MAX_ERRORS = 10


def render_survey(result: SurveyResult, console: Console, written: list[str]) -> None:
    """Closing summary: counts, time, median alpha per family, the failures and the files."""
    models = result.models
    ok = models[models["status"] == "ok"]
    failed = models[models["status"] != "ok"]
    resumed = int(result.meta.get("resumed", 0))
    elapsed = float(result.meta.get("elapsed_s", 0.0))
    console.print(
        f"[bold]surveyed {len(models)} models[/] in {elapsed:.1f} s "
        f"({resumed} from the store): [green]{len(ok)} ok[/], "
        f"[{'red' if len(failed) else 'green'}]{len(failed)} failed[/]",
        highlight=False,
    )
    if len(ok) and "alpha_mean" in ok:
        console.print(_family_table(ok))
    if len(failed):
        table = Table(title="failed models", header_style="bold")
        table.add_column("model", no_wrap=True)
        table.add_column("reason")
        for _, row in failed.head(MAX_ERRORS).iterrows():
            table.add_row(escape(str(row["model"])), escape(str(row["error"])))
        console.print(table)
        if len(failed) > MAX_ERRORS:
            console.print(f"... and {len(failed) - MAX_ERRORS} more (column 'error')")
    for path in written:
        console.print(f"written: {escape(path)}", highlight=False)


def _family_table(ok: pd.DataFrame) -> Table:
    table = Table(title="by family (medians over models)", header_style="bold")
    for col in ("family", "models", "layers", "alpha", "alpha_weighted", "log_alpha_norm"):
        table.add_column(col, justify="left" if col == "family" else "right")
    for family, group in ok.groupby(family_labels(ok["family"]), sort=True):
        table.add_row(
            escape(str(family) or "-"),
            str(len(group)),
            fmt_num(group["num_analysed"].median(), ".0f"),
            *(fmt_num(group.get(f"{m}_mean", pd.Series()).median()) for m in _HTSR),
        )
    return table


_HTSR = ("alpha", "alpha_weighted", "log_alpha_norm")


def render_correlation(result: CorrelationResult, console: Console, top: int) -> None:
    """The ``top`` metrics by |Kendall τ| for each (family, score), then the dropped models."""
    for (family, score), group in result.table.groupby(["family", "score"], sort=False):
        table = Table(title=f"{family} · {score}", header_style="bold")
        for col in ("metric", "n", "Kendall τ [95% CI]", "Spearman ρ [95% CI]", "R²"):
            table.add_column(col, justify="left" if col == "metric" else "right", no_wrap=True)
        for _, row in group.head(top).iterrows():
            table.add_row(
                escape(str(row["metric"])),
                str(row["n"]),
                _interval(row, "kendall"),
                _interval(row, "spearman"),
                fmt_num(row["r2"]),
            )
        console.print(table)
    if len(result.excluded):
        console.print(f"{len(result.excluded)} model(s) left out:", highlight=False)
        for _, row in result.excluded.head(MAX_ERRORS).iterrows():
            console.print(f"  {escape(str(row['model']))}: {escape(str(row['reason']))}")


def _interval(row: pd.Series, name: str) -> str:
    low, high = row[f"{name}_low"], row[f"{name}_high"]
    return f"{fmt_num(row[name])} [{fmt_num(low)}, {fmt_num(high)}]"
