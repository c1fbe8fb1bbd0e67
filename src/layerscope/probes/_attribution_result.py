"""The result of ``attribute``: plain data, written as JSON/CSV and read back for
``layerscope report`` (SELECT, arXiv 2506.15553; docs/memorization.md)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

# 2: every candidate's id ("ids") and the start of each selected document's text
# ("document" in the selection rows). Files of version 1 are still read.
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass(frozen=True)
class AttributionResult:
    """Alignment of every candidate and the greedy selection.

    Attributes:
        alignment: ⟨ĝ(x), t⟩ per candidate, in input order.
        selected: indices of the selected candidates, in the order picked.
        coverage: cos(Σ ĝ over the first r picks, t) after each pick r.
        ids: the candidates' identifiers (in a file of schema version 1 only the selected
            candidates' ids were kept; the others read back as "").
        meta: options and sizes (parameters compared, Δ norm...).
        documents: the start of each selected document's text, in the order picked, for
            the reports (empty when the candidates were given as token ids to the library).
    """

    alignment: NDArray[np.float64]
    selected: NDArray[np.int64]
    coverage: NDArray[np.float64]
    ids: list[str]
    meta: dict[str, Any] = field(default_factory=dict)
    documents: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """The selection as a table: rank, index, id, alignment, coverage."""
        return pd.DataFrame(
            {
                "rank": np.arange(1, self.selected.size + 1),
                "index": self.selected,
                "id": [self.ids[i] for i in self.selected],
                "alignment": self.alignment[self.selected],
                "coverage": self.coverage,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: schema version, meta, the selection, every candidate's id and
        alignment."""
        from layerscope.results import records

        rows = records(self.to_frame())
        for row, text in zip(rows, self.documents, strict=False):
            row["document"] = text
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "attribution",
            "meta": self.meta,
            "selected": rows,
            "ids": list(self.ids),
            "alignment": [float(a) for a in self.alignment],
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "attribution result") -> AttributionResult:
        """Inverse of :meth:`to_dict` (schema versions 1 and 2); ``ValueError`` naming
        ``where`` and what is wrong otherwise."""
        from layerscope.results import check_header

        check_header(data, "attribution", READABLE_VERSIONS, where)
        try:
            alignment = np.asarray(data["alignment"], dtype=np.float64).reshape(-1)
            rows = list(data["selected"])
            selected = np.array([int(r["index"]) for r in rows], dtype=np.int64)
            coverage = np.array([float(r["coverage"]) for r in rows], dtype=np.float64)
            picked = [str(r["id"]) for r in rows]
            ids = [str(i) for i in data.get("ids", [""] * alignment.size)]
            documents = [str(r["document"]) for r in rows if "document" in r]
            meta = dict(data.get("meta", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: not a complete attribution result ({exc!r})") from exc
        if documents and len(documents) != len(rows):
            raise ValueError(f"{where}: some selected rows have a document, others not")
        if len(ids) != alignment.size or np.any((selected < 0) | (selected >= alignment.size)):
            raise ValueError(
                f"{where}: selection or ids do not match the {alignment.size} candidates"
            )
        for i, name in zip(selected.tolist(), picked, strict=True):
            ids[i] = name
        return cls(alignment, selected, coverage, ids, meta, documents)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> AttributionResult:
        """Read a file written by :meth:`to_json`."""
        from layerscope.results import load_json

        return cls.from_dict(load_json(path), str(path))

    def to_json(self, path: str) -> None:
        """Write :meth:`to_dict` as JSON (atomically)."""
        from layerscope.results import atomic_write

        text = json.dumps(self.to_dict(), indent=2)
        atomic_write(path, lambda h: h.write(text.encode()))

    def to_csv(self, path: str) -> None:
        """Write the selection table as CSV (atomically)."""
        from layerscope.results import atomic_write

        atomic_write(path, lambda h: h.write(self.to_frame().to_csv(index=False).encode()))
