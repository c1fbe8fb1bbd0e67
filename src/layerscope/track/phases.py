"""Phases of a tracked run, read from the run store, and the alerts they raise.

>>> from layerscope.track.phases import PhaseDetector, run_phases
>>> run_phases("layerscope-runs.db", "mlp-wd0").phase                # doctest: +SKIP
'over-fitting'

The labels and their rules are in :mod:`layerscope.functional.phases` (docs/grokking.md
explains and measures them). The collapse signature needs the ``traps`` metric group
(``metrics="all"``); without it the detector can still tell under-trained, learning and
converged layers apart, but says it cannot judge a collapse.

:class:`PhaseDetector` is the one alert path: the Monitor, the training callbacks,
``track_checkpoints`` / ``layerscope track`` and a replay of a stored run
(:func:`layerscope.track.tracker.replay`) all go through a
:class:`~layerscope.track.tracker.Tracker`, which calls the detector after each stored
scan and stores the new alerts. The detector derives a run's alerts from its stored
trajectories, causally: an alert's ``step`` is the first step the detector could know
it, given the scans so far; its ``evidence_step`` is where the evidence begins.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
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
LAYER_COLUMNS = ("step", "name", "raw", "phase", "since", "confirmed", "reason", "jump")
MODEL_COLUMNS = ("step", "raw", "phase", "since", "confirmed", "reason")


@dataclass(frozen=True)
class RunPhases:
    """Phase labels of a run (plain data).

    Attributes:
        run: the run's name.
        layers: one row per (step, layer): step, name, raw, phase, since, confirmed,
            reason, jump (the tail fit jumped at this scan), then the metrics alpha,
            trap_scale, log_norm, num_traps, ERG_gap.
        model: one row per step: step, raw, phase, since (the step its evidence dates
            from), confirmed (the step it was first reported), reason.
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
        """Step at which the current phase's evidence began (``None`` before any scan)."""
        return int(self.model["since"].iloc[-1]) if len(self.model) else None

    @property
    def reason(self) -> str:
        """Why the model has its latest raw label (names the layers; for ``cannot-judge``
        it says what the collapse rule still needs)."""
        if not len(self.model):
            return "no scan stored yet"
        return str(self.model["reason"].iloc[-1])

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

    def jumps(self) -> pd.DataFrame:
        """The (step, layer) rows whose tail fit jumped (α more than ``rules.jump``× away
        from its smoothed value one scan earlier; labels use the smoothed α)."""
        if not len(self.layers):
            return self.layers
        return self.layers[self.layers["jump"].astype(bool)].reset_index(drop=True)

    def evidence(self, step: int | None = None) -> dict[str, Any]:
        """JSON-ready evidence of the model's phase at ``step`` (default: the last scan):
        the layers in that phase and their metrics."""
        if not len(self.model):
            return {"phase": self.phase, "since": None, "layers": []}
        at = int(self.model["step"].iloc[-1]) if step is None else step
        row = self.model[self.model["step"] == at].iloc[0]
        phase = str(row["phase"])
        rows = self.layers[(self.layers["step"] == at) & (self.layers["phase"] == phase)]
        layers = [
            {
                "name": str(r["name"]),
                "since": int(r["since"]),
                "reason": str(r["reason"]),
                **{m: _json_number(r[m]) for m in (*INPUTS, *EVIDENCE)},
            }
            for _, r in rows.iterrows()
        ]
        return {"phase": phase, "since": int(row["since"]), "layers": layers}

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: the current phase and reason, phases per step, layer jumps."""
        return {
            "run": self.run,
            "phase": self.phase,
            "since": self.since,
            "reason": self.reason,
            "steps": [_record(r) for r in self.model.to_dict(orient="records")],
            "jumps": [
                {"step": int(r["step"]), "name": str(r["name"]), "alpha": _json_number(r["alpha"])}
                for _, r in self.jumps().iterrows()
            ],
        }


def _record(row: Mapping[Any, Any]) -> dict[str, Any]:
    return {str(k): (int(v) if isinstance(v, np.integer) else v) for k, v in row.items()}


def _json_number(value: Any) -> float | None:
    number = float(value)
    return number if np.isfinite(number) else None


def _empty(run: str) -> RunPhases:
    layers = pd.DataFrame(columns=[*LAYER_COLUMNS, *INPUTS, *EVIDENCE])
    return RunPhases(run, layers, pd.DataFrame(columns=list(MODEL_COLUMNS)))


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
        labels = pd.DataFrame({c: getattr(track, c) for c in LAYER_COLUMNS[2:]})
        parts.append(
            pd.concat([rows[["step", "name"]], labels, rows[[*INPUTS, *EVIDENCE]]], axis=1)
        )
        raws[str(name)] = pd.Series(track.raw, index=rows["step"].to_numpy())
    layers = pd.concat(parts).sort_values("step", kind="stable").reset_index(drop=True)
    table = pd.DataFrame(raws).dropna()
    model = fp.model_phases(table.index.to_numpy(), [table[c].tolist() for c in table], rules)
    names = list(table.columns)
    reasons = _model_reasons(model, layers, names)
    frame_model = pd.DataFrame({c: getattr(model, c) for c in MODEL_COLUMNS[1:]})
    frame_model.insert(0, "step", model.steps)
    frame_model["reason"] = reasons
    return RunPhases(run, layers, frame_model)


def _model_reasons(model: fp.PhaseTrack, layers: pd.DataFrame, names: list[str]) -> list[str]:
    """Model reasons with layer names; ``cannot-judge`` gets the first layer's reason."""
    out = []
    for step, raw, reason in zip(model.steps, model.raw, model.reason, strict=True):
        named = _name_layers(reason, names)
        if raw == fp.UNJUDGED:
            at = layers[(layers["step"] == step) & (layers["raw"] == raw)]
            named = f"cannot judge a collapse yet: {at['reason'].iloc[0]}"
        out.append(named)
    return out


def _model_norm(frame: pd.DataFrame) -> pd.Series:
    """log10 Σ_l ‖W_l‖_F² by step, from every layer's ``log_norm`` (NaN if one lacks it)."""
    table = frame.pivot(index="step", columns="name", values="log_norm")
    values = fp.model_log_norm(table.to_numpy(dtype=float).T)
    return pd.Series(values, index=table.index)


def _name_layers(reason: str, names: list[str]) -> str:
    """Replace the layer indices of a model reason ("layers 0, 2: x") by layer names."""
    if not reason.startswith("layers "):
        return reason
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
    name = run if isinstance(run, str) else store.run_name(run)
    return phases_from_history(history, name, rules)


def phase_alerts(phases: RunPhases) -> list[Alert]:
    """The alerts a run's phases raise: one ``warning`` per entry into ``over-fitting``,
    at the step that confirmed it, with the step its evidence dates from."""
    model = phases.model
    out: list[Alert] = []
    for i in range(len(model)):
        row = model.iloc[i]
        if row["phase"] != fp.OVERFIT or (i and model["phase"].iloc[i - 1] == fp.OVERFIT):
            continue
        step, since = int(row["step"]), int(row["since"])
        evidence = phases.evidence(step)
        names = ", ".join(layer["name"] for layer in evidence["layers"])
        message = (
            f"over-fitting (generalization-collapse warning): evidence since step {since}, "
            f"raised at step {step}: {names}"
        )
        out.append(Alert(step, "warning", message, evidence, evidence_step=since))
    return out


class PhaseDetector:
    """The phase detector every tracking entry point uses (see the module docstring).

    Args:
        rules: the thresholds and windows (:class:`~layerscope.functional.phases.PhaseRules`),
            or a mapping of them (validated: unknown names and bad values raise
            ``ValueError``).
    """

    def __init__(self, rules: fp.PhaseRules | Mapping[str, Any] | None = None) -> None:
        self.rules = rules_from(rules)
        self._phase: dict[tuple[int, int], str] = {}

    def phases(self, store: RunStore, run: RunRef) -> RunPhases:
        """The run's phases under these rules."""
        return run_phases(store, run, self.rules)

    def new_alerts(self, store: RunStore, run: RunRef) -> list[Alert]:
        """The alerts the run's phases raise that the store does not hold yet.

        Entering another phase is logged at INFO level (``cannot-judge`` with its reason).
        """
        found = self.phases(store, run)
        self._log_phase(store, run, found)
        stored = store.alerts(run)
        have = {(int(s), str(m)) for s, m in zip(stored["step"], stored["message"], strict=True)}
        return [a for a in phase_alerts(found) if (a.step, a.message) not in have]

    def _log_phase(self, store: RunStore, run: RunRef, found: RunPhases) -> None:
        key = (id(store), store.run_id(run))
        if len(found.model) and self._phase.get(key) != found.phase:
            self._phase[key] = found.phase
            logger.info(
                "layerscope: run %s is %s at step %s: %s",
                found.run,
                found.phase,
                found.model["step"].iloc[-1],
                found.reason,
            )

    def __call__(self, store: RunStore, run_id: int, step: int) -> list[Alert]:
        """The detector protocol of :class:`~layerscope.track.tracker.Tracker`:
        :meth:`new_alerts` after the scan at ``step`` (the tracker stores them)."""
        return self.new_alerts(store, run_id)


def rules_from(rules: fp.PhaseRules | Mapping[str, Any] | None) -> fp.PhaseRules:
    """A :class:`PhaseRules` from itself, a mapping of its fields, or ``None`` (defaults).

    Raises:
        ValueError: an unknown rule name (the known ones are listed) or a bad value.
    """
    if rules is None:
        return fp.PhaseRules()
    if isinstance(rules, fp.PhaseRules):
        return rules
    known = fp.PhaseRules.__dataclass_fields__
    unknown = sorted(set(rules) - set(known))
    if unknown:
        raise ValueError(f"unknown phase rule(s) {', '.join(unknown)}; known: {', '.join(known)}")
    values: dict[str, Any] = {}
    defaults = fp.PhaseRules()
    for name, value in rules.items():
        default = getattr(defaults, name)
        kind = type(default).__name__
        if isinstance(value, bool) != isinstance(default, bool) or not isinstance(
            value, int | float
        ):
            raise ValueError(f"phase rule {name} must be a {kind}, got {value!r}")
        if isinstance(default, int) and not float(value).is_integer():
            raise ValueError(f"phase rule {name} must be an integer, got {value!r}")
        values[name] = type(default)(value)
    return fp.PhaseRules(**values)


__all__ = [
    "PhaseDetector",
    "RunPhases",
    "phase_alerts",
    "phases_from_history",
    "rules_from",
    "run_phases",
]
