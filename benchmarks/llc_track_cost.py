"""What the LLC over 50 checkpoints costs against the training it monitors.

    OMP_NUM_THREADS=1 python benchmarks/llc_track_cost.py [--steps 5000] [--out cost.json]

The ≈100k-parameter MLP of ``llc_vs_devinterp.py`` (64 → 256 → 256 → 64, ReLU) trained
with Adam (lr 1e-3, batch 32) on 4096 synthetic regression samples for ``--steps``
steps, timed three times on one torch thread: plain, and with an ``LLCTracker`` (every
steps/50, so 50 estimates, on a 1024-sample probe set at batch 32, seed 0, into a
``RunStore``) with the library's defaults (4 chains × 200 draws after 200 burn-in) and
with the trajectory setting of docs/llc.md (2 chains × 100 draws after 100 burn-in).
Reported: the seconds of each run and (with − without)/without, the LLC's cost as a
multiple of the training it monitors; per estimate, that cost in training steps.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from layerscope.track.llc import LLCTracker
from layerscope.track.store import RunStore

SETTINGS: dict[str, dict[str, Any]] = {
    "defaults (4 x 200 + 200)": {},
    "trajectory (2 x 100 + 100)": {"num_chains": 2, "num_draws": 100, "burnin": 100},
}


def gaussian_nll(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    x, y = batch
    return 0.5 * ((model(x) - y) ** 2).sum(1).mean()


def problem() -> tuple[nn.Module, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    teacher = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 64))
    x = torch.randn(4096, 64)
    with torch.no_grad():
        y = teacher(x) + torch.randn(4096, 64)
    model = nn.Sequential(
        nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 256), nn.ReLU(), nn.Linear(256, 64)
    )
    return model, x, y


def train(steps: int, options: dict[str, Any] | None) -> float:
    """Seconds to train ``steps`` steps, with an LLC tracker when ``options`` is given."""
    model, x, y = problem()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    gen = torch.Generator().manual_seed(1)
    tracker = None
    if options is not None:
        options = {"batch_size": 32, "seed": 0, **options}
        tracker = LLCTracker((x[:1024], y[:1024]), gaussian_nll, every=steps // 50, options=options)
    with tempfile.TemporaryDirectory() as tmp, RunStore(Path(tmp) / "runs.db") as store:
        run = store.start_run("cost")
        start = time.perf_counter()
        for step in range(steps):
            if tracker is not None:  # due at steps 0, every, 2·every, …: 50 estimates
                tracker.maybe_log(store, run, step, model)
            idx = torch.randint(0, len(x), (32,), generator=gen)
            opt.zero_grad()
            gaussian_nll(model, (x[idx], y[idx])).backward()
            opt.step()
        seconds = time.perf_counter() - start
        if tracker is not None:
            assert len(store.scalar_history(run)) == 50
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=5000, help="training steps (≥ 50)")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    torch.set_num_threads(1)
    plain = train(args.steps, None)
    rows: dict[str, Any] = {"steps": args.steps, "plain_s": plain}
    print(f"training alone: {args.steps} steps in {plain:.1f} s")
    for name, options in SETTINGS.items():
        tracked = train(args.steps, options)
        ratio = (tracked - plain) / plain
        per_estimate = (tracked - plain) / 50 / (plain / args.steps)
        rows[name] = {"tracked_s": tracked, "ratio": ratio, "steps_per_estimate": per_estimate}
        print(
            f"{name}: {tracked:.1f} s; LLC = {ratio:.2f}x the training; "
            f"one estimate ≈ {per_estimate:.0f} training steps"
        )
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
