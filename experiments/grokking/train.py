"""Train the grokking recipe (docs/science.md §7) for several seeds and weight decays at once.

Recipe (Prakash & Martin 2025): MLP in→200→200→10 with ReLU, every weight and bias ×8
after PyTorch's default init, MSE on one-hot targets, AdamW betas (0.9, 0.999), batch
200, 100 training samples per class, float64. Data: scikit-learn's bundled digits by
default (offline), or a user's MNIST ``.npz`` (``--mnist PATH``).

All seeds × weight decays are trained together as one stacked model (model.py); each
is watched by its own :class:`layerscope.track.Monitor` writing into ``OUT/runs.db``
(train/test accuracy and loss, per-layer metrics with traps, the baseline measures on
a probe batch). Training state is saved to ``OUT/state.pt`` every
``--checkpoint-every`` steps; re-running the same command resumes from it.

    python -m experiments.grokking.train --config short --out /tmp/grok
    nice -n 19 python -m experiments.grokking.train --config long --wd 0 --out runs/wd0
    python -m experiments.grokking.train --config long --device cuda --out runs/gpu  # on a GPU
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence
from copy import deepcopy
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch

from experiments.grokking.data import Split, digits, mnist, mnist1d, mnist5k
from experiments.grokking.model import StackedMLP, reference_mlp
from layerscope.track import Monitor, RunStore

HIDDEN = 200
NUM_CLASSES = 10
PROBE_SIZE = 100
log = logging.getLogger("grokking")


@dataclass(frozen=True)
class Config:
    """One experiment configuration (steps count optimizer updates)."""

    steps: int
    eval_every: int
    scan_every: int
    checkpoint_every: int
    seeds: tuple[int, ...] = (0,)
    weight_decays: tuple[float, ...] = (0.0, 0.01)
    lr: float = 5e-3
    batch: int = 200
    data_seed: int = 0
    detector: bool = True
    hidden_layers: int = 2


CONFIGS = {
    "short": Config(steps=300, eval_every=25, scan_every=100, checkpoint_every=100),
    "long": Config(
        steps=300_000, eval_every=500, scan_every=1_000, checkpoint_every=10_000, seeds=(0, 1, 2)
    ),
}


class Trainer:
    """The stacked models, their optimizer and batch order; ``run`` trains and monitors."""

    def __init__(self, cfg: Config, split: Split, device: str = "cpu") -> None:
        self.cfg = cfg
        self.split = split
        self.device = torch.device(device)
        self.runs = [(s, wd) for wd in cfg.weight_decays for s in cfg.seeds]
        sizes = [split.num_features, *[HIDDEN] * cfg.hidden_layers, NUM_CLASSES]
        # the stack trains on `device`; `mirror` is a CPU copy the monitors read (the same
        # object on a CPU run), refreshed before each monitor step
        self.mirror = StackedMLP([reference_mlp(sizes, seed) for seed, _ in self.runs])
        self.model = self.mirror if device == "cpu" else deepcopy(self.mirror).to(device)
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, betas=(0.9, 0.999), weight_decay=0.0
        )
        self.wd = torch.tensor([wd for _, wd in self.runs], dtype=torch.float64, device=device)
        self.x = torch.from_numpy(split.x_train).to(device)
        labels = torch.from_numpy(split.y_train)
        self.y = torch.nn.functional.one_hot(labels, NUM_CLASSES).double().to(device)
        self.gens = {s: torch.Generator().manual_seed(s) for s in cfg.seeds}
        self.order = torch.empty(0, dtype=torch.long)
        self.step = 0

    def _batch_indices(self) -> torch.Tensor:
        """``[K, batch]`` indices: each seed walks its own shuffled epochs (WDs share them)."""
        n, b = self.x.shape[0], self.cfg.batch
        per_epoch = n // b
        pos = self.step % per_epoch
        if pos == 0 or self.order.numel() == 0:
            perms = {s: torch.randperm(n, generator=g) for s, g in self.gens.items()}
            self.order = torch.stack([perms[s] for s, _ in self.runs])
        return self.order[:, pos * b : (pos + 1) * b].to(self.device)

    def train_step(self) -> float:
        """One AdamW update of every model; returns the summed loss."""
        idx = self._batch_indices()
        out = self.model(self.x[idx])
        loss = ((out - self.y[idx]) ** 2).mean(dim=(1, 2)).sum()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.model.decay_(self.cfg.lr, self.wd)
        self.opt.step()
        self.step += 1
        return float(loss.detach())

    @torch.no_grad()
    def evaluate(self) -> list[dict[str, float]]:
        """Train/test accuracy and MSE of each model."""
        out: list[dict[str, float]] = [{} for _ in self.runs]
        sets = {"train": (self.split.x_train, self.split.y_train)}
        sets["test"] = (self.split.x_test, self.split.y_test)
        for name, (x, y) in sets.items():
            xs = torch.from_numpy(x).to(self.device).expand(len(self.runs), -1, -1)
            pred = self.model(xs)
            labels = torch.from_numpy(y).to(self.device)
            target = torch.nn.functional.one_hot(labels, NUM_CLASSES).double()
            acc = (pred.argmax(-1) == labels).double().mean(-1)
            mse = ((pred - target) ** 2).mean(dim=(1, 2))
            for k in range(len(self.runs)):
                out[k][f"{name}_acc"] = float(acc[k])
                out[k][f"{name}_loss"] = float(mse[k])
        return out

    @torch.no_grad()
    def sync_mirror(self) -> None:
        """Copy the trained stack into the CPU mirror the monitors read (no-op on CPU)."""
        if self.mirror is not self.model:
            for name, value in self.model.named_parameters():
                getattr(self.mirror, name).copy_(value)

    def state(self) -> dict[str, Any]:
        return {
            "model": self.model.state_dict(),
            "opt": self.opt.state_dict(),
            "step": self.step,
            "gens": {s: g.get_state() for s, g in self.gens.items()},
            "order": self.order,
            "config": asdict(self.cfg),
        }

    def load(self, state: dict[str, Any]) -> None:
        with torch.no_grad():  # in place: the monitors' views share the storage
            for name, value in state["model"].items():
                getattr(self.model, name).copy_(value)
        self.opt.load_state_dict(state["opt"])
        self.step = int(state["step"])
        for s, g in self.gens.items():
            g.set_state(state["gens"][s])
        self.order = state["order"]

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        torch.save(self.state(), tmp)
        os.replace(tmp, path)


def run_name(split: Split, seed: int, wd: float) -> str:
    return f"{split.name}-wd{wd:g}-seed{seed}"


def monitors(trainer: Trainer, store: RunStore) -> list[Monitor]:
    """One synchronous Monitor per model (scans with traps, probe batch = 100 train samples)."""
    cfg = trainer.cfg
    detector = None
    if cfg.detector:
        from layerscope.track.phases import PhaseDetector

        detector = PhaseDetector()
    probe = torch.from_numpy(
        trainer.split.x_train[:: max(1, len(trainer.split.x_train) // PROBE_SIZE)]
    )
    out = []
    for k, (seed, wd) in enumerate(trainer.runs):
        meta = {"dataset": trainer.split.name, "seed": seed, "weight_decay": wd, "lr": cfg.lr}
        out.append(
            Monitor(
                trainer.mirror.view(k),
                every=cfg.scan_every,
                run=run_name(trainer.split, seed, wd),
                store=store,
                metrics="all",
                background=False,
                detector=detector,
                probe=probe,
                meta=meta,
            )
        )
    return out


def train(cfg: Config, split: Split, out: Path, device: str = "cpu") -> Path:
    """Train (resuming from ``out/state.pt`` when present); return the store's path."""
    out.mkdir(parents=True, exist_ok=True)
    trainer = Trainer(cfg, split, device)
    state_path = out / "state.pt"
    if state_path.exists():
        trainer.load(torch.load(state_path, weights_only=False, map_location="cpu"))
        log.info("resumed at step %d", trainer.step)
    with RunStore(out / "runs.db") as store:
        mons = monitors(trainer, store)
        while True:
            if trainer.step % cfg.eval_every == 0:
                trainer.sync_mirror()
                for mon, scalars in zip(mons, trainer.evaluate(), strict=True):
                    mon.step(trainer.step, **scalars)
            if trainer.step % cfg.checkpoint_every == 0:
                trainer.save(state_path)
            if trainer.step >= cfg.steps:
                break
            trainer.train_step()
        for mon in mons:
            mon.close()
    return out / "runs.db"


def parse(argv: Sequence[str] | None) -> tuple[Config, argparse.Namespace]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="short")
    p.add_argument("--out", type=Path, default=None, help="output folder (runs.db, state.pt)")
    p.add_argument("--mnist", type=Path, default=None, help="MNIST .npz instead of digits")
    p.add_argument(
        "--data",
        choices=("digits", "mnist1d", "mnist5k"),
        default="digits",
        help="bundled data set",
    )
    p.add_argument("--steps", type=int, help="optimizer steps (overrides the config)")
    p.add_argument("--seeds", type=int, nargs="+", help="model seeds (overrides the config)")
    p.add_argument("--wd", type=float, nargs="+", help="weight decays (overrides the config)")
    p.add_argument("--lr", type=float, help="learning rate (default 5e-3)")
    p.add_argument("--scan-every", type=int, help="steps between layer scans")
    p.add_argument("--eval-every", type=int, help="steps between accuracy evaluations")
    p.add_argument(
        "--hidden-layers", type=int, help="hidden layers of width 200 (default 2, the recipe's)"
    )
    p.add_argument("--device", default="cpu", help="where the stack trains (cpu, cuda)")
    p.add_argument("--no-detector", action="store_true", help="do not attach the phase detector")
    args = p.parse_args(argv)
    cfg = CONFIGS[args.config]
    overrides = {
        "steps": args.steps,
        "seeds": tuple(args.seeds) if args.seeds else None,
        "weight_decays": tuple(args.wd) if args.wd else None,
        "lr": args.lr,
        "scan_every": args.scan_every,
        "eval_every": args.eval_every,
        "detector": False if args.no_detector else None,
        "hidden_layers": args.hidden_layers,
    }
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    if cfg.scan_every % cfg.eval_every or cfg.checkpoint_every % cfg.eval_every:
        p.error("--scan-every and the checkpoint interval must be multiples of --eval-every")
    return cfg, args


def main(argv: Sequence[str] | None = None) -> int:
    cfg, args = parse(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    if args.mnist:
        split = mnist(args.mnist)
    elif args.data == "mnist1d":
        split = mnist1d(seed=cfg.data_seed)
    elif args.data == "mnist5k":
        split = mnist5k(seed=cfg.data_seed)
    else:
        split = digits(seed=cfg.data_seed)
    out = args.out or Path("grokking-runs") / args.config
    db = train(cfg, split, out, args.device)
    print(f"run store: {db}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
