"""Everything shown about a tracked run, read and computed once, as plain data.

``layerscope status``, its ``--format json`` and the HTML training view all render a
:class:`RunView`; they compute nothing themselves.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from layerscope.functional.phases import OVERFIT, PhaseRules
from layerscope.track.phases import RunPhases, phase_alerts, run_phases
from layerscope.track.store import RunRef, RunStore

SCHEMA_VERSION = 1
ALERT_COLUMNS = ("step", "evidence_step", "level", "message", "evidence", "stored")


@dataclass(frozen=True)
class RunView:
    """A tracked run as shown to a user.

    Attributes:
        run: the run's name; meta: what was stored with it.
        steps: one row per recorded step (status, model-level means, ``llc`` if stored).
        history: per-layer alpha over steps (step, name, alpha).
        scalars: user-logged scalars, one row per step.
        alerts: stored alerts, then those the detector raises on replay that are not
            stored (a run tracked without the detector, or under other rules):
            step (raised), evidence_step, level, message, evidence, stored.
        phases: the phase labels under the rules given.
    """

    run: str
    meta: dict[str, Any]
    steps: pd.DataFrame
    history: pd.DataFrame
    scalars: pd.DataFrame
    alerts: pd.DataFrame
    phases: RunPhases

    @property
    def failing(self) -> bool:
        """Whether ``status`` exits 1: the run has alerts or is over-fitting now."""
        return bool(len(self.alerts)) or self.phases.phase == OVERFIT

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (``layerscope status --format json``), with a schema version."""
        alerts = [
            {
                "step": int(a["step"]),
                "evidence_step": int(a["evidence_step"]),
                "level": str(a["level"]),
                "message": str(a["message"]),
                "stored": bool(a["stored"]),
                "evidence": a["evidence"],
            }
            for _, a in self.alerts.iterrows()
        ]
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "status",
            **self.phases.to_dict(),
            "exit_code": int(self.failing),
            "num_steps": len(self.steps),
            "alerts": alerts,
            "meta": self.meta,
        }

    def to_json(self) -> str:
        """:meth:`to_dict` as JSON text (NaN written as null)."""
        return json.dumps(_clean(self.to_dict()), indent=2)


def _clean(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def read_run(store: RunStore, run: RunRef, rules: PhaseRules | None = None) -> RunView:
    """Read a run and compute its phases and replayed alerts once."""
    name = store.run_name(run)
    phases = run_phases(store, name, rules)
    return RunView(
        name,
        store.run_meta(name),
        _with_llc(store, name, store.steps(name)),
        store.layer_history(name, ("alpha",)),
        store.scalar_history(name),
        _alerts(store, name, phases),
        phases,
    )


def _alerts(store: RunStore, run: str, phases: RunPhases) -> pd.DataFrame:
    stored = store.alerts(run).drop(columns="wall_time").assign(stored=True)
    have = set(zip(stored["step"], stored["message"], strict=True))
    replayed = [
        {
            "step": a.step,
            "evidence_step": a.evidence_step if a.evidence_step is not None else a.step,
            "level": a.level,
            "message": a.message,
            "evidence": dict(a.evidence),
            "stored": False,
        }
        for a in phase_alerts(phases)
        if (a.step, a.message) not in have
    ]
    frame = pd.concat([stored, pd.DataFrame(replayed, columns=list(ALERT_COLUMNS))])
    return frame[list(ALERT_COLUMNS)].reset_index(drop=True)


def _with_llc(store: RunStore, run: str, steps: pd.DataFrame) -> pd.DataFrame:
    """The steps with the ``llc`` scalar (``track --llc-data``, ``LLCTracker``) when stored."""
    scalars = store.scalar_history(run)
    if "llc" not in scalars or "step" not in steps:
        return steps
    return steps.merge(scalars[["step", "llc"]], on="step", how="left")


__all__ = ["SCHEMA_VERSION", "RunView", "read_run"]
