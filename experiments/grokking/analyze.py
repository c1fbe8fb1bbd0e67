"""Summarise grokking runs: trajectories as CSV, detector step vs collapse step per run.

    python -m experiments.grokking.analyze runs/wd0/runs.db runs/wd0.01/runs.db --csv docs/grokking

For each run: the step of peak test accuracy, the first step at which test accuracy is
10 points (``--drop``) below its peak so far (the collapse), and the first step the
phase detector reports ``over-fitting`` (replayed from the store: the detector is
causal, so the replay equals what a live Monitor would have raised). Test accuracy is
only reported, never used by the detector.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from experiments.tables import markdown
from layerscope.functional.phases import OVERFIT, PhaseRules
from layerscope.track import RunStore
from layerscope.track.phases import phases_from_history

LAYERS = {"0.weight": "fc1", "2.weight": "fc2", "4.weight": "fc3"}
METRICS = ("alpha", "num_traps", "trap_scale", "ERG_gap", "log_spectral_norm", "log_norm")
SCALARS = ("train_acc", "test_acc")
PROBES = ("l2_norm", "weight_entropy", "activation_sparsity", "circuit_complexity")


def trajectory(store: RunStore, run: str, rules: PhaseRules | None = None) -> pd.DataFrame:
    """One row per scanned step: accuracies, per-layer metrics, probe measures, model phase."""
    history = store.layer_history(run, METRICS)
    result = phases_from_history(history, run, rules)
    history = history.assign(layer=history["name"].map(LAYERS).fillna(history["name"]))
    wide = history.pivot(index="step", columns="layer", values=list(METRICS))
    wide.columns = [f"{layer}_{metric}" for metric, layer in wide.columns]
    wide = wide[sorted(wide.columns)]
    scalars = store.scalar_history(run).set_index("step")
    keep = [c for c in (*SCALARS, *(f"probe_{p}" for p in PROBES)) if c in scalars]
    frame = scalars[keep].join(wide, how="inner")
    phase = result.model.set_index("step")[["raw", "phase"]].add_prefix("model_")
    return frame.join(phase).reset_index()


def history_from_csv(frame: pd.DataFrame) -> pd.DataFrame:
    """The per-layer history (step, name, metrics) back from a :func:`trajectory` frame."""
    parts = []
    for name, layer in LAYERS.items():
        cols = {f"{layer}_{m}": m for m in METRICS if f"{layer}_{m}" in frame}
        part = frame[["step", *cols]].rename(columns=cols)
        parts.append(part.assign(name=name))
    return pd.concat(parts).sort_values("step", kind="stable").reset_index(drop=True)


def events(scalars: pd.DataFrame, frame: pd.DataFrame, drop: float) -> dict[str, float | None]:
    """Peak test accuracy; the largest fall below the peak so far; the first steps 5 and
    ``drop`` points below it (the collapse); the first over-fitting step."""
    acc = scalars.set_index("step")["test_acc"].dropna()
    running = acc.cummax()
    fallen = acc[acc <= running - drop]
    fired = frame.loc[frame["model_phase"] == OVERFIT, "step"]
    peak_step = int(acc.idxmax())
    return {
        "peak_step": peak_step,
        "peak_test_acc": round(float(acc.max()), 4),
        "final_test_acc": round(float(acc.iloc[-1]), 4),
        "final_train_acc": round(float(scalars["train_acc"].dropna().iloc[-1]), 4),
        "largest_drop": round(float((running - acc).max()), 4),
        "drop5_step": _first(acc[acc <= running - 0.05]),
        "collapse_step": int(fallen.index[0]) if len(fallen) else None,
        "detector_step": int(fired.iloc[0]) if len(fired) else None,
        "phase_at_end": str(frame["model_phase"].iloc[-1]),
        "last_step": int(acc.index[-1]),
    }


def _first(values: pd.Series) -> int | None:
    return int(values.index[0]) if len(values) else None


def summarise(dbs: Sequence[Path], csv_dir: Path | None, drop: float) -> pd.DataFrame:
    rows = []
    for db in dbs:
        with RunStore(db, create=False) as store:
            for run in store.runs()["name"]:
                frame = trajectory(store, run)
                if csv_dir is not None:
                    csv_dir.mkdir(parents=True, exist_ok=True)
                    frame.round(5).to_csv(csv_dir / f"{run}.csv", index=False)
                meta = store.run_meta(run)
                info = {"run": run, "weight_decay": meta.get("weight_decay")}
                rows.append({**info, **events(store.scalar_history(run), frame, drop)})
    steps = ("drop5_step", "collapse_step", "detector_step")
    return pd.DataFrame(rows).astype(dict.fromkeys(steps, "Int64"))


SPECTRAL = [
    "step",
    "train_acc",
    "test_acc",
    "fc1_alpha",
    "fc2_alpha",
    "fc3_alpha",
    "fc1_num_traps",
    "fc2_num_traps",
    "fc3_num_traps",
    "fc1_trap_scale",
    "fc2_trap_scale",
    "fc1_ERG_gap",
    "fc2_ERG_gap",
    "model_phase",
]
BASELINES = ["step", "test_acc", *(f"probe_{p}" for p in PROBES)]


def steps_table(csv: Path, steps: Sequence[int], columns: Sequence[str]) -> str:
    """Markdown table of a saved trajectory at the given steps (those present)."""
    frame = pd.read_csv(csv)
    rows = frame[frame["step"].isin(steps)][list(columns)]
    return markdown(rows.round(3), fmt="")


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("stores", type=Path, nargs="+", help="runs.db files of train.py")
    p.add_argument("--csv", type=Path, default=None, help="write one CSV per run here")
    p.add_argument("--drop", type=float, default=0.10, help="collapse: drop below the peak")
    p.add_argument("--table", type=int, nargs="*", help="with --csv: tables at these steps")
    args = p.parse_args(argv)
    print(markdown(summarise(args.stores, args.csv, args.drop)))
    for csv in sorted(args.csv.glob("*.csv")) if args.csv and args.table else []:
        for columns in (SPECTRAL, BASELINES):
            print(f"\n{csv.stem}\n\n{steps_table(csv, args.table, columns)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
