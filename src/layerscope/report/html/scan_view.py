"""The scan view: summary, alpha by depth, alpha histogram, the layer table, spectra."""

from __future__ import annotations

from typing import Any

import pandas as pd

from layerscope.gate import GateResult
from layerscope.report.html.charts import (
    depth_order,
    histogram,
    layer_series,
    per_layer_chart,
    verdict_legend,
)
from layerscope.report.html.page import (
    card,
    cards,
    data_table,
    document,
    figure,
    fmt,
    gate_panel,
    is_missing,
    json_block,
    section,
    simple_table,
)
from layerscope.report.html.spectrum_view import details, spectrum_key
from layerscope.report.html.svg import esc
from layerscope.results import ID_COLUMNS, ScanResult

VERDICT_CARDS = (
    ("count_ok", "ok", "v-ok"),
    ("count_under_trained", "under-trained (α > 6 or random-like)", "v-under-trained"),
    ("count_over_trained", "over-trained (α < 2)", "v-over-trained"),
    ("count_traps", "with correlation traps", "v-traps"),
    ("count_shaky_fits", "shaky fits", ""),
    ("num_failed", "not analysable", "v-failed"),
)
# Table columns first in this order (then every other column of the result).
LEAD_COLUMNS = (*ID_COLUMNS, "verdict", "alpha", "sigma", "alpha_weighted", "num_traps", "reason")


def header(result: ScanResult, gate: GateResult | None = None) -> str:
    """Title, provenance and the summary cards."""
    meta, s = result.meta, result.summary
    source = str(meta.get("source", "model"))
    line = " · ".join(
        esc(x)
        for x in (
            f"scanned {meta.get('created', '?')}",
            f"metrics: {', '.join(meta.get('metric_groups', [])) or '?'}",
            f"device {meta.get('device', '?')}",
            f"{fmt(meta.get('elapsed_s'), '.3g')} s",
            f"layerscope {meta.get('layerscope_version', '?')}",
        )
    )
    items = [card("layers analysed", f"{s.get('num_analysed', 0)} of {s.get('num_layers', 0)}")]
    items += [card(label, str(s[key]), cls) for key, label, cls in VERDICT_CARDS if key in s]
    items += [
        card("mean α", fmt(s.get("alpha"))),
        card("mean α weighted", fmt(s.get("alpha_weighted"))),
        card("skipped tensors", str(len(result.skipped))),
    ]
    return (
        f'<header id="summary"><h1>layerscope scan: {esc(source)}</h1>'
        f'<p class="meta">{line}</p>{cards(items)}{gate_panel(gate)}</header>'
    )


def depth_section(rows: list[dict[str, Any]]) -> str:
    """Alpha by depth with the 2–6 band and verdict colours, plus the alpha histogram."""
    ok = [r for r in rows if r.get("status", "ok") == "ok"]
    if not ok:
        return section("depth", "Alpha by depth", '<p class="note">No layer was analysed.</p>')
    order = depth_order([str(r.get("name", "")) for r in ok])
    series = layer_series(ok, order, "alpha", "alpha")
    chart = per_layer_chart([series], len(ok), "alpha (power-law exponent)")
    present = [
        v
        for v in ("ok", "under-trained", "over-trained", "traps", "unknown")
        if any(r.get("verdict") == v for r in ok)
    ]
    alphas = [float(r["alpha"]) for r in ok if not is_missing(r.get("alpha"))]
    body = (
        verdict_legend(present, [("band", "healthy band 2–6")])
        + '<div class="charts">'
        + figure(
            chart,
            "One point per analysed matrix, coloured by verdict; click a point "
            "to open its spectrum. Values above 12 sit on the top edge.",
        )
        + figure(histogram(alphas, "alpha"), "How many layers fall in each alpha bin.")
        + "</div>"
    )
    return section("depth", "Alpha by depth", body)


def skipped_section(result: ScanResult) -> str:
    """Skipped tensors grouped by reason (count and one example)."""
    if result.skipped.empty:
        return ""
    groups = [
        (reason, len(g), g["name"].iloc[0])
        for reason, g in result.skipped.groupby("reason", sort=False)
    ]
    table = simple_table(groups, ("reason", "count", "example"))
    return section("skipped", f"Skipped tensors ({len(result.skipped)})", table)


def table_columns(frame: pd.DataFrame) -> list[str]:
    """The layer table's columns: identifiers and verdict first, then the rest."""
    lead = [c for c in LEAD_COLUMNS if c in frame.columns]
    return lead + [c for c in frame.columns if c not in lead]


def scan_body(result: ScanResult, gate: GateResult | None = None) -> list[str]:
    """The parts of the scan view, in page order."""
    rows = [{str(k): v for k, v in r.items()} for r in result.layers.to_dict(orient="records")]
    spectra = details(rows, result.samples)
    note = (
        "Click a column to sort, a row to open its spectrum. Column meanings: docs/metrics.md."
        if spectra
        else "Click a column to sort. Spectra were not kept in this result "
        "(scan with keep_spectra=True, or the CLI's --html), so rows do not open a plot."
    )
    key = spectrum_key() if spectra else ""
    table = data_table(
        result.layers, "layers", columns=table_columns(result.layers), expandable=True
    )
    return [
        header(result, gate),
        depth_section(rows),
        section("layers-section", f"Layers ({len(rows)})", key + table, note),
        skipped_section(result),
        json_block("spectra-data", spectra),
    ]


def scan_html(result: ScanResult, gate: GateResult | None = None) -> str:
    """The scan report as one self-contained HTML document (``gate``: rules evaluated on
    the result, shown in the header)."""
    title = f"layerscope scan: {result.meta.get('source', 'model')}"
    return document(title, "scan", scan_body(result, gate))
