"""The validation's headline measure (Morris et al. 2025, arXiv 2506.15553): retrain the
base on the top-k documents of a ranking with the fine-tune's own recipe, and report the
share of the fine-tune's held-out gain that retraining recovers:

    recovered = (L_base − L_retrained) / (L_base − L_tuned)

with L the mean next-token loss in bits per scored token on held-out passages the
fine-tune never saw (1: the selection is as good as the true training set; 0: no better
than the base; negative: worse than the base).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from layerscope.probes.memorization import sequence_bits

Tune = Callable[[nn.Module, torch.Tensor], nn.Module]


def heldout_bits(model: nn.Module, held: torch.Tensor, batch: int = 128) -> float:
    """Mean −log₂ p(x_t | x_<t) over tokens 2..n of every held-out row, in bits."""
    with torch.no_grad():
        total = sum(float(sequence_bits(model, rows).sum()) for rows in held.split(batch))
    return total / (held.shape[0] * (held.shape[1] - 1))


def recovered(base: float, tuned: float, retrained: float) -> float:
    """Share of the fine-tune's held-out gain, base − tuned, that a retrain recovers."""
    return (base - retrained) / (base - tuned)


def retrain_table(
    base: nn.Module,
    tune: Tune,
    orders: Mapping[str, Sequence[int]],
    pool: torch.Tensor,
    held: torch.Tensor,
    k: int,
    tuned_bits: float,
) -> dict[str, dict[str, float]]:
    """For every ranking: held-out bits after ``tune`` on its top ``k`` and the share recovered."""
    base_bits = heldout_bits(base, held)
    out = {}
    for name, order in orders.items():
        model = tune(copy.deepcopy(base), pool[list(order[:k])])
        bits = heldout_bits(model, held)
        out[name] = {"heldout_bits": bits, "recovered": recovered(base_bits, tuned_bits, bits)}
    return out


def summary(results: Sequence[Mapping[str, Any]]) -> str:
    """Markdown: per fine-tune and ranking, the share recovered, mean (min–max) over runs;
    first the held-out bits per token of the base and the fine-tune."""

    def cell(values: Sequence[float], fmt: str = ".2f") -> str:
        return f"{np.mean(values):{fmt}} ({min(values):{fmt}}–{max(values):{fmt}})"

    base = [float(r["base_heldout_bits"]) for r in results]
    lines = [f"held-out bits/token of the base: {cell(base, '.3f')}", ""]
    lines += [
        "| fine-tune | retrained on the top k of | held-out gain recovered |",
        "|---|---|---:|",
    ]
    for tune in ("full", "lora"):
        tuned = [float(r[f"{tune}_retrain"]["tuned_heldout_bits"]) for r in results]
        gain = [b - t for b, t in zip(base, tuned, strict=True)]
        lines.append(f"| {tune} | (the fine-tune's gain, bits/token) | {cell(gain, '.3f')} |")
        for ranking, row in results[0][f"{tune}_retrain"].items():
            if isinstance(row, Mapping):
                shares = [float(r[f"{tune}_retrain"][ranking]["recovered"]) for r in results]
                lines.append(f"| {tune} | {ranking} | {cell(shares)} |")
    return "\n".join(lines)
