"""The compare view: base vs tuned alpha, the update's alpha and size, untouched and
duplicated matrices, the gate result, the worst updates and the full table."""

from __future__ import annotations

from typing import Any

from layerscope.compare_result import CompareResult
from layerscope.gate import GateResult
from layerscope.report.html.charts import (
    Series,
    depth_order,
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
    section,
    simple_table,
)
from layerscope.report.html.svg import esc

SUMMARY_CARDS = (
    ("num_matrices", "matrices compared", ""),
    ("num_changed", "changed", ""),
    ("num_untouched", "untouched", "v-untouched"),
    ("count_under_trained_updates", "under-trained updates", "v-under-trained"),
    ("count_over_trained_updates", "over-trained updates", "v-over-trained"),
    ("count_traps_updates", "updates with traps", "v-traps"),
    ("count_low_rank_updates", "updates too low-rank to fit", "v-low-rank"),
    ("num_left_band", "layers moved out of alpha 2–6", "v-over-trained"),
    ("num_duplicated_pairs", "duplicated pairs", ""),
    ("num_only_in_base", "only in base", ""),
    ("num_only_in_tuned", "only in tuned", ""),
    ("num_shape_mismatch", "shape mismatches", ""),
)
LEAD_COLUMNS = (
    "layer_id",
    "name",
    "kind",
    "N",
    "M",
    "verdict",
    "alpha",
    "rel_update",
    "base_alpha",
    "tuned_alpha",
    "delta_alpha",
    "reason",
)


def _header(result: CompareResult, gate: GateResult | None) -> str:
    meta, s = result.meta, result.summary
    base = meta.get("base") or "(LoRA adapter alone)"
    line = " · ".join(
        esc(x)
        for x in (
            f"base: {base}",
            f"tuned: {meta.get('tuned', '?')}",
            f"mode: {meta.get('mode', '?')}",
            f"compared {meta.get('created', '?')}",
            f"{fmt(meta.get('elapsed_s'), '.3g')} s",
        )
    )
    items = [card(label, str(s[key]), cls) for key, label, cls in SUMMARY_CARDS if key in s]
    items.append(card("mean ‖ΔW‖/‖W‖", fmt(s.get("mean_rel_update"), ".2e")))
    return (
        f'<header id="summary"><h1>layerscope compare: {esc(meta.get("tuned", "tuned"))}</h1>'
        f'<p class="meta">{line}</p>{cards(items)}{gate_panel(gate)}</header>'
    )


def _marks(
    result: CompareResult, rows: list[dict[str, Any]], order: list[int]
) -> tuple[list[int], list[int], set[str]]:
    """Depth positions of untouched rows and of rows in a duplicated pair, and dup names."""
    dup_names = {str(n) for col in ("name_a", "name_b") for n in result.duplicated.get(col, [])}
    untouched = [p for p, i in enumerate(order) if rows[i].get("verdict") == "untouched"]
    dups = [p for p, i in enumerate(order) if str(rows[i].get("name")) in dup_names]
    return untouched, dups, dup_names


def _charts(result: CompareResult, rows: list[dict[str, Any]]) -> str:
    order = depth_order([str(r.get("name", "")) for r in rows])
    untouched, dups, _ = _marks(result, rows, order)
    base = layer_series(rows, order, "base_alpha", "base alpha", "base")
    after = "merged" if result.meta.get("mode") == "lora" else "tuned"
    tuned = layer_series(rows, order, "tuned_alpha", f"{after} alpha")
    update = layer_series(rows, order, "alpha", "update alpha")
    size = layer_series(rows, order, "rel_update", "‖ΔW‖/‖W‖")
    low_rank = any(r.get("verdict") == "low-rank" for r in rows)
    parts = [
        verdict_legend(
            ["ok", "under-trained", "over-trained", "traps", *(["low-rank"] if low_rank else [])],
            [("base", "base"), ("band", "2–6"), ("untouched-col", "untouched"), ("dup", "dup")],
        )
    ]
    charts: list[tuple[list[Series], str, str, bool]] = [
        ([base, tuned], f"layer alpha: base (hollow) vs {after}", "alpha", True),
        ([update], "alpha of the update ΔW = tuned − base (near-random above 6)", "ΔW alpha", True),
        ([size], "relative size of the update ‖ΔW‖_F / ‖W_base‖_F (log scale)", "‖ΔW‖/‖W‖", False),
    ]
    for series, caption, ylabel, band in charts:
        if not any(s.points for s in series):
            continue
        svg_text = per_layer_chart(
            series, len(rows), ylabel, band=band, ylog=not band, stripes=untouched, rings=dups
        )
        parts.append(figure(svg_text, caption + "; colours: the update's verdict."))
    return section("depth", "Layers: base vs tuned, and the update", "".join(parts))


def _lists(result: CompareResult) -> str:
    out = []
    worst = result.summary.get("worst") or []
    if worst:
        table = simple_table(
            [(w["name"], w["verdict"], w["reason"]) for w in worst], ("name", "verdict", "reason")
        )
        out.append(section("worst", "Worst updates", table))
    if not result.duplicated.empty:
        table = simple_table(
            result.duplicated.itertuples(index=False), list(result.duplicated.columns)
        )
        out.append(
            section(
                "duplicated",
                "Duplicated matrices",
                table,
                "Pairs of (near-)identical matrices within one model.",
            )
        )
    for title, names in (
        ("Only in base", result.only_in_base),
        ("Only in tuned", result.only_in_tuned),
    ):
        if names:
            items = "".join(f"<li>{esc(n)}</li>" for n in names)
            out.append(
                section(
                    title.lower().replace(" ", "-"),
                    f"{title} ({len(names)})",
                    f'<ul class="compact">{items}</ul>',
                )
            )
    if not result.shape_mismatch.empty:
        table = simple_table(
            result.shape_mismatch.itertuples(index=False), list(result.shape_mismatch.columns)
        )
        out.append(section("shape-mismatch", "Shape mismatches", table))
    return "".join(out)


def compare_html(result: CompareResult, gate: GateResult | None = None) -> str:
    """The compare report as one self-contained HTML document."""
    rows = [{str(k): v for k, v in r.items()} for r in result.layers.to_dict(orient="records")]
    order = depth_order([str(r.get("name", "")) for r in rows])
    _, _, dup_names = _marks(result, rows, order)
    cols = [c for c in LEAD_COLUMNS if c in result.layers.columns]
    cols += [c for c in result.layers.columns if c not in cols]
    table = data_table(result.layers, "layers", columns=cols, marked=dup_names)
    body = [
        _header(result, gate),
        _charts(result, rows) if rows else "",
        _lists(result),
        section(
            "layers-section",
            f"Matrices ({len(rows)})",
            table,
            "Metric columns describe the update ΔW; base_alpha/tuned_alpha the layers. "
            "Duplicated matrices are marked at the left of their name.",
        ),
    ]
    title = f"layerscope compare: {result.meta.get('tuned', 'tuned')}"
    return document(title, "compare", body)
