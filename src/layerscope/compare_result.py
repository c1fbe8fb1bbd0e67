"""Compare results as plain data, with the worst layers named first."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pandas as pd

from layerscope.metrics import ALPHA_OVER, ALPHA_UNDER
from layerscope.results import SCHEMA_VERSION, TableResult, json_value, read_json, records

DUPLICATED_COLUMNS = ("model", "name_a", "name_b", "distance")
MISMATCH_COLUMNS = ("name", "base_shape", "tuned_shape")
# Update verdicts from worst to best; ``untouched`` is reported, not ranked.
SEVERITY = {"under-trained": 0, "over-trained": 1, "traps": 2, "ok": 3}
WORST_LIMIT = 10


def rank_worst(layers: pd.DataFrame, limit: int = WORST_LIMIT) -> list[dict[str, Any]]:
    """The ``limit`` worst updates: by verdict severity, then by relative update size."""
    if layers.empty or "verdict" not in layers:
        return []
    ranked = layers[layers["verdict"].isin(list(SEVERITY)) & (layers["verdict"] != "ok")].copy()
    ranked["_sev"] = ranked["verdict"].map(SEVERITY)
    sort_cols = ["_sev", *(["rel_update"] if "rel_update" in ranked else [])]
    ranked = ranked.sort_values(sort_cols, ascending=[True] + [False] * (len(sort_cols) - 1))
    return [
        {"name": r["name"], "verdict": r["verdict"], "reason": r["reason"]}
        for _, r in ranked.head(limit).iterrows()
    ]


def left_band(layers: pd.DataFrame) -> int:
    """Layers whose own alpha was in the HTSR band [2, 6] before the update and is not
    after it (a fit on either side missing: not counted): where the tune made the layer
    itself worse."""
    base = pd.to_numeric(layers["base_alpha"], errors="coerce")
    tuned = pd.to_numeric(layers["tuned_alpha"], errors="coerce")
    inside = base.between(ALPHA_OVER, ALPHA_UNDER)
    return int((inside & tuned.notna() & ~tuned.between(ALPHA_OVER, ALPHA_UNDER)).sum())


def summarize_compare(
    layers: pd.DataFrame,
    duplicated: pd.DataFrame,
    only_in_base: list[str],
    only_in_tuned: list[str],
    shape_mismatch: pd.DataFrame,
) -> dict[str, Any]:
    """Counts of matched/changed/untouched matrices and of update verdicts, mean sizes."""
    verdicts = layers["verdict"].value_counts() if "verdict" in layers else pd.Series(dtype=int)
    changed = layers[layers["status"] == "ok"] if "status" in layers else layers
    summary: dict[str, Any] = {
        "num_matrices": len(layers),
        "num_changed": len(changed),
        "num_untouched": int(verdicts.get("untouched", 0)),
        "num_failed": int((~layers["status"].isin(["ok", "untouched"])).sum())
        if "status" in layers
        else 0,
        "num_duplicated_pairs": len(duplicated),
        "num_only_in_base": len(only_in_base),
        "num_only_in_tuned": len(only_in_tuned),
        "num_shape_mismatch": len(shape_mismatch),
    }
    for v in ("under-trained", "over-trained", "traps", "ok", "low-rank"):
        summary[f"count_{v.replace('-', '_')}_updates"] = int(verdicts.get(v, 0))
    if "base_alpha" in layers and "tuned_alpha" in layers:
        summary["num_left_band"] = left_band(layers)
    for col in ("alpha", "rel_update", "delta_alpha"):
        if col in changed and len(changed):
            summary[f"mean_{col}"] = json_value(pd.to_numeric(changed[col], errors="coerce").mean())
    return summary


@dataclass
class CompareResult(TableResult):
    """The result of :func:`layerscope.compare`.

    Attributes:
        layers: one row per matched matrix; metric columns (alpha, D, ... verdict) describe
            the update ΔW; base_alpha/tuned_alpha/delta_alpha describe the layers themselves.
        duplicated: pairs of (near-)identical matrices within one model (model, name_a,
            name_b, distance).
        only_in_base, only_in_tuned: parameter names present on one side only.
        shape_mismatch: parameters whose shapes differ (name, base_shape, tuned_shape).
        summary: counts, means and ``worst`` (the worst updates, one-line reason each).
        meta: sources, options, timings.
    """

    layers: pd.DataFrame
    duplicated: pd.DataFrame
    only_in_base: list[str]
    only_in_tuned: list[str]
    shape_mismatch: pd.DataFrame
    summary: dict[str, Any]
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict; ``summary.worst`` lists the worst updates first."""
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "compare",
            "meta": self.meta,
            "summary": {k: json_value(v) for k, v in self.summary.items()},
            "layers": records(self.layers),
            "duplicated": records(self.duplicated),
            "only_in_base": self.only_in_base,
            "only_in_tuned": self.only_in_tuned,
            "shape_mismatch": self.shape_mismatch.to_dict(orient="records"),
        }

    def gate_counts(self) -> dict[str, int]:
        """Model-level counts that gate rules can name."""
        return {
            "duplicated": len(self.duplicated),
            "only-in-base": len(self.only_in_base),
            "only-in-tuned": len(self.only_in_tuned),
            "shape-mismatch": len(self.shape_mismatch),
            "left-band": int(self.summary.get("num_left_band", 0)),
        }

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> CompareResult:
        """Read a result written by :meth:`to_json`."""
        data = read_json(path, "compare")
        return cls(
            pd.DataFrame.from_records(data["layers"]),
            pd.DataFrame.from_records(data["duplicated"], columns=list(DUPLICATED_COLUMNS)),
            list(data["only_in_base"]),
            list(data["only_in_tuned"]),
            pd.DataFrame.from_records(data["shape_mismatch"], columns=list(MISMATCH_COLUMNS)),
            dict(data["summary"]),
            dict(data["meta"]),
        )
