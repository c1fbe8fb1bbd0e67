"""The capacity experiment's trainer: Hugging Face's GPT-2 against the stacked one.

    PYTHONPATH=src:. python benchmarks/capacity_stacked.py [--width 16] [--steps 200]

One AdamW step (batch 128 of 32 tokens, V = 16, 1 layer) of a ``GPT2LMHeadModel`` against
the same step of K models stacked (``experiments/capacity/stacked.py``), in one process,
after 20 warm-up steps. Prints milliseconds per step and per model, and the ratio to
Hugging Face's step; the stacked path's equality with Hugging Face's is in the tests.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Iterable

import torch
from experiments.capacity import run as cap
from experiments.capacity import stacked


def _configs(width: int, k: int, vocab: int = 16) -> list[cap.Config]:
    return [
        cap.Config(layers=1, width=width, vocab=vocab, seq_len=32, samples=512, seed=s)
        for s in range(k)
    ]


def _ms_per_step(
    step: Callable[[], torch.Tensor], params: Iterable[torch.Tensor], steps: int
) -> float:
    """Milliseconds per AdamW step (``step`` returns the loss), after 20 warm-up steps."""
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=0.0)
    for i in range(steps + 20):
        if i == 20:
            start = time.perf_counter()
        opt.zero_grad(set_to_none=True)
        step().backward()
        opt.step()
    return (time.perf_counter() - start) / steps * 1e3


def hf_ms(width: int, steps: int) -> float:
    """Milliseconds per AdamW step of one ``GPT2LMHeadModel``."""
    cfg = _configs(width, 1)[0]
    model, data = cap.build_model(cfg), cap.random_data(cfg)
    gen = torch.Generator().manual_seed(0)

    def step() -> torch.Tensor:
        idx = torch.randint(0, cfg.samples, (cfg.batch,), generator=gen)
        return model(data[idx], labels=data[idx]).loss

    return _ms_per_step(step, model.parameters(), steps)


def stacked_ms(width: int, k: int, steps: int, vocab: int = 16) -> float:
    """Milliseconds per AdamW step of K stacked models (all K together)."""
    cfgs = _configs(width, k, vocab)
    params = stacked.stack([cap.build_model(c) for c in cfgs])
    data = torch.stack([cap.random_data(c) for c in cfgs])
    sizes = torch.full((k,), cfgs[0].samples)
    gen = torch.Generator().manual_seed(0)

    def step() -> torch.Tensor:
        ids = stacked.sample(data, sizes, cfgs[0].batch, gen)
        return stacked.losses(params, ids, cfgs[0].heads).sum()

    return _ms_per_step(step, params.values(), steps)


def main() -> None:
    """Print one line per trainer."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--width", type=int, nargs="+", default=[16, 32])
    p.add_argument("--k", type=int, nargs="+", default=[1, 8])
    p.add_argument("--steps", type=int, default=200)
    args = p.parse_args()
    print(f"torch threads: {torch.get_num_threads()}")
    for width in args.width:
        ref = hf_ms(width, args.steps)
        print(f"width {width}: GPT2LMHeadModel {ref:.2f} ms/step")
        for k in args.k:
            ms = stacked_ms(width, k, args.steps)
            print(f"  stacked K={k}: {ms:.2f} ms/step, {ms / k:.2f} ms per model, "
                  f"{ref / (ms / k):.2f}x Hugging Face per model")  # fmt: skip


if __name__ == "__main__":
    main()
