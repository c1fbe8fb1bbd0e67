"""The attribution view: which candidates explain a fine-tune's weight update, as ranked
by ``layerscope attribute`` (:mod:`layerscope.probes.attribution`)."""

from __future__ import annotations

import numpy as np

from layerscope.probes.attribution import AttributionResult
from layerscope.report.html.page import (
    card,
    cards,
    document,
    excerpt,
    figure,
    fmt,
    section,
    simple_table,
)
from layerscope.report.html.svg import Plot, axes, dot, esc, padded, path, svg


def _header(result: AttributionResult) -> str:
    meta = result.meta
    line = " · ".join(
        esc(f"{k}: {meta[k]}")
        for k in ("base", "tuned", "candidates", "projection_dim", "checkpoints", "seed")
        if k in meta
    )
    final = result.coverage[-1] if result.coverage.size else float("nan")
    items = [
        card("candidates", str(result.alignment.size)),
        card("selected", str(result.selected.size)),
        card("tensors changed", fmt(meta.get("num_tensors_changed"))),
        card("parameters changed", fmt(meta.get("num_parameters_changed"), ".3g")),
        card("coverage of the selection", fmt(final, ".3f")),
    ]
    title = esc(meta.get("tuned", "the update"))
    return (
        f'<header id="summary"><h1>layerscope attribute: {title}</h1>'
        f'<p class="meta">{line}</p>{cards(items)}</header>'
    )


def _chart(result: AttributionResult) -> str:
    """Every candidate's alignment in decreasing order; the selected ones as dots."""
    order = np.argsort(-result.alignment, kind="stable")
    ranks = np.empty_like(order)
    ranks[order] = np.arange(1, order.size + 1)
    values = result.alignment[order]
    lo, hi = padded(float(values.min()), float(values.max()))
    plot = Plot.make(640, 300, (0.5, order.size + 0.5), (lo, hi))
    body = [axes(plot, "candidates, by alignment", "alignment ⟨ĝ, t⟩")]
    body.append(
        path(plot, np.arange(1, order.size + 1), values, "esd")
    )  # existing styles: a blue line
    for pick, i in enumerate(result.selected.tolist(), 1):
        title = f"pick {pick}: {result.ids[i]} (alignment {result.alignment[i]:.3f})"
        body.append(dot(plot, float(ranks[i]), float(result.alignment[i]), "v-traps", title))
    return svg(plot, body, "alignment of every candidate, selected ones marked")


def attribution_html(result: AttributionResult) -> str:
    """The page: summary, the alignment of every candidate, the selection table with the
    start of each selected document (``result.documents``; blank when not kept).

    One renderer for both entry points: ``layerscope attribute --html`` at ranking time
    and ``layerscope report`` on a saved JSON result.
    """
    documents = result.documents or [""] * result.selected.size
    rows = []
    picks = zip(result.selected.tolist(), result.coverage, documents, strict=True)
    for rank, (i, cov, text) in enumerate(picks, 1):
        shown = excerpt(text)
        rows.append([rank, result.ids[i], f"{result.alignment[i]:.3f}", f"{cov:.3f}", shown])
    table = simple_table(rows, ["rank", "id", "alignment", "coverage", "document"])
    note = (
        "Alignment: cosine of the candidate's projected loss gradient at the base model with "
        "−Δ; coverage: cosine of the sum of the selected gradients with −Δ after each pick "
        "(SELECT, arXiv 2506.15553; docs/memorization.md)."
    )
    caption = "alignment of every candidate, highest first; dots: the selected documents"
    body = [
        _header(result),
        section("ranking", "Alignment of the candidates", figure(_chart(result), caption)),
        section("selection", "Selected documents, in the order picked", table, note),
    ]
    return document(f"layerscope attribute: {result.meta.get('tuned', '')}", "attribution", body)
