"""The attribution result as a file: JSON round trip (schema 2), files of schema 1 still
read, one-line errors naming the file, and the document previews."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from layerscope.probes._attribution_result import AttributionResult
from layerscope.results import PREVIEW_CHARS, preview

HOSTILE = "<script>alert(1)</script>"


def _result() -> AttributionResult:
    alignment = np.array([0.125, -0.5, 0.75, 1 / 3, 0.0])
    meta = {"tuned": "t/", "projection_dim": 64, "delta_norm": 0.1 + 0.2, "seed": 0}
    ids = ["a", HOSTILE, "c", "d", "é"]
    documents = ["third doc", "fourth"]
    return AttributionResult(
        alignment, np.array([2, 3]), np.array([0.75, 0.8]), ids, meta, documents
    )


def _same(a: AttributionResult, b: AttributionResult) -> None:
    np.testing.assert_array_equal(a.alignment, b.alignment)  # exact: JSON keeps float64
    np.testing.assert_array_equal(a.selected, b.selected)
    np.testing.assert_array_equal(a.coverage, b.coverage)
    assert (a.ids, a.meta, a.documents) == (b.ids, b.meta, b.documents)


def test_json_round_trip_is_exact(tmp_path: Path) -> None:
    result = _result()
    path = tmp_path / "ranked.json"
    result.to_json(str(path))
    data = json.loads(path.read_text())
    assert (data["schema_version"], data["kind"]) == (2, "attribution")
    assert [r["document"] for r in data["selected"]] == ["third doc", "fourth"]
    _same(AttributionResult.from_json(path), result)


def test_schema_1_files_are_read_with_the_selected_ids() -> None:
    data = _result().to_dict()
    data["schema_version"] = 1  # what layerscope wrote before: no "ids", no "document"
    del data["ids"]
    for row in data["selected"]:
        del row["document"]
    old = AttributionResult.from_dict(json.loads(json.dumps(data)))
    assert old.ids == ["", "", "c", "d", ""] and old.documents == []
    np.testing.assert_array_equal(old.alignment, _result().alignment)


def _broken(change: str) -> Any:
    data = _result().to_dict()
    if change == "kind":
        data["kind"] = "scan"
    elif change == "version":
        data["schema_version"] = 3
    elif change == "alignment":
        del data["alignment"]
    elif change == "index":
        data["selected"][0]["index"] = 9
    else:
        data = [1, 2]
    return data


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("kind", "expected an attribution result, found kind 'scan'"),
        ("version", "unsupported schema version 3 of an attribution result"),
        ("alignment", "not a complete attribution result (KeyError('alignment'))"),
        ("index", "selection or ids do not match the 5 candidates"),
        ("list", "expected an attribution result, found kind 'list'"),
    ],
)
def test_bad_files_raise_one_line_naming_the_file(change: str, message: str) -> None:
    with pytest.raises(ValueError, match=r"^ranked\.json: ") as err:
        AttributionResult.from_dict(_broken(change), "ranked.json")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_unreadable_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match=r"x\.json: not a readable JSON result"):
        AttributionResult.from_json(path)


def test_preview_collapses_whitespace_and_cuts() -> None:
    assert preview("to  be\n\tor not ") == "to be or not"
    assert preview([5, 0, 17]) == "5 0 17"
    long = preview("ab " * 500)
    assert len(long) == PREVIEW_CHARS and long.startswith("ab ab")
