"""The phase detector at several checkpoint cadences: first alert against the collapse window.

    python -m experiments.grokking.cadence docs/grokking/*.csv
    python -m experiments.grokking.cadence runs/lr5e-3/runs.db --markdown

Each run is scanned densely (every 1,000 steps); the cadences are subsets of those scans,
as a user would have them: every scan, every 2nd, every 3rd, 20 linearly spaced
checkpoints (a Trainer saving every N steps), 15/30/60 log-spaced ones (research runs),
and a Monitor every 5,000 and 20,000 steps. The detector is replayed on each subset.

The window of a run: [first step within 1 point of its peak test accuracy, first step
5 points under the peak after it]. An alert inside it is on time; before it, early;
after it, late. A run whose test accuracy never falls more than 3 points below its peak
should raise no alert. Test accuracy is read from every scan of the dense run (the
same window at every cadence) and never by the detector.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from experiments.grokking.analyze import METRICS, history_from_csv
from experiments.tables import markdown
from layerscope.functional.phases import PhaseRules
from layerscope.track import RunStore
from layerscope.track.phases import phase_alerts, phases_from_history

Cadence = Callable[[np.ndarray], np.ndarray]


def _log_spaced(n: int) -> Cadence:
    def pick(steps: np.ndarray) -> np.ndarray:
        pos = steps[steps > 0]
        targets = np.geomspace(pos[0], pos[-1], n)
        idx = np.unique(np.abs(np.log(pos)[None, :] - np.log(targets)[:, None]).argmin(axis=1))
        return np.concatenate([steps[steps == 0], pos[idx]])

    return pick


def _linear(n: int) -> Cadence:
    def pick(steps: np.ndarray) -> np.ndarray:
        targets = np.linspace(steps[-1] / n, steps[-1], n)
        return np.unique(steps[np.abs(steps[None, :] - targets[:, None]).argmin(axis=1)])

    return pick


def _every(k: int) -> Cadence:
    return lambda steps: steps[::k]


def _monitor(interval: int) -> Cadence:
    return lambda steps: steps[steps % interval == 0]


CADENCES: dict[str, Cadence] = {
    "all": _every(1),
    "every 2nd": _every(2),
    "every 3rd": _every(3),
    "linear 20": _linear(20),
    "log 15": _log_spaced(15),
    "log 30": _log_spaced(30),
    "log 60": _log_spaced(60),
    "monitor 5k": _monitor(5000),
    "monitor 20k": _monitor(20000),
}


def load(path: Path) -> list[tuple[str, pd.DataFrame, pd.Series]]:
    """(run, per-layer history, test accuracy by step) for a CSV of analyze or a run store."""
    if path.suffix == ".csv":
        frame = pd.read_csv(path)
        return [(path.stem, history_from_csv(frame), frame.set_index("step")["test_acc"])]
    out = []
    with RunStore(path, create=False) as store:
        for run in store.runs()["name"]:
            scalars = store.scalar_history(run).set_index("step")
            history = store.layer_history(run, METRICS)
            acc = scalars["test_acc"].dropna().reindex(history["step"].unique()).dropna()
            out.append((f"{path.parent.name}/{run}", history, acc))  # run names repeat per lr
    return out


def window(acc: pd.Series) -> tuple[int, int | None, float]:
    """(first step within 1 point of the peak, first step 5 points under it after the
    peak or None, largest fall below the running peak)."""
    peak_step = int(acc.idxmax())
    peak = float(acc.max())
    start = int(acc[acc >= peak - 0.01].index[0])
    after = acc[acc.index > peak_step]
    under = after[after <= peak - 0.05]
    fall = float((acc.cummax() - acc).max())
    return start, (int(under.index[0]) if len(under) else None), fall


def first_alert(
    history: pd.DataFrame, steps: np.ndarray, rules: PhaseRules
) -> tuple[int | None, int | None, str]:
    """(raised step, evidence step, phase at the end) of the detector on a subset."""
    part = history[history["step"].isin(steps)]
    phases = phases_from_history(part, rules=rules)
    alerts = phase_alerts(phases)
    if not alerts:
        return None, None, phases.phase
    return alerts[0].step, alerts[0].evidence_step, phases.phase


def verdict(raised: int | None, start: int, end: int | None, fall: float) -> str:
    """on time / early / late / missed for runs that fell 5 points; for the others quiet,
    or an alert with the largest fall so far (a false alarm on a finished run that never
    fell 3 points; undecided on a run stopped before its fall)."""
    if end is None:
        if raised is None:
            return "quiet"
        return "alert, no fall > 3 pts" if fall <= 0.03 else "alert, fall 3-5 pts"
    if raised is None:
        return "missed"
    return "early" if raised < start else ("late" if raised > end else "on time")


def evaluate(paths: Sequence[Path], rules: PhaseRules | None = None) -> pd.DataFrame:
    """One row per (run, cadence)."""
    rules = rules or PhaseRules()
    rows = []
    for path in paths:
        for run, history, acc in load(path):
            start, end, fall = window(acc)
            steps = np.sort(history["step"].unique())
            for name, pick in CADENCES.items():
                chosen = pick(steps)
                raised, since, phase = first_alert(history, chosen, rules)
                rows.append(
                    {
                        "run": run,
                        "cadence": name,
                        "scans": len(chosen),
                        "window": f"{start}–{end if end is not None else '—'}",
                        "largest_fall": round(fall, 3),
                        "alert_raised": raised,
                        "evidence_from": since,
                        "verdict": verdict(raised, start, end, fall),
                        "phase_at_end": phase,
                    }
                )
    return pd.DataFrame(rows)


VARIANTS: dict[str, PhaseRules] = {
    "default": PhaseRules(),
    "no new-high condition": PhaseRules(norm_new_high=False),
    "no norm condition": PhaseRules(norm_new_high=False, norm_growth=-np.inf),
    "growth 1.5": PhaseRules(growth=1.5),
    "growth 3": PhaseRules(growth=3.0),
    "trap_scale 0.5": PhaseRules(trap_scale=0.5),
    "trap_scale 2": PhaseRules(trap_scale=2.0),
    "persist 1.3": PhaseRules(persist=1.3),
}


def sensitivity(paths: Sequence[Path], cadence: str = "all") -> pd.DataFrame:
    """Raised step of the first alert per run under each rule variant (None: never)."""
    rows = []
    for path in paths:
        for run, history, _ in load(path):
            chosen = CADENCES[cadence](np.sort(history["step"].unique()))
            row: dict[str, object] = {"run": run}
            for label, rules in VARIANTS.items():
                row[label] = first_alert(history, chosen, rules)[0]
            rows.append(row)
    return pd.DataFrame(rows).astype({label: "Int64" for label in VARIANTS})


def score(table: pd.DataFrame) -> pd.Series:
    """Counts of verdicts."""
    return table["verdict"].value_counts()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("inputs", nargs="+", type=Path, help="analyze CSVs or runs.db stores")
    p.add_argument("--markdown", action="store_true", help="print a markdown table")
    p.add_argument("--pivot", action="store_true", help="runs × cadences of raised steps")
    p.add_argument("--sensitivity", metavar="CADENCE", help="rule variants at one cadence")
    args = p.parse_args(argv)
    if args.sensitivity:
        print(markdown(sensitivity(args.inputs, args.sensitivity), fmt=""))
        return 0
    table = evaluate(args.inputs)
    if args.pivot:
        cell = table["alert_raised"].map(lambda s: "—" if pd.isna(s) else f"{int(s):,}")
        cell = cell + " (" + table["verdict"] + ")"
        out = table.assign(cell=cell).pivot(index="run", columns="cadence", values="cell")
        out = out[list(CADENCES)].reset_index()
        print(markdown(out, fmt="") if args.markdown else out.to_string(index=False))
    elif args.markdown:
        print(markdown(table, fmt=""))
    else:
        print(table.to_string(index=False))
    print(score(table).to_string(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
