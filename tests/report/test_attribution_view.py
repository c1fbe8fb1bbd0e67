"""The attribution page: structure, escaping, one dot per selected document, offline."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from layerscope.probes.attribution import AttributionResult
from layerscope.report.html.attribution_view import attribution_html

from .conftest import HOSTILE, read_page


def _result() -> AttributionResult:
    alignment = np.array([0.1, 0.5, -0.2, 0.3])
    meta = {"tuned": HOSTILE, "base": "base/", "projection_dim": 64, "num_tensors_changed": 3}
    ids = ["a", HOSTILE, "c", "d"]
    documents = ["to be  or\nnot", "that is " * 50]
    return AttributionResult(
        alignment, np.array([1, 3]), np.array([0.5, 0.6]), ids, meta, documents
    )


def test_page_shows_the_selection_escaped_and_offline() -> None:
    html = attribution_html(_result())
    page = read_page(html)
    assert {"summary", "ranking", "selection"} <= page.ids
    assert HOSTILE not in html  # ids and the title are escaped everywhere
    assert not [a for t, a in page.tags if t == "script" and a.get("src")]
    assert len(page.find("circle", class_="v-traps")) == 2  # one dot per selected document
    cells = html.split("<tbody>")[1]
    assert cells.index("to be or not") < cells.index("that is")  # in the order picked
    assert "0.500" in cells and "0.600" in cells and "0.300" in cells
    assert page.find("body")[0]["data-report"] == "attribution"


def test_long_documents_are_cut_and_missing_ones_left_blank() -> None:
    cells = attribution_html(_result()).split("<tbody>")[1]
    shown = "that is " * 50
    assert " ".join(shown.split())[:80] in cells and " ".join(shown.split())[:81] not in cells
    bare = replace(_result(), documents=[])
    rows = read_page(attribution_html(bare)).find("tr")
    assert len(rows) == 3  # header and the two picks, without document text
    assert "to be" not in attribution_html(bare)
