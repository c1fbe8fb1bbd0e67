"""The page around the views: document shell, summary cards, sortable tables, JSON blocks.

All text from results (layer names, sources, reasons, messages) goes through
:func:`~layerscope.report.html.svg.esc`; JSON embedded in the page escapes ``</`` and
``<!--``, so no string inside it can close (or change the parsing of) its ``<script>``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from layerscope._version import __version__
from layerscope.gate import GateResult
from layerscope.report.html.assets import CSS, JS
from layerscope.report.html.svg import esc

VERDICTS = ("ok", "under-trained", "over-trained", "traps", "untouched", "unknown")
# Verdicts that do not call for a look (the table's "problems only" filter hides them).
FINE = frozenset({"ok", "untouched"})
# Text columns shown left-aligned; the name column may be long.
TEXT_COLUMNS = frozenset(
    {"name", "kind", "param", "dtype", "status", "verdict", "reason", "warning", "fit_quality"}
)


def verdict_class(verdict: object) -> str:
    """CSS class of a verdict (``v-ok`` ...); anything unexpected maps to ``v-unknown``."""
    text = str(verdict)
    return f"v-{text}" if text in VERDICTS else "v-unknown"


def is_missing(value: object) -> bool:
    """Whether a cell has no value (None, NaN or ±inf)."""
    return value is None or (isinstance(value, float | np.floating) and not math.isfinite(value))


def cell_text(value: object) -> str:
    """Display text of a table cell: 4 significant digits, ``—`` for missing values."""
    if is_missing(value):
        return "—"
    if isinstance(value, bool | np.bool_):
        return "yes" if value else ""
    if isinstance(value, int | np.integer):
        return str(int(value))
    if isinstance(value, float | np.floating):
        v = float(value)
        return str(int(v)) if v.is_integer() and abs(v) < 1e9 else f"{v:.4g}"
    return str(value)


def fmt(value: object, spec: str = ".3g") -> str:
    """A summary number (``—`` when missing)."""
    if is_missing(value):
        return "—"
    if isinstance(value, int | np.integer):
        return str(int(value))
    try:
        return format(float(value), spec)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return str(value)


def json_block(element_id: str, data: Any) -> str:
    """``<script type="application/json">`` holding ``data``; inert whatever the strings."""
    text = json.dumps(data, separators=(",", ":"), allow_nan=False, default=str)
    # Only "</" can end the element and "<!--" change how it is parsed; JSON allows "\/".
    text = text.replace("</", "<\\/").replace("<!--", "<\\u0021--")
    return f'<script type="application/json" id="{esc(element_id)}">{text}</script>'


def card(label: str, value: str, cls: str = "") -> str:
    """One summary figure: a big value over a small label."""
    return f'<div class="card {esc(cls)}"><b>{esc(value)}</b><span>{esc(label)}</span></div>'


def cards(items: Iterable[str]) -> str:
    """A row of summary cards."""
    return f'<div class="cards">{"".join(items)}</div>'


def section(section_id: str, title: str, body: str, note: str = "") -> str:
    """A titled section; ``note`` is a short explanation under the title."""
    text = f'<p class="note">{esc(note)}</p>' if note else ""
    return f'<section id="{esc(section_id)}"><h2>{esc(title)}</h2>{text}{body}</section>'


def figure(svg_text: str, caption: str) -> str:
    """An SVG chart with its (escaped) caption."""
    return f"<figure>{svg_text}<figcaption>{esc(caption)}</figcaption></figure>"


def _controls(table_id: str, verdicts: Sequence[str], problems: bool) -> str:
    options = "".join(f'<option value="{esc(v)}">{esc(v)}</option>' for v in verdicts)
    select = (
        f'<label>verdict <select><option value="">all</option>{options}</select></label>'
        if verdicts
        else ""
    )
    check = '<label><input type="checkbox"> problems only</label>' if problems else ""
    return (
        f'<div class="controls" data-for="{esc(table_id)}">'
        f'<input type="search" placeholder="filter by name…" aria-label="filter by name">'
        f'{select}{check}<span class="count note"></span></div>'
    )


def _row(rec: Mapping[str, Any], columns: Sequence[str], key: str, marks: frozenset[str]) -> str:
    verdict = rec.get("verdict")
    status = rec.get("status", "ok")
    shown_verdict = verdict if not is_missing(verdict) else ("failed" if status != "ok" else "")
    problem = "0" if shown_verdict in FINE else "1"
    name = str(rec.get("name", ""))
    cls = ' class="dup"' if name in marks else ""
    cells = []
    for col in columns:
        value = rec.get(col)
        classes = []
        if col in TEXT_COLUMNS:
            classes.append("s")
        if col in ("name", "reason"):
            classes.append(col)
        if col == "verdict":
            value = shown_verdict
            classes.append(verdict_class(value) if value != "failed" else "v-failed")
        attr = f' class="{" ".join(classes)}"' if classes else ""
        title = f' title="{esc(value)}"' if col == "name" else ""
        cells.append(f"<td{attr}{title}>{esc(cell_text(value))}</td>")
    return (
        f'<tr data-row="{esc(cell_text(rec.get(key)))}" data-name="{esc(name)}" '
        f'data-verdict="{esc(shown_verdict)}" data-problem="{problem}"{cls}>{"".join(cells)}</tr>'
    )


def data_table(
    frame: pd.DataFrame,
    table_id: str,
    *,
    columns: Sequence[str] | None = None,
    key: str = "layer_id",
    expandable: bool = False,
    marked: Iterable[str] = (),
) -> str:
    """A sortable, filterable table of ``frame`` (one ``<tr>`` per row, all columns).

    ``expandable`` rows open a detail row (the layer's spectrum) on click; names in
    ``marked`` are highlighted (duplicated matrices).
    """
    cols = [c for c in (columns or frame.columns) if c in frame.columns]
    recs = frame.to_dict(orient="records")
    verdicts = sorted({str(v) for v in frame.get("verdict", pd.Series(dtype=object)).dropna()})
    head = "".join(
        f'<th class="s" scope="col">{esc(c)}</th>' if c in TEXT_COLUMNS else f"<th>{esc(c)}</th>"
        for c in cols
    )
    marks = frozenset(marked)
    body = "".join(_row({str(k): v for k, v in r.items()}, cols, key, marks) for r in recs)
    cls = "sortable expandable" if expandable else "sortable"
    return (
        _controls(table_id, verdicts, "verdict" in frame.columns)
        + f'<div class="tablewrap"><table id="{esc(table_id)}" class="{cls}">'
        f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>"
    )


def simple_table(rows: Iterable[Sequence[object]], header: Sequence[str]) -> str:
    """A plain (static) table of already-chosen values, every cell escaped."""
    head = "".join(f'<th class="s">{esc(h)}</th>' for h in header)
    body = "".join(
        "<tr>" + "".join(f'<td class="s">{esc(cell_text(v))}</td>' for v in r) + "</tr>"
        for r in rows
    )
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="tablewrap">{table}</div>'


def excerpt(text: str, chars: int = 80) -> str:
    """The start of a document for a table cell: whitespace collapsed, ``chars`` long."""
    return " ".join(text.split())[:chars]


def slug(text: str) -> str:
    """A lower-case id made of letters, digits and dashes."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"


def document(title: str, kind: str, body: Iterable[str]) -> str:
    """The complete, self-contained HTML document (inline CSS and JS, no external URL)."""
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f'<meta name="generator" content="layerscope {esc(__version__)}">'
        '<link rel="icon" href="data:,">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head>"
        f'<body data-report="{esc(kind)}">'
        + "".join(body)
        + f'<footer class="note"><p>layerscope {esc(__version__)} · column meanings: '
        "docs/metrics.md · this page reads results only; it computes no metric.</p></footer>"
        f"<script>{JS}</script></body></html>"
    )


def gate_panel(result: GateResult | None) -> str:
    """The gate result: passed/failed and one line per rule (empty without rules)."""
    if result is None or not result.checks:
        return ""
    status = "pass" if result.passed else "fail"
    title = "gate passed" if result.passed else "gate failed"
    items = "".join(
        f"<li><b>{'FAIL' if c.failed else 'pass'}</b> {esc(c.rule)}: {esc(c.message)}</li>"
        for c in result.checks
    )
    return f'<div id="gate" class="gate {status}"><b>{title}</b><ul>{items}</ul></div>'
