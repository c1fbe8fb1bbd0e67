"""Diff two saved scan results (same model retrained, two checkpoints) without recomputing.

Rows are matched by name. For each metric in both results the table has
``<metric>_a``, ``<metric>_b`` and ``delta_<metric>`` = b − a (``abs_delta_alpha`` too),
plus the booleans ``changed_verdict``, ``became_under_trained``,
``became_over_trained`` and ``new_traps`` that gate rules can count.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pandas as pd

from layerscope.results import SCHEMA_VERSION, ScanResult, TableResult, records

DIFF_METRICS = (
    "alpha",
    "alpha_weighted",
    "log_norm",
    "log_spectral_norm",
    "stable_rank",
    "num_spikes",
    "num_traps",
    "ERG_gap",
    "entropy",
)


@dataclass
class DiffResult(TableResult):
    """Per-matrix differences between two scans (``layers``) and model-level counts."""

    layers: pd.DataFrame
    counts: dict[str, int]
    meta: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "diff",
            "meta": self.meta,
            "counts": self.counts,
            "layers": records(self.layers),
        }


def diff(a: ScanResult, b: ScanResult) -> DiffResult:
    """Per-matrix differences b − a and model-level counts (``only-in-a``/``only-in-b``)."""
    metrics = [m for m in DIFF_METRICS if m in a.layers and m in b.layers]
    cols = ["name", "kind", "verdict", *metrics]
    left = a.layers[[c for c in cols if c in a.layers]]
    right = b.layers[[c for c in cols if c in b.layers]]
    merged = left.merge(right, on="name", how="inner", suffixes=("_a", "_b"))
    for m in metrics:
        merged[f"delta_{m}"] = pd.to_numeric(merged[f"{m}_b"]) - pd.to_numeric(merged[f"{m}_a"])
    if "alpha" in metrics:
        merged["abs_delta_alpha"] = merged["delta_alpha"].abs()
    va, vb = merged["verdict_a"].fillna("unknown"), merged["verdict_b"].fillna("unknown")
    merged["changed_verdict"] = va != vb
    merged["became_under_trained"] = (vb == "under-trained") & (va != "under-trained")
    merged["became_over_trained"] = (vb == "over-trained") & (va != "over-trained")
    if "num_traps" in metrics:
        merged["new_traps"] = (merged["num_traps_b"].fillna(0) > 0) & (
            merged["num_traps_a"].fillna(0) == 0
        )
    names_a, names_b = set(a.layers["name"]), set(b.layers["name"])
    counts = {"only-in-a": len(names_a - names_b), "only-in-b": len(names_b - names_a)}
    meta = {"a": a.meta.get("source"), "b": b.meta.get("source")}
    return DiffResult(merged, counts, meta)
