"""Capacity of GPT-shaped models on uniformly random token sequences.

Morris et al. (2025), "How much do language models memorize?" (arXiv 2505.24832):
train a GPT-2-architecture model on N sequences of S tokens drawn uniformly from a
vocabulary of V, so the data hold N·S·log₂V bits and nothing in them generalizes;
the memorized bits Σₓ max(0, H_uniform(x) − H_θ(x)) (:mod:`layerscope.probes.memorization`)
grow with N until the model's capacity is full, then plateau. The plateau divided by
the parameter count is the capacity in bits per parameter (paper: ≈ 3.6; 3.51 in
bfloat16, 3.83 in float32; models of 1–8 layers, width 32–512, V = 2048, S = 64).

One CSV row per (model, N, seed): the model, the data's entropy over the scored
tokens (tokens 2..S, see the probe's docstring), the memorized bits, bits/parameter,
steps taken and whether training stopped on convergence. Training: AdamW (lr 1e-3,
β = (0.9, 0.999), no weight decay, 100 warm-up steps), batches of 128 sequences
drawn at random with replacement (so the batch is the same for every N); every
``eval_every`` steps the memorized bits are measured and training stops once they
grew by less than ``tol`` (relative) over the last evaluation window, or after
``max_steps``. ``--decay linear`` or ``cosine`` lowers the
learning rate after warm-up to 0 at ``max_steps`` (then training runs all ``max_steps``;
``converged`` still says whether the last window grew by less than ``tol``).
``--clip C`` clips each model's gradient to norm C before the step (off by default,
as in every run before 2026-12-05). ``--checkpoint-dir DIR`` saves each group's state
after every evaluation and resumes from it; ``--time-limit SECONDS`` stops at the next
evaluation after that much wall time (exit status 3), for the same command to go on.

    python -m experiments.capacity.run --layers 1 --width 32 --vocab 64 \\
        --sizes 64,256,1024 --max-steps 4000 --out docs/memorization/capacity.csv
"""

from __future__ import annotations

import argparse
import csv
import ctypes
import ctypes.util
import json
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, fields, replace
from pathlib import Path

import torch
from torch import nn

from experiments.capacity import checkpoint as ckpt
from experiments.capacity import stacked
from layerscope.probes.memorization import count_parameters, memorized_bits

COLUMNS = (
    "layers",
    "width",
    "heads",
    "vocab",
    "seq_len",
    "dtype",
    "seed",
    "params",
    "samples",
    "data_bits",
    "memorized_bits",
    "bits_per_param",
    "fraction_of_data",
    "steps",
    "converged",
    "final_loss",
    "seconds",
    "lr",
    "decay",
    "batch",
    "clip",
)


DECAYS = ("none", "linear", "cosine")


@dataclass(frozen=True)
class Config:
    """One training run (one point of the sweep)."""

    layers: int = 1
    width: int = 32
    vocab: int = 64
    seq_len: int = 64
    samples: int = 256
    dtype: str = "float32"
    lr: float = 1e-3
    batch: int = 128
    max_steps: int = 4000
    eval_every: int = 500
    tol: float = 0.005
    decay: str = "none"
    clip: float = 0.0  # per-model gradient-norm clip; 0: off (Hugging Face's Trainer: 1.0)
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.decay not in DECAYS:
            raise ValueError(f"decay must be one of {DECAYS}, got {self.decay!r}")

    @property
    def heads(self) -> int:
        """Heads of 32 channels each, at least one (a choice; GPT-2 small uses 64)."""
        return max(1, self.width // 32)


def build_model(cfg: Config) -> nn.Module:
    """A GPT-2 causal LM of the configured shape (tied embeddings, no dropout)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(cfg.seed)
    config = GPT2Config(
        vocab_size=cfg.vocab,
        n_positions=cfg.seq_len,
        n_embd=cfg.width,
        n_layer=cfg.layers,
        n_head=cfg.heads,
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=None,
        eos_token_id=None,
    )
    model: nn.Module = GPT2LMHeadModel(config)
    return model.to(getattr(torch, cfg.dtype))


def random_data(cfg: Config) -> torch.Tensor:
    """``samples`` × ``seq_len`` tokens, i.i.d. uniform over the vocabulary."""
    gen = torch.Generator().manual_seed(10_000 + cfg.seed)
    return torch.randint(0, cfg.vocab, (cfg.samples, cfg.seq_len), generator=gen)


def _lr(step: int, base: float, total: int, decay: str = "none", warmup: int = 100) -> float:
    """Linear warm-up over ``warmup`` steps, then constant (``none``), falling linearly to
    0 at step ``total`` (``linear``), or along a half cosine to 0 (``cosine``; Loshchilov &
    Hutter, "SGDR", arXiv 1608.03983)."""
    rate = base * min(1.0, (step + 1) / warmup)
    if decay == "none" or step < warmup:
        return rate
    frac = min(1.0, (step - warmup) / max(1, total - warmup))
    return rate * (1.0 - frac if decay == "linear" else 0.5 * (1.0 + math.cos(math.pi * frac)))


def _group_key(cfg: Config) -> Config:
    """What K models must share to train stacked: everything but N and the seed."""
    return replace(cfg, samples=0, seed=0)


def train_group(
    cfgs: Sequence[Config],
    trace: Path | None = None,
    checkpoint: Path | None = None,
    time_limit: float | None = None,
    progress: Callable[[int, list[float]], None] | None = None,
) -> list[dict[str, object]] | None:
    """Train K models that differ only in N and seed, stacked; one CSV row each.

    Every ``eval_every`` steps each model's memorized bits are measured (model k copied
    into a ``GPT2LMHeadModel``, then :func:`memorized_bits`). At a constant rate a
    model's row is taken when it first converges (growth below ``tol``); training goes
    on until all have converged or ``max_steps``, and the rows keep those first
    readings; ``seconds`` is the whole group's wall time. ``trace``: a JSON-lines file
    that gets one line per model and evaluation. ``device`` (e.g. ``cuda``) holds the
    weights, the data and the optimizer; the data and the batches are drawn on the CPU
    from the same seeds, so a run picks the same rows on any device.

    ``checkpoint``: a file the run's state is written to after every evaluation and,
    when it exists, resumed from (:mod:`experiments.capacity.checkpoint`; a resumed run
    is bit for bit the run never stopped). ``time_limit``: seconds of wall time after
    which the run stops at its next evaluation and returns None, its state saved in
    ``checkpoint`` (required then) for a later call to go on. ``progress(step, bits)``
    is called after every evaluation with each model's latest memorized bits.
    """
    begin = time.perf_counter()
    cfg = cfgs[0]
    if any(_group_key(c) != _group_key(cfg) for c in cfgs):
        raise ValueError("a stacked group must differ only in samples and seed")
    if time_limit is not None and checkpoint is None:
        raise ValueError("a time limit needs a checkpoint to resume from")
    device = torch.device(cfg.device)
    models = [build_model(c).to(device) for c in cfgs]
    params = stacked.stack(models)
    sizes = torch.tensor([c.samples for c in cfgs])
    data = torch.zeros(len(cfgs), int(sizes.max()), cfg.seq_len, dtype=torch.long)
    for k, c in enumerate(cfgs):
        data[k, : c.samples] = random_data(c)
    data = data.to(device)
    opt = torch.optim.AdamW(params.values(), lr=cfg.lr, betas=(0.9, 0.999), weight_decay=0.0)
    gen = torch.Generator().manual_seed(cfg.seed)
    fresh = ckpt.State(
        0, [[] for _ in cfgs], [None] * len(cfgs), torch.full((len(cfgs),), math.nan), 0.0
    )
    run = fresh
    if checkpoint is not None and checkpoint.exists():
        run = ckpt.restore(checkpoint, list(cfgs), params, opt, gen)
    while run.step < cfg.max_steps and any(r is None for r in run.rows):
        for _ in range(min(cfg.eval_every, cfg.max_steps - run.step)):
            for group in opt.param_groups:
                group["lr"] = _lr(run.step, cfg.lr, cfg.max_steps, cfg.decay)
            opt.zero_grad(set_to_none=True)
            losses = stacked.losses(params, stacked.sample(data, sizes, cfg.batch, gen), cfg.heads)
            losses.sum().backward()
            if cfg.clip > 0:
                stacked.clip_grad_norms(params, cfg.clip)
            opt.step()
            run.loss = losses.detach()
            run.step += 1
        _evaluate(cfgs, run, params, models, data, trace)
        if progress is not None:
            progress(run.step, [h[-1] for h in run.history])
        spent = time.perf_counter() - begin
        if checkpoint is not None:
            ckpt.save(checkpoint, list(cfgs), replace(run, seconds=run.seconds + spent),
                      params, opt, gen)  # fmt: skip
        done = run.step >= cfg.max_steps or all(r is not None for r in run.rows)
        if time_limit is not None and spent > time_limit and not done:
            return None
    seconds = run.seconds + time.perf_counter() - begin
    return [{**r, "seconds": seconds} for r in run.rows if r is not None]


def _evaluate(
    cfgs: Sequence[Config],
    run: ckpt.State,
    params: dict[str, torch.Tensor],
    models: list[nn.Module],
    data: torch.Tensor,
    trace: Path | None,
) -> None:
    """Measure each model still training; trace it; take its row once it is done."""
    cfg = cfgs[0]
    for k, c in enumerate(cfgs):
        if run.rows[k] is not None:
            continue
        model = stacked.load(params, k, models[k])
        h = run.history[k]
        h.append(memorized_bits(model, data[k, : c.samples], batch_size=256).total_bits)
        if trace is not None:
            point = {"step": run.step, "lr": _lr(run.step - 1, cfg.lr, cfg.max_steps, cfg.decay)}
            with trace.open("a") as handle:
                handle.write(json.dumps(asdict(c) | point | {"bits": h[-1]}) + "\n")
        converged = len(h) >= 2 and h[-1] - h[-2] < cfg.tol * h[-1]
        if (converged and cfg.decay == "none") or run.step >= cfg.max_steps:
            run.rows[k] = _row(c, models[k], h[-1], run.step, converged, float(run.loss[k]))


def _row(
    cfg: Config, model: nn.Module, bits: float, step: int, converged: bool, loss: float
) -> dict[str, object]:
    """One CSV row (without ``seconds``)."""
    data_bits = cfg.samples * (cfg.seq_len - 1) * math.log2(cfg.vocab)
    params = count_parameters(model)
    row = {k: v for k, v in asdict(cfg).items() if k in COLUMNS}  # lr, decay too
    return {
        **row,
        "heads": cfg.heads,
        "params": params,
        "data_bits": data_bits,
        "memorized_bits": bits,
        "bits_per_param": bits / params,
        "fraction_of_data": bits / data_bits,
        "steps": step,
        "converged": converged,
        "final_loss": loss,
    }


def _ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x]


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    defaults = Config()
    p.add_argument("--layers", type=_ints, default=[defaults.layers], help="e.g. 1,2,4")
    p.add_argument("--width", type=_ints, default=[defaults.width], help="e.g. 32,64,128")
    p.add_argument("--sizes", type=_ints, default=[defaults.samples], help="data-set sizes N")
    p.add_argument("--seeds", type=_ints, default=[0], help="seeds (model init and data)")
    for f in fields(Config):
        if f.name not in ("layers", "width", "samples", "seed"):  # also --device cpu/cuda/...
            choices = DECAYS if f.name == "decay" else None
            flag = f"--{f.name.replace('_', '-')}"
            p.add_argument(flag, type=type(f.default), default=f.default, choices=choices)
    p.add_argument(
        "--lr-exponent",
        type=float,
        default=0.0,
        help="scale the rate with width: lr·(16/width)^E (1.5 ran here; 0: the same lr)",
    )
    p.add_argument("--out", type=Path, default=Path("capacity.csv"), help="CSV (appended to)")
    p.add_argument("--trace", type=Path, help="JSON lines: the bits at every evaluation")
    p.add_argument(
        "--checkpoint-dir",
        type=Path,
        help="save each group's state here after every evaluation; resume from it if there",
    )
    p.add_argument(
        "--time-limit",
        type=float,
        help="seconds: stop at the first evaluation after this much wall time (exit 3), "
        "the state in --checkpoint-dir; the same command goes on from there",
    )
    args = p.parse_args(argv)
    if args.time_limit is not None and args.checkpoint_dir is None:
        p.error("--time-limit needs --checkpoint-dir (where the run goes on from)")
    try:
        torch.empty(0, device=args.device)
    except (RuntimeError, AssertionError) as exc:  # unknown or unavailable device
        p.error(f"--device {args.device}: {str(exc).splitlines()[0]}")
    return args


# glibc's mallopt parameters (malloc.h): M_TRIM_THRESHOLD, M_TOP_PAD, M_MMAP_THRESHOLD.
_MALLOPT = {-1: 1 << 30, -2: 1 << 28, -3: 1 << 30}


def keep_freed_memory() -> bool:
    """Keep freed tensors in the process heap instead of handing them back to the kernel.

    glibc serves every allocation above its mmap threshold (at most 32 MiB by its
    dynamic rule) with a fresh ``mmap`` and unmaps it on ``free``, so a training step
    whose largest tensors cross it pays a page fault and a kernel zeroing per page,
    every step. The stacked logits of 8 width-8 models at V = 256 (8 × 128 × 32 × 256
    floats, 32 MiB) do: 37 % of that run's CPU time was system time. Raising the
    thresholds cut a 400-step run of them from 23 s to 0.7 s of system time and from 98 s
    to 56 s of wall time, with bit-identical bits (the arithmetic does not change, only
    where the memory comes from; ``benchmarks/capacity_allocator.py``: 1.55x per step at
    V = 256, 1.13x at V = 16). Returns whether the allocator took every setting (False
    off glibc, where this does nothing).
    """
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is None:
        return False
    taken = [mallopt(param, value) == 1 for param, value in _MALLOPT.items()]  # try each
    return all(taken)


def _header(path: Path) -> list[str]:
    """The column names in the first line of a CSV."""
    with path.open(newline="") as handle:
        return next(csv.reader(handle), [])


STOPPED = 3  # exit status of a run stopped by --time-limit, to be resumed


def _reporter(
    layers: int, width: int, args: argparse.Namespace
) -> Callable[[int, list[float]], None]:
    """A progress line on stderr per evaluation: the step and each model's bits."""

    def report(step: int, bits: list[float]) -> None:
        shown = ", ".join(f"{b:,.0f}" for b in bits)
        print(f"layers {layers} width {width}: step {step:,} of {args.max_steps:,}, "
              f"memorized bits {shown}", file=sys.stderr, flush=True)  # fmt: skip

    return report


def _checkpoint_file(
    where: Path | None, layers: int, width: int, args: argparse.Namespace
) -> Path | None:
    """The group's checkpoint, named by its shape, data-set sizes and seeds, so runs
    of other seeds sharing the directory do not collide (the file checks the rest)."""
    if where is None:
        return None
    sizes = "+".join(map(str, args.sizes))
    seeds = "+".join(map(str, args.seeds))
    return where / f"L{layers}-W{width}-N{sizes}-s{seeds}.pt"


def main(argv: Sequence[str] | None = None) -> int:
    """Run every (layers, width, size, seed) point; append one CSV row per point."""
    args = parse(argv)
    keep_freed_memory()
    shared = {f.name: getattr(args, f.name) for f in fields(Config) if hasattr(args, f.name)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    new = not args.out.exists() or args.out.stat().st_size == 0
    if not new and _header(args.out) != list(COLUMNS):  # appending would misalign columns
        sys.exit(f"{args.out}: its header is not this version's columns; write a new --out")
    with args.out.open("a", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS)
        if new:
            writer.writeheader()
        for layers in args.layers:
            for width in args.width:
                lr = args.lr * (16 / width) ** args.lr_exponent
                point = {"layers": layers, "width": width, "lr": lr}
                group = [
                    Config(**{**shared, **point, "samples": samples, "seed": seed})
                    for samples in args.sizes
                    for seed in args.seeds
                ]
                where = _checkpoint_file(args.checkpoint_dir, layers, width, args)
                try:
                    rows = train_group(
                        group, args.trace, where, args.time_limit, _reporter(layers, width, args)
                    )
                except ckpt.CheckpointError as exc:
                    sys.exit(str(exc))
                if rows is None:
                    print(f"time limit: state saved in {where}; run the same command "
                          "again to go on", file=sys.stderr)  # fmt: skip
                    return STOPPED
                for row in rows:
                    writer.writerow(row)
                    print(", ".join(f"{k}={row[k]}" for k in COLUMNS), file=sys.stderr)
                handle.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
