"""Phases of a tracked run, read from the run store; the Monitor's phase detector.

>>> from layerscope.track import Monitor
>>> from layerscope.track.phases import PhaseDetector, run_phases
>>> monitor = Monitor(model, every=1000, metrics="all", detector=PhaseDetector())  # doctest: +SKIP
>>> run_phases("layerscope-runs.db", "mlp-wd0").phase                          # doctest: +SKIP
'over-fitting'

The labels and their rules are in :mod:`layerscope.functional.phases`. The collapse
signature needs the ``traps`` metric group (``metrics="all"`` or ``("default",
"traps")``-style selections); without it the detector can still tell under-trained,
learning and converged layers apart, but never warns.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from layerscope.functional import phases as fp
from layerscope.track.store import Alert, RunRef, RunStore

logger = logging.getLogger(__name__)

# Per-layer metrics read from the store: the detector's inputs, then evidence only.
INPUTS = ("alpha", "trap_scale", "log_norm")
EVIDENCE = ("num_traps", "ERG_gap")


@dataclass(frozen=True)
class RunPhases:
    """Phase labels of a run (plain data).

    Attributes:
        run: the run's name.
        layers: one row per (step, layer): step, name, raw, phase, since, reason, then
            the metrics alpha, trap_scale, log_norm, num_traps, ERG_gap.
        model: one row per step: step, raw, phase, since, reason (which layers).
    """

    run: str
    layers: pd.DataFrame
    model: pd.DataFrame

    @property
    def phase(self) -> str:
        """The model's current (reported) phase; ``unknown`` before the first scan."""
        return str(self.model["phase"].iloc[-1]) if len(self.model) else "unknown"

    @property
    def since(self) -> int | None:
        """Step at which the current phase began (``None`` before the first scan)."""
        return int(self.model["since"].iloc[-1]) if len(self.model) else None

    def current_layers(self) -> pd.DataFrame:
        """The latest row of every layer (phase, since, metrics), in model order."""
        if not len(self.layers):
            return self.layers
        last = self.layers["step"].max()
        rows: pd.DataFrame = self.layers[self.layers["step"] == last]
        return rows.reset_index(drop=True)

    def changes(self) -> pd.DataFrame:
        """Rows of ``model`` where the reported phase changed (the first row included)."""
        changed = self.model["phase"].ne(self.model["phase"].shift())
        return self.model[changed].reset_index(drop=True)

    def evidence(self) -> dict[str, Any]:
        """JSON-ready evidence of the current phase: the layers in it and their metrics."""
        rows = self.current_layers()
        rows = rows[rows["phase"] == self.phase] if len(rows) else rows
        layers = [
            {
                "name": str(r["name"]),
                "since": int(r["since"]),
                "reason": str(r["reason"]),
                **{m: _json_number(r[m]) for m in (*INPUTS, *EVIDENCE)},
            }
            for _, r in rows.iterrows()
        ]
        return {"phase": self.phase, "since": self.since, "layers": layers}


def _json_number(value: Any) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None


def _empty(run: str) -> RunPhases:
    layer_cols = ["step", "name", "raw", "phase", "since", "reason", *INPUTS, *EVIDENCE]
    model_cols = ["step", "raw", "phase", "since", "reason"]
    return RunPhases(run, pd.DataFrame(columns=layer_cols), pd.DataFrame(columns=model_cols))


def phases_from_history(
    history: pd.DataFrame, run: str = "", rules: fp.PhaseRules | None = None
) -> RunPhases:
    """Phases from a :meth:`RunStore.layer_history` frame (columns step, name, metrics...).

    Missing metric columns are treated as not computed (NaN). Only steps at which every
    layer has a row are used for the model-level labels.
    """
    rules = rules or fp.PhaseRules()
    if not len(history):
        return _empty(run)
    frame = history.copy()
    for col in (*INPUTS, *EVIDENCE):
        if col not in frame:
            frame[col] = np.nan
    parts: list[pd.DataFrame] = []
    raws: dict[str, pd.Series] = {}
    norm = _model_norm(frame)
    for name, group in frame.groupby("name", sort=False):
        rows = group.sort_values("step").reset_index(drop=True)
        traj = fp.LayerTrajectory.from_arrays(
            rows["step"].to_numpy(),
            rows["alpha"].to_numpy(dtype=float),
            rows["trap_scale"].to_numpy(dtype=float),
        )
        track = fp.layer_phases(traj, rules, norm.reindex(rows["step"]).to_numpy(dtype=float))
        labels = pd.DataFrame(
            {"raw": track.raw, "phase": track.phase, "since": track.since, "reason": track.reason}
        )
        parts.append(
            pd.concat([rows[["step", "name"]], labels, rows[[*INPUTS, *EVIDENCE]]], axis=1)
        )
        raws[str(name)] = pd.Series(track.raw, index=rows["step"].to_numpy())
    layers = pd.concat(parts).sort_values("step", kind="stable").reset_index(drop=True)
    table = pd.DataFrame(raws).dropna()
    model = fp.model_phases(table.index.to_numpy(), [table[c].tolist() for c in table], rules)
    names = list(table.columns)
    reasons = [_name_layers(r, names) for r in model.reason]
    return RunPhases(
        run,
        layers,
        pd.DataFrame(
            {
                "step": model.steps,
                "raw": model.raw,
                "phase": model.phase,
                "since": model.since,
                "reason": reasons,
            }
        ),
    )


def _model_norm(frame: pd.DataFrame) -> pd.Series:
    """log10 Σ_l ‖W_l‖_F² by step, from every layer's ``log_norm`` (NaN if one lacks it)."""
    table = frame.pivot(index="step", columns="name", values="log_norm")
    values = fp.model_log_norm(table.to_numpy(dtype=float).T)
    return pd.Series(values, index=table.index)


def _name_layers(reason: str, names: list[str]) -> str:
    """Replace the layer indices of a model reason ("layers 0, 2: x") by layer names."""
    head, _, label = reason.partition(": ")
    idx = head.removeprefix("layers ").split(", ")
    return f"{', '.join(names[int(i)] for i in idx if i)}: {label}"


def run_phases(
    store: RunStore | str | os.PathLike[str], run: RunRef, rules: fp.PhaseRules | None = None
) -> RunPhases:
    """Phase labels of ``run`` from its stored per-layer metrics."""
    if not isinstance(store, RunStore):
        with RunStore(store, create=False) as opened:
            return run_phases(opened, run, rules)
    history = store.layer_history(run, (*INPUTS, *EVIDENCE))
    name = run if isinstance(run, str) else _run_name(store, run)
    return phases_from_history(history, name, rules)


def _run_name(store: RunStore, run_id: int) -> str:
    runs = store.runs()
    return str(runs.loc[runs["id"] == run_id, "name"].iloc[0])


class PhaseDetector:
    """A :class:`~layerscope.track.Monitor` detector: warns when the model enters
    ``over-fitting`` (the generalization-collapse signature, after hysteresis).

    One ``warning`` alert per entry into the phase, at the step that confirms it, with
    the evidence (layers, alpha, trap scale, traps, ERG gap, since which step).
    Entering any other phase is logged at INFO level and not stored as an alert.
    """

    def __init__(self, rules: fp.PhaseRules | None = None) -> None:
        self.rules = rules or fp.PhaseRules()

    def __call__(self, store: RunStore, run_id: int, step: int) -> list[Alert]:
        result = run_phases(store, run_id, self.rules)
        model = result.model
        if len(model) < 1 or int(model["step"].iloc[-1]) != step:
            return []
        phase = str(model["phase"].iloc[-1])
        if len(model) > 1 and str(model["phase"].iloc[-2]) == phase:
            return []
        if phase != fp.OVERFIT:
            logger.info("layerscope: run %s entered phase %s at step %d", result.run, phase, step)
            return []
        evidence = result.evidence()
        names = ", ".join(layer["name"] for layer in evidence["layers"])
        message = (
            f"over-fitting (generalization-collapse warning) since step {result.since}: {names}"
        )
        return [Alert(step, "warning", message, evidence)]


__all__ = ["PhaseDetector", "RunPhases", "phases_from_history", "run_phases"]
