"""The correlation view of a survey: one scatter per top metric coloured by family, the
correlation table, and the models that fell out. Reads results; computes nothing."""

from __future__ import annotations

import math

import pandas as pd

from layerscope.report.html.page import card, cards, document, figure, fmt, section, simple_table
from layerscope.report.html.svg import Plot, axes, esc, num, padded, svg
from layerscope.survey.correlate import POOLED, CorrelationResult
from layerscope.survey.tables import family_labels

# Okabe & Ito (2008) colour-blind-safe palette, one colour per family in sorted order.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000")
TABLE_ROWS = 10


def correlation_html(
    models: pd.DataFrame, result: CorrelationResult, title: str, top: int = 6
) -> str:
    """The page: the ``top`` pooled metrics of each score as scatters, then the tables."""
    families = sorted(family_labels(models["family"]).unique())
    colour = {f: PALETTE[i % len(PALETTE)] for i, f in enumerate(families)}
    ok = models[models["status"] == "ok"]
    scores = list(dict.fromkeys(result.table["score"]))
    body = [
        f"<header><h1>{esc(title)}</h1></header>",
        cards(
            [
                card("models", str(len(models))),
                card("analysed", str(len(ok))),
                card(
                    "left out",
                    str(len(result.excluded)),
                    "v-failed" if len(result.excluded) else "",
                ),
                card("families", str(len(families))),
            ]
        ),
    ]
    for score in scores:
        pooled = result.table[(result.table["family"] == POOLED) & (result.table["score"] == score)]
        figs = [
            _scatter(ok, row, colour)
            for _, row in pooled.head(top).iterrows()
            if math.isfinite(row["kendall"])
        ]
        note = "pooled over all families, best |Kendall τ| first; colour = family"
        grid = f'<div style="display:flex;flex-wrap:wrap;gap:16px">{"".join(figs)}</div>'
        content = _legend(colour) + grid
        body.append(section(f"top-{score}", f"Top metrics for {score}", content, note))
    body.append(section("table", "Correlations", _table(result.table)))
    if len(result.excluded):
        rows = result.excluded[["model", "family", "reason"]].itertuples(index=False)
        body.append(
            section(
                "excluded", "Models left out", simple_table(rows, ["model", "family", "reason"])
            )
        )
    return document(title, "correlate", body)


def _scatter(ok: pd.DataFrame, row: pd.Series, colour: dict[str, str]) -> str:
    metric, score = str(row["metric"]), str(row["score"])
    x = pd.to_numeric(ok[metric], errors="coerce")
    y = pd.to_numeric(ok[score], errors="coerce")
    keep = x.notna() & y.notna() & x.abs().lt(math.inf) & y.abs().lt(math.inf)
    family = family_labels(ok["family"])[keep]
    x, y, names = x[keep], y[keep], ok["model"][keep]
    plot = Plot.make(360, 260, padded(x.min(), x.max()), padded(y.min(), y.max()))
    dots = [
        f'<circle cx="{num(plot.x(a))}" cy="{num(plot.y(b))}" r="3.5" '
        f'style="fill:{colour[f]};fill-opacity:.8"><title>{esc(n)} ({esc(f or "-")}): '
        f"{esc(fmt(a))}, {esc(fmt(b))}</title></circle>"
        for a, b, f, n in zip(x, y, family, names, strict=True)
    ]
    chart = svg(plot, [axes(plot, metric, score), *dots], f"{metric} vs {score}")
    caption = (
        f"{metric}: Kendall τ {fmt(row['kendall'], '.2f')} "
        f"[{fmt(row['kendall_low'], '.2f')}, {fmt(row['kendall_high'], '.2f')}], "
        f"Spearman ρ {fmt(row['spearman'], '.2f')}, R² {fmt(row['r2'], '.2f')}, n = {row['n']}"
    )
    return figure(chart, caption)


def _legend(colour: dict[str, str]) -> str:
    """The families' colours, once above the scatters."""
    items = "".join(
        f'<span style="margin-right:1em"><span style="color:{c}">●</span> {esc(f or "-")}</span>'
        for f, c in colour.items()
    )
    return f'<p class="note">{items}</p>'


def _table(table: pd.DataFrame) -> str:
    rows = []
    for _, group in table.groupby(["family", "score"], sort=False):
        for _, r in group.head(TABLE_ROWS).iterrows():
            rows.append(
                (
                    r["family"],
                    r["score"],
                    r["metric"],
                    r["n"],
                    _ci(r, "kendall"),
                    _ci(r, "spearman"),
                    fmt(r["r2"], ".2f"),
                )
            )
    header = ["family", "score", "metric", "n", "Kendall τ [95% CI]", "Spearman ρ [95% CI]", "R²"]
    return simple_table(rows, header)


def _ci(row: pd.Series, name: str) -> str:
    return (
        f"{fmt(row[name], '.2f')} [{fmt(row[f'{name}_low'], '.2f')}, "
        f"{fmt(row[f'{name}_high'], '.2f')}]"
    )
