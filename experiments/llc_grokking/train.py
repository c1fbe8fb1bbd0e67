"""Train an MLP on modular addition until it groks, estimating the LLC every K steps.

Task and model follow devinterp's grokking example (p = 53, 40 % of the p² pairs for
training): embeddings of a and b (one shared table) concatenated → Linear → ReLU →
Linear → p logits, cross-entropy, AdamW with decoupled weight decay, full-batch steps.
Every ``llc_every`` steps the local learning coefficient of the current weights is
estimated on the TRAINING data only (:func:`layerscope.probes.llc.estimate`, paired
baseline, nβ = B/ln B) and train/test loss and accuracy are logged. docs/science.md §8: the
LLC should rise while the network memorises, then fall and flatten after it groks,
tracking the test loss. One CSV row per estimate:
step, train_loss, train_acc, test_loss, test_acc, llc, llc_std, llc_warnings, weight_norm.

    nice -n 19 python -m experiments.llc_grokking.train --config documented --out DIR
    nice -n 19 python -m experiments.llc_grokking.train --config quick --wd 0 --seed 1
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from torch import nn
from torch.nn import functional

from layerscope.probes.llc import estimate

COLUMNS = (
    "step",
    "train_loss",
    "train_acc",
    "test_loss",
    "test_acc",
    "llc",
    "llc_std",
    "llc_warnings",
    "weight_norm",
)


@dataclass(frozen=True)
class Config:
    """One run; ``steps`` counts full-batch AdamW updates."""

    p: int = 53
    train_frac: float = 0.4
    embed: int = 16
    hidden: int = 64
    lr: float = 1e-2
    wd: float = 1.0
    steps: int = 3000
    llc_every: int = 150
    llc_chains: int = 4
    llc_draws: int = 100
    llc_burnin: int = 100
    llc_batch: int = 128
    llc_step_times_nbeta: float = 0.05
    llc_localization: float = 10.0
    seed: int = 0
    data_seed: int = 0


CONFIGS = {
    "quick": Config(),
    "documented": Config(steps=4000, llc_every=50, llc_draws=200, llc_burnin=200),
}


class ModAddMLP(nn.Module):
    """logits(a, b) = W₂ ReLU(W₁ [E a ; E b] + b₁) + b₂ (one embedding table E)."""

    def __init__(self, p: int, embed: int, hidden: int) -> None:
        super().__init__()
        self.embed = nn.Embedding(p, embed)
        self.hidden = nn.Linear(2 * embed, hidden)
        self.out = nn.Linear(hidden, p)

    def forward(self, ab: torch.Tensor) -> torch.Tensor:
        e = self.embed(ab).flatten(-2)  # [..., 2, embed] -> [..., 2·embed]
        return self.out(functional.relu(self.hidden(e)))


def split(p: int, train_frac: float, seed: int) -> tuple[torch.Tensor, ...]:
    """All p² pairs (a, b) → (a + b) mod p, shuffled with ``seed``: x_tr, y_tr, x_te, y_te."""
    a, b = torch.meshgrid(torch.arange(p), torch.arange(p), indexing="ij")
    x = torch.stack([a.flatten(), b.flatten()], dim=1)
    y = (x[:, 0] + x[:, 1]) % p
    order = torch.randperm(p * p, generator=torch.Generator().manual_seed(seed))
    n = round(train_frac * p * p)
    return x[order[:n]], y[order[:n]], x[order[n:]], y[order[n:]]


def ce_loss(model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Mean cross-entropy of a batch (the per-sample NLL the LLC estimator expects)."""
    x, y = batch
    return functional.cross_entropy(model(x), y)


@torch.no_grad()
def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Mean cross-entropy and accuracy on (x, y)."""
    logits = model(x)
    accuracy = (logits.argmax(-1) == y).float().mean()
    return float(functional.cross_entropy(logits, y)), float(accuracy)


def measure(
    cfg: Config, step: int, model: nn.Module, data: tuple[torch.Tensor, ...]
) -> dict[str, float]:
    """One CSV row: losses and accuracies, and the LLC on the training data."""
    x_tr, y_tr, x_te, y_te = data
    train_loss, train_acc = evaluate(model, x_tr, y_tr)
    test_loss, test_acc = evaluate(model, x_te, y_te)
    nbeta = cfg.llc_batch / math.log(cfg.llc_batch)  # B/ln B, the estimator's default
    res = estimate(
        model,
        (x_tr, y_tr),
        ce_loss,
        num_chains=cfg.llc_chains,
        num_draws=cfg.llc_draws,
        burnin=cfg.llc_burnin,
        batch_size=cfg.llc_batch,
        nbeta=nbeta,
        step_size=cfg.llc_step_times_nbeta / nbeta,
        localization=cfg.llc_localization,
        seed=cfg.seed * 100_003 + step,
    )
    norm = torch.cat([q.detach().flatten() for q in model.parameters()]).norm()
    return {
        "step": step,
        "train_loss": train_loss,
        "train_acc": train_acc,
        "test_loss": test_loss,
        "test_acc": test_acc,
        "llc": res.mean,
        "llc_std": res.std,
        "llc_warnings": len(res.warnings),
        "weight_norm": float(norm),
    }


def checkpoints(
    cfg: Config, steps: Sequence[int]
) -> Iterator[tuple[int, nn.Module, tuple[torch.Tensor, ...]]]:
    """Train ``cfg`` (full-batch AdamW), yielding (step, model, data) at each of ``steps``
    (sorted); data = (x_train, y_train, x_test, y_test). Seeded by ``cfg.seed``."""
    data = split(cfg.p, cfg.train_frac, cfg.data_seed)
    torch.manual_seed(cfg.seed)
    model = ModAddMLP(cfg.p, cfg.embed, cfg.hidden)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.wd)
    wanted = set(steps)
    for step in range(max(steps) + 1):
        if step in wanted:
            yield step, model, data
        opt.zero_grad(set_to_none=True)
        ce_loss(model, (data[0], data[1])).backward()
        opt.step()


def run(cfg: Config, out: Path | None = None) -> list[dict[str, float]]:
    """Train ``cfg``; return the rows (also written to ``out/llc_grokking.csv``)."""
    every = range(0, cfg.steps + 1, cfg.llc_every)
    rows = [measure(cfg, step, model, data) for step, model, data in checkpoints(cfg, every)]
    if out is not None:
        write_csv(rows, out / "llc_grokking.csv")
    return rows


def write_csv(rows: list[dict[str, float]], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)


def parse(argv: Sequence[str] | None) -> tuple[Config, Path]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", choices=sorted(CONFIGS), default="quick")
    p.add_argument("--out", type=Path, default=Path("llc-grokking-runs"))
    for f in fields(Config):
        p.add_argument(f"--{f.name.replace('_', '-')}", type=type(getattr(Config(), f.name)))
    args = p.parse_args(argv)
    cfg = CONFIGS[args.config]
    overrides = {f.name: getattr(args, f.name) for f in fields(Config)}
    cfg = replace(cfg, **{k: v for k, v in overrides.items() if v is not None})
    return cfg, args.out


def main(argv: Sequence[str] | None = None) -> int:
    cfg, out = parse(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    start = time.perf_counter()
    rows = run(cfg, out)
    last = rows[-1]
    print(f"config: {asdict(cfg)}")
    print(
        f"step {last['step']}: train acc {last['train_acc']:.3f}, test acc "
        f"{last['test_acc']:.3f}, llc {last['llc']:.1f}; max llc "
        f"{max(r['llc'] for r in rows):.1f}; {time.perf_counter() - start:.0f} s"
    )
    print(f"csv: {out / 'llc_grokking.csv'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
