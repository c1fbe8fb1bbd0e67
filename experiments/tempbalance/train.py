"""One training run of the TempBalance study: a small CNN, SGD with a cosine schedule.

Arms (Zhou et al., NeurIPS 2023, arXiv 2312.00359; FARMS: Hu et al., ICML 2025, arXiv
2506.06280):

* ``uniform``: every layer at the schedule's η_t.
* ``tb``: TempBalance, layer i at η_t·(s1 + (α_i − α_min)/(α_max − α_min)·(s2 − s1)) with
  α_i the median-xmin power-law alpha of the layer's ESD, refitted once per epoch.
* ``tb_farms``: the same with FARMS alpha (square windows), which removes the aspect-ratio
  bias between the CNN's differently shaped layers.

All arms use the same parameter groups (:func:`layerscope.control.layer_param_groups`),
optimizer, schedule, initialisation and batch order for a given seed; only the per-layer
learning rates differ.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch

from experiments.tempbalance.data import Data
from layerscope.control import TempBalance, layer_param_groups

ARMS: dict[str, str | None] = {"uniform": None, "tb": "alpha", "tb_farms": "alpha_farms"}


@dataclass(frozen=True)
class Config:
    """Training recipe shared by every arm (the TempBalance paper's SGD recipe, scaled down)."""

    per_class: int = 30
    epochs: int = 40
    batch_size: int = 32
    momentum: float = 0.9
    weight_decay: float = 5e-4
    channels: tuple[int, int, int] = (8, 32, 64)
    hidden: tuple[int, int] = (128, 64)
    s1: float = 0.5
    s2: float = 1.5


def make_model(cfg: Config, seed: int) -> torch.nn.Sequential:
    """conv 3×3 (1→c1→c2→c3, each + ReLU + 2×2 max-pool) then fc (c3·9→h1→h2→10).

    The default's TempBalance-tuned layers have very different shapes: conv2 8→32 (kernel
    slices 32×8, Q = 4), conv3 32→64 (64×32, Q = 2), fc 576→128 (Q = 4.5), fc 128→64 (Q = 2);
    the first conv and the classifier keep η_t (the paper's exclusions).
    """
    torch.manual_seed(seed)
    c1, c2, c3 = cfg.channels
    h1, h2 = cfg.hidden
    layers: list[torch.nn.Module] = []
    for a, b in ((1, c1), (c1, c2), (c2, c3)):
        layers += [torch.nn.Conv2d(a, b, 3, padding=1), torch.nn.ReLU(), torch.nn.MaxPool2d(2)]
    layers += [torch.nn.Flatten(), torch.nn.Linear(c3 * 9, h1), torch.nn.ReLU()]
    layers += [torch.nn.Linear(h1, h2), torch.nn.ReLU(), torch.nn.Linear(h2, 10)]
    return torch.nn.Sequential(*layers)


def evaluate(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """Accuracy (%) and mean cross-entropy of the model on (x, y)."""
    model.eval()
    with torch.no_grad():
        logits = torch.cat([model(xb) for xb in x.split(500)])
    model.train()
    loss = float(torch.nn.functional.cross_entropy(logits, y))
    return 100.0 * float((logits.argmax(1) == y).float().mean()), loss


def train_run(cfg: Config, data: Data, arm: str, lr: float, seed: int, on: str) -> dict[str, Any]:
    """Train one arm at peak lr ``lr`` with ``seed``; evaluate on ``on`` (val or test).

    Returns accuracy, loss, wall seconds and (TempBalance arms) the last lr factors.
    """
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {sorted(ARMS)}, got {arm!r}")
    model = make_model(cfg, seed)
    opt = torch.optim.SGD(
        layer_param_groups(model, lr=lr, weight_decay=cfg.weight_decay),
        lr=lr,
        momentum=cfg.momentum,
    )
    n = len(data.y_train)
    per_epoch = math.ceil(n / cfg.batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=cfg.epochs * per_epoch)
    metric = ARMS[arm]
    tb = None
    if metric is not None:
        tb = TempBalance(opt, model, every=per_epoch, s1=cfg.s1, s2=cfg.s2, metric=metric)
        tb.step()  # alphas of the initial weights set the first epoch's rates
    gen = torch.Generator().manual_seed(seed)
    t0 = time.perf_counter()
    for _ in range(cfg.epochs):
        for idx in torch.randperm(n, generator=gen).split(cfg.batch_size):
            loss = torch.nn.functional.cross_entropy(model(data.x_train[idx]), data.y_train[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if tb is not None:
                tb.step()
    seconds = time.perf_counter() - t0
    x, y = (data.x_val, data.y_val) if on == "val" else (data.x_test, data.y_test)
    acc, test_loss = evaluate(model, x, y)
    factors = dict(tb.factors) if tb is not None else {}
    return {"acc": acc, "loss": test_loss, "seconds": seconds, "factors": factors}
