"""The memorization view: how many bits of each document a causal LM memorized, as
measured by ``layerscope memorized`` (:mod:`layerscope.probes.memorization`)."""

from __future__ import annotations

import numpy as np

from layerscope.probes._memorization_result import MemorizationResult
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

TOP = 20  # documents in the table


def _header(result: MemorizationResult) -> str:
    meta = result.meta
    line = " · ".join(esc(f"{k}: {meta[k]}") for k in ("model", "data", "reference") if k in meta)
    remembered = int(np.count_nonzero(result.memorized_bits > 0))
    items = [
        card("documents", str(result.model_bits.size)),
        card("with memorized bits", str(remembered)),
        card("memorized bits", fmt(result.total_bits, ",.1f")),
        card("bits per token", fmt(result.bits_per_token, ".3f")),
        card("bits per parameter", fmt(result.bits_per_parameter, ".3g")),
    ]
    title = esc(meta.get("model", "the model"))
    return (
        f'<header id="summary"><h1>layerscope memorized: {title}</h1>'
        f'<p class="meta">{line}</p>{cards(items)}</header>'
    )


def _chart(result: MemorizationResult, order: np.ndarray, top: int) -> str:
    """Every document's memorized bits, most first; the table's documents as dots."""
    values = result.memorized_bits[order]
    lo, hi = padded(0.0, max(float(values.max()), 1.0))
    plot = Plot.make(640, 300, (0.5, order.size + 0.5), (lo, hi))
    ranks = np.arange(1, order.size + 1)
    body = [axes(plot, "documents, most memorized first", "memorized bits")]
    body.append(path(plot, ranks, values, "esd"))
    names = result.to_frame()["id"].tolist()
    for rank, i in enumerate(order[:top].tolist(), 1):
        title = f"{rank}: {names[i]} ({result.memorized_bits[i]:.1f} bits)"
        body.append(dot(plot, float(rank), float(result.memorized_bits[i]), "v-traps", title))
    return svg(plot, body, "memorized bits of every document, most first")


def memorization_html(result: MemorizationResult, top: int = TOP) -> str:
    """The page: summary, every document's memorized bits (sorted), and the ``top`` most
    memorized documents with their code lengths and the start of their text.

    One renderer for both entry points: ``layerscope memorized --html`` and ``layerscope
    report`` on a saved JSON result.
    """
    order = np.lexsort((np.arange(result.model_bits.size), -result.memorized_bits))
    frame = result.to_frame()
    texts = result.documents or ("",) * result.model_bits.size
    rows = []
    for rank, i in enumerate(order[:top].tolist(), 1):
        row = frame.iloc[i]
        shown = excerpt(texts[i])
        rows.append(
            [rank, row["id"], int(row["tokens"]), f"{row['model_bits']:.1f}",
             f"{row['reference_bits']:.1f}", f"{row['memorized_bits']:.1f}", shown]
        )  # fmt: skip
    header = ["rank", "id", "scored tokens", "model bits", "reference bits", "memorized bits"]
    table = simple_table(rows, [*header, "document"])
    note = (
        "Memorized bits: max(0, H_ref(x) − H_model(x)), the bits the model saves coding the "
        f"document against the reference ({result.meta.get('reference', result.reference)})"
        " (Morris et al. 2025, arXiv 2505.24832; docs/memorization.md)."
    )
    caption = "memorized bits of every document, most first; dots: the documents in the table"
    title = f"The {min(top, order.size)} most memorized documents"
    chart = figure(_chart(result, order, top), caption)
    body = [
        _header(result),
        section("documents", "Memorized bits per document", chart),
        section("most-memorized", title, table, note),
    ]
    return document(f"layerscope memorized: {result.meta.get('model', '')}", "memorization", body)
