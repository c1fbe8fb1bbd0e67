"""TempBalance: per-layer learning rates from each layer's alpha, recomputed during training.

Source: Zhou et al., "Temperature Balancing, Layer-wise Weight Analysis, and Neural Network
Training" (NeurIPS 2023, arXiv 2312.00359). Every ``every`` steps the ESD alpha of each
layer is refitted (median-xmin tail by default, as the paper; or FARMS alpha, Hu et al.,
ICML 2025) and layer i trains at

    η_i = η_t · (s1 + (α_i − α_min)/(α_max − α_min) · (s2 − s1)),   (s1, s2) = (0.5, 1.5)

where η_t is the learning rate the schedule gives now: a heavier-tailed layer (small alpha,
well trained) is cooled, a light-tailed one (large alpha) is heated. The first and the last
layer, and layers with fewer than 50 eigenvalues, keep η_t (the paper's exclusions).

How it works with any optimizer and scheduler: build the optimizer from
:func:`layer_param_groups` — one parameter group per ``nn.Linear``/``nn.Conv*`` layer (its
weight and bias) plus one last *reference* group holding every other parameter (norms,
embeddings; possibly empty). All groups start at the same lr, so whatever the scheduler does,
the reference group's lr is η_t; :meth:`TempBalance.step`, called after every
``scheduler.step()`` (or ``optimizer.step()`` without a scheduler), sets each layer group's
lr to η_t times that layer's factor::

    groups = layer_param_groups(model, lr=0.1, weight_decay=5e-4)
    opt = torch.optim.SGD(groups, lr=0.1, momentum=0.9)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=steps)
    tb = TempBalance(opt, model, every=len(train_loader))
    for x, y in batches:
        loss_fn(model(x), y).backward(); opt.step(); opt.zero_grad(); sched.step(); tb.step()
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch

from layerscope import spectrum
from layerscope.adapters.base import LayerWeights, detached_cpu, dtype_name
from layerscope.functional import farms, powerlaw
from layerscope.matrices import MatrixPlan, Skipped, plan_matrices

LAYER_KEY = "layerscope_layer"
LAYER_TYPES = (torch.nn.Linear, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
METRICS = ("alpha", "alpha_farms")
TAILS: dict[str, Callable[[powerlaw.FloatArray, float], powerlaw.PowerLawFit]] = {
    "median": powerlaw.fit_power_law_median,
    "ks": powerlaw.fit_power_law,
}
MIN_EVALS = 50


def layer_param_groups(model: torch.nn.Module, lr: float, **options: Any) -> list[dict[str, Any]]:
    """Optimizer parameter groups for :class:`TempBalance`.

    One group per ``nn.Linear``/``nn.Conv1d/2d/3d`` module (its own parameters), tagged
    ``layerscope_layer = module name``, in ``named_modules`` order; then the reference
    group (``layerscope_layer = None``) with every other trainable parameter. Every group
    gets ``lr`` and ``options`` (e.g. ``weight_decay``).
    """
    groups: list[dict[str, Any]] = []
    taken: set[int] = set()
    for name, module in model.named_modules():
        if isinstance(module, LAYER_TYPES):
            params = [p for p in module.parameters(recurse=False) if p.requires_grad]
            params = [p for p in params if id(p) not in taken]
            if params:
                taken.update(id(p) for p in params)
                groups.append({"params": params, "lr": lr, LAYER_KEY: name, **options})
    rest = [p for p in model.parameters() if p.requires_grad and id(p) not in taken]
    groups.append({"params": rest, "lr": lr, LAYER_KEY: None, **options})
    return groups


@dataclass(frozen=True)
class LayerReading:
    """One layer's alpha and eigenvalue count at a recomputation."""

    alpha: float
    num_evals: int


def _weight(module: torch.nn.Module) -> torch.Tensor:
    weight = module.weight
    if not isinstance(weight, torch.Tensor):
        raise ValueError(f"{type(module).__name__} has no weight tensor")
    return weight


def _plans(name: str, module: torch.nn.Module) -> list[MatrixPlan]:
    weight = _weight(module)
    layer = LayerWeights(
        name=f"{name}.weight",
        shape=tuple(weight.shape),
        dtype=dtype_name(weight.dtype),
        load=partial(detached_cpu, weight),
        module_type=type(module).__name__,
    )
    planned = plan_matrices(layer)
    return [] if isinstance(planned, Skipped) else planned


def read_layer(
    name: str, module: torch.nn.Module, metric: str = "alpha", tail: str = "median"
) -> LayerReading | None:
    """Alpha of one layer (mean over its matrices if it has several), or None if too small.

    The matrices are those a scan analyses (:mod:`layerscope.matrices`: conv kernels as
    pooled slices); ``alpha`` fits their ESD, ``alpha_farms`` their FARMS windows.
    """
    fit = TAILS[tail]
    alphas, count = [], 0
    tensor = detached_cpu(_weight(module))
    for plan in _plans(name, module):
        slices = plan.extract(tensor)
        if metric == "alpha_farms":
            data = slices.to(torch.float64).numpy()
            alphas.append(farms.farms_alpha(data, fit=fit, eig_scale=plan.eig_scale).alpha)
            count += plan.M * plan.num_slices
            continue
        evals = spectrum.eigenvalues(slices) * plan.eig_scale
        count += evals.size
        if np.count_nonzero(evals > powerlaw.EVALS_THRESH) < 2:
            return None
        alphas.append(fit(evals, powerlaw.EVALS_THRESH).alpha)
    return LayerReading(float(np.mean(alphas)), count) if alphas else None


def factors(alphas: dict[str, float], s1: float, s2: float) -> dict[str, float]:
    """s1 + (α_i − α_min)/(α_max − α_min)·(s2 − s1); the midpoint when all α are equal."""
    if not alphas:
        return {}
    lo, hi = min(alphas.values()), max(alphas.values())
    if hi == lo:
        return dict.fromkeys(alphas, (s1 + s2) / 2)
    return {k: s1 + (a - lo) / (hi - lo) * (s2 - s1) for k, a in alphas.items()}


class TempBalance:
    """Per-layer learning rates from alpha (module docstring).

    Args:
        optimizer: any torch optimizer built from :func:`layer_param_groups`.
        model: the model those groups came from.
        every: recompute the alphas every this many :meth:`step` calls (first at step 0).
        s1, s2: factor of the smallest and of the largest alpha (0 < s1 ≤ s2).
        metric: ``alpha`` or ``alpha_farms``.
        tail: ``median`` (xmin at the median eigenvalue, the paper's choice) or ``ks``.
        min_evals: layers with fewer eigenvalues keep η_t.
        exclude_first_last: the first and last layer keep η_t (the paper's choice).
    """

    def __init__(
        self,
        optimizer: torch.optim.Optimizer,
        model: torch.nn.Module,
        *,
        every: int,
        s1: float = 0.5,
        s2: float = 1.5,
        metric: str = "alpha",
        tail: str = "median",
        min_evals: int = MIN_EVALS,
        exclude_first_last: bool = True,
    ) -> None:
        if every < 1:
            raise ValueError(f"every must be >= 1, got {every}")
        if not 0.0 < s1 <= s2:
            raise ValueError(f"need 0 < s1 <= s2, got s1={s1}, s2={s2}")
        if metric not in METRICS:
            raise ValueError(f"metric must be 'alpha' or 'alpha_farms', got {metric!r}")
        if tail not in TAILS:
            raise ValueError(f"tail must be 'median' or 'ks', got {tail!r}")
        refs = [g for g in optimizer.param_groups if g.get(LAYER_KEY, "") is None]
        if len(refs) != 1:
            raise ValueError("build the optimizer from layer_param_groups(model, lr)")
        modules = dict(model.named_modules())
        self.groups = {g[LAYER_KEY]: g for g in optimizer.param_groups if g.get(LAYER_KEY)}
        unknown = [n for n in self.groups if n not in modules]
        if unknown:
            raise ValueError(f"parameter group of {unknown[0]}: no such module in the model")
        self.reference = refs[0]
        self.modules = {n: modules[n] for n in self.groups}
        self.every, self.s1, self.s2 = every, s1, s2
        self.metric, self.tail, self.min_evals = metric, tail, min_evals
        self.exclude_first_last = exclude_first_last
        self.factors: dict[str, float] = {}
        self.readings: dict[str, LayerReading] = {}
        self.steps = 0

    def tuned_layers(self, readings: dict[str, LayerReading | None]) -> dict[str, float]:
        """Alpha of the layers that get their own rate (exclusions applied)."""
        names = list(self.groups)
        skip = {names[0], names[-1]} if self.exclude_first_last and names else set()
        return {
            n: r.alpha
            for n, r in readings.items()
            if r is not None and n not in skip and r.num_evals >= self.min_evals
        }

    def recompute(self) -> dict[str, float]:
        """Refit every layer's alpha and return the new lr factors (1 for excluded layers)."""
        with torch.no_grad():
            readings = {
                n: read_layer(n, m, self.metric, self.tail) for n, m in self.modules.items()
            }
        self.readings = {n: r for n, r in readings.items() if r is not None}
        self.factors = factors(self.tuned_layers(readings), self.s1, self.s2)
        return self.factors

    def step(self) -> None:
        """Set every layer group's lr to η_t·factor (η_t: the reference group's lr)."""
        if self.steps % self.every == 0:
            self.recompute()
        self.steps += 1
        eta = float(self.reference["lr"])
        for name, group in self.groups.items():
            group["lr"] = eta * self.factors.get(name, 1.0)


def hf_callback(tb: TempBalance) -> Any:
    """A ``transformers.TrainerCallback`` that calls ``tb.step()`` at every ``on_step_end``.

    The Trainer steps its scheduler before ``on_step_end``, so the rates set there are the
    ones the next optimizer step uses; the very first optimizer step runs every layer at
    η_t (the alphas are first read at the end of step 1). Pass the optimizer built from
    :func:`layer_param_groups` (and your scheduler) as ``Trainer(optimizers=(opt, sched))``.
    """
    from transformers import TrainerCallback

    class TempBalanceHFCallback(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            tb.step()

    return TempBalanceHFCallback()


def lightning_callback(tb: TempBalance) -> Any:
    """A Lightning ``Callback`` that calls ``tb.step()`` in ``on_before_optimizer_step``.

    Lightning steps step-interval schedulers after ``on_train_batch_end``; setting the
    rates just before each optimizer step makes them follow the scheduler's current η_t.
    ``configure_optimizers`` must return the optimizer built from :func:`layer_param_groups`.
    """
    base: Any = None
    for module in ("lightning.pytorch", "pytorch_lightning"):
        try:
            base = importlib.import_module(module).Callback
            break
        except ImportError:
            continue
    if base is None:
        raise ImportError("lightning_callback needs Lightning: pip install lightning")

    class TempBalanceLightningCallback(base):  # type: ignore[misc]
        def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
            tb.step()

    return TempBalanceLightningCallback()
