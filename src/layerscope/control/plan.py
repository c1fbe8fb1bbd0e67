"""Layer-wise pruning ratios from a spectral metric (AlphaPruning).

Source: Lu et al., "AlphaPruning: Using Heavy-Tailed Self Regularization Theory for
Improved Layer-wise Pruning of Large Language Models" (NeurIPS 2024, arXiv 2410.10912).
A layer whose ESD is less heavy-tailed (larger alpha) has learned less and is pruned more.
With metric values m_i (per layer, or per block: the mean over a block's matrices), the
target mean sparsity S, ε ∈ [0, 1] and parameter counts p_i:

    r_i        = (1 − ε) + 2ε·(m_i − m_min)/(m_max − m_min)      (r_i = 1 if all m_i are equal)
    sparsity_i = min(r_i · S · Σp / Σ(p·r), MAX_SPARSITY)

so the parameter-weighted mean sparsity is S unless a layer is clipped (the plan records
the achieved mean and the clipped layers). Any numeric scan column can be the metric
(``alpha``, ``alpha_farms``, ``stable_rank``...); larger values are always pruned more.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike, NDArray

from layerscope import metrics as registry
from layerscope.results import atomic_write, dumps, json_value, read_json, records

PLAN_KIND = "prune-plan"
PLAN_SCHEMA_VERSION = 1
MAX_SPARSITY = 0.99
MAPPINGS = ("block", "layer")
# ``model.layers.3.``, ``encoder.layer.3.``, ``transformer.h.3.``, ``blocks.3.``...
_BLOCK = re.compile(r"^(.*?(?:^|\.)(?:layers|layer|h|blocks|block)\.\d+)\.")


@dataclass(frozen=True)
class PlanOptions:
    """Validated inputs of :func:`prune_plan` (module docstring)."""

    sparsity: float
    metric: str = "alpha"
    eps: float = 0.2
    mapping: str = "block"

    def __post_init__(self) -> None:
        if not 0.0 < self.sparsity < 1.0:
            raise ValueError(f"sparsity must be in (0, 1), got {self.sparsity}")
        if not 0.0 <= self.eps <= 1.0:
            raise ValueError(f"eps must be in [0, 1], got {self.eps}")
        if self.mapping not in MAPPINGS:
            raise ValueError(f"mapping must be 'block' or 'layer', got {self.mapping!r}")
        metric_group(self.metric)


def metric_group(column: str) -> str:
    """The metric group that computes ``column``; ValueError naming the valid columns."""
    for spec in registry.REGISTRY:
        if column in spec.columns:
            return spec.name
    valid = ", ".join(c for s in registry.REGISTRY for c in s.columns)
    raise ValueError(f"unknown metric {column!r}; choose a scan column: {valid}")


def block_of(name: str) -> str | None:
    """The repeated block a parameter belongs to (``model.layers.3``), or None."""
    match = _BLOCK.match(name)
    return match.group(1) if match else None


def allocate(
    scores: ArrayLike, params: ArrayLike, sparsity: float, eps: float
) -> NDArray[np.float64]:
    """Per-layer sparsities from metric values and parameter counts (module docstring)."""
    m = np.asarray(scores, dtype=np.float64)
    p = np.asarray(params, dtype=np.float64)
    spread = float(m.max() - m.min()) if m.size else 0.0
    unit = (m - m.min()) / spread if spread > 0 else np.full_like(m, 0.5)
    r = (1.0 - eps) + 2.0 * eps * unit
    scale = sparsity * p.sum() / float((p * r).sum())
    return np.asarray(np.minimum(r * scale, MAX_SPARSITY), dtype=np.float64)


@dataclass(frozen=True)
class PrunePlan:
    """A pruning plan: parameter name -> sparsity, with how it was derived.

    Attributes:
        layers: sparsity per parameter name (the fraction of its weights to zero).
        table: one row per parameter: param, block, score (the metric value used), params,
            ratio (sparsity / S) and sparsity.
        inputs: the options and the source the plan was computed from.
        excluded: parameters left dense, with the reason.
    """

    layers: Mapping[str, float]
    table: pd.DataFrame
    inputs: Mapping[str, Any]
    excluded: Mapping[str, str] = field(default_factory=dict)

    @property
    def mean_sparsity(self) -> float:
        """Parameter-weighted mean sparsity actually planned (S unless clipped)."""
        p = self.table["params"].to_numpy(dtype=np.float64)
        return float((p * self.table["sparsity"].to_numpy()).sum() / p.sum())

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plan: schema_version, kind, the inputs and layer -> sparsity."""
        return {
            "schema_version": PLAN_SCHEMA_VERSION,
            "kind": PLAN_KIND,
            "inputs": {k: json_value(v) for k, v in self.inputs.items()},
            "mean_sparsity": self.mean_sparsity,
            "layers": {k: float(v) for k, v in self.layers.items()},
            "details": records(self.table),
            "excluded": dict(self.excluded),
        }

    def to_json(self, path: str | os.PathLike[str] | None = None) -> str:
        """The plan as JSON; also written (atomically) to ``path`` if given."""
        text = dumps(self.to_dict())
        if path is not None:
            atomic_write(path, lambda f: f.write(text.encode()))
        return text

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> PrunePlan:
        """Read a plan written by :meth:`to_json`; ValueError naming the file if invalid."""
        data = read_json(path, PLAN_KIND)
        layers = data.get("layers")
        if not isinstance(layers, dict) or not layers:
            raise ValueError(f"{path}: a prune plan needs a non-empty 'layers' mapping")
        bad = [k for k, v in layers.items() if not isinstance(v, int | float) or not 0 <= v < 1]
        if bad:
            raise ValueError(f"{path}: sparsity of {bad[0]} must be a number in [0, 1)")
        table = pd.DataFrame.from_records(data.get("details") or [])
        return cls(layers, table, data.get("inputs", {}), data.get("excluded", {}))


def _eligible(layers: pd.DataFrame, opts: PlanOptions) -> tuple[pd.DataFrame, dict[str, str]]:
    """Rows the plan covers, and the parameters it leaves dense (with why)."""
    if opts.metric not in layers:
        raise ValueError(f"the scan has no {opts.metric!r} column")
    excluded: dict[str, str] = {}
    frame = layers.copy()
    frame["block"] = frame["param"].map(block_of)
    frame["score"] = pd.to_numeric(frame[opts.metric], errors="coerce")
    reasons = [
        (frame["status"] != "ok", "not analysed"),
        (frame["kind"] == "embedding", "embedding"),
        (~np.isfinite(frame["score"]), f"no finite {opts.metric}"),
    ]
    if opts.mapping == "block":
        reasons.append((frame["block"].isna(), "outside the repeated blocks"))
    keep = pd.Series(True, index=frame.index)
    for mask, why in reasons:
        for param in frame.loc[keep & mask, "param"]:
            excluded.setdefault(str(param), why)
        keep &= ~mask
    # a split parameter (fused QKV) is pruned whole: drop it if any part is excluded
    keep &= ~frame["param"].isin(list(excluded))
    return frame[keep], excluded


def plan_from_layers(layers: pd.DataFrame, opts: PlanOptions, source: str = "") -> PrunePlan:
    """A plan from a scan's per-layer table (columns param, kind, status, N, M,
    num_slices and the metric)."""
    frame, excluded = _eligible(layers, opts)
    if frame.empty:
        hint = " (no names with a block index such as model.layers.N.; try mapping='layer')"
        raise ValueError(
            f"{source or 'model'}: no layer to plan{hint if opts.mapping == 'block' else ''}"
        )
    if opts.mapping == "block":
        frame = frame.assign(score=frame.groupby("block")["score"].transform("mean"))
    frame = frame.assign(params=frame["N"] * frame["M"] * frame["num_slices"])
    per_param = frame.groupby("param", sort=False).agg(
        block=("block", "first"), score=("score", "mean"), params=("params", "sum")
    )
    sparsity = allocate(per_param["score"], per_param["params"], opts.sparsity, opts.eps)
    table = per_param.reset_index().assign(ratio=sparsity / opts.sparsity, sparsity=sparsity)
    table["params"] = table["params"].astype(np.int64)
    inputs = {
        "source": source,
        "sparsity": opts.sparsity,
        "metric": opts.metric,
        "eps": opts.eps,
        "mapping": opts.mapping,
        "clipped": int(np.count_nonzero(sparsity >= MAX_SPARSITY)),
    }
    layers_map = dict(zip(table["param"], (float(s) for s in sparsity), strict=True))
    return PrunePlan(layers_map, table, inputs, excluded)


def prune_plan(
    source: Any,
    *,
    sparsity: float,
    metric: str = "alpha",
    eps: float = 0.2,
    mapping: str = "block",
    **scan_options: Any,
) -> PrunePlan:
    """AlphaPruning plan for a model: scan it, then allocate sparsities.

    Args:
        source: anything :func:`layerscope.scan` reads.
        sparsity: target mean sparsity S in (0, 1), weighted by parameter counts.
        metric: scan column that orders the layers (larger = pruned more).
        eps: ε in [0, 1]: ratios span [1 − ε, 1 + ε] before rescaling.
        mapping: ``block`` (one value per repeated block: the mean over its matrices; the
            paper's default) or ``layer``.
        **scan_options: passed to :func:`layerscope.scan` (include, exclude, device, ...).

    Returns:
        The :class:`PrunePlan`.
    """
    from layerscope.scan import scan

    opts = PlanOptions(sparsity=sparsity, metric=metric, eps=eps, mapping=mapping)
    result = scan(source, metrics=(metric_group(metric),), **scan_options)
    described = str(result.meta.get("source", source))
    plan = plan_from_layers(result.layers, opts, described)
    if scan_options.get("fix_fingers"):
        plan = replace(plan, inputs={**plan.inputs, "fix_fingers": scan_options["fix_fingers"]})
    if not math.isfinite(plan.mean_sparsity):
        raise ValueError(f"{described}: the plan has no parameters")
    return plan
