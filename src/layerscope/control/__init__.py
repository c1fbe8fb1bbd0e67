"""Acting on the diagnosis: pruning plans (AlphaPruning), pruners (magnitude, Wanda) and
per-layer learning rates (TempBalance)."""

from layerscope.control.apply import prune
from layerscope.control.plan import PlanOptions, PrunePlan, allocate, prune_plan
from layerscope.control.prune import prune_module
from layerscope.control.smooth import smooth, smooth_module
from layerscope.control.tempbalance import (
    TempBalance,
    hf_callback,
    layer_param_groups,
    lightning_callback,
)

__all__ = [
    "PlanOptions",
    "PrunePlan",
    "TempBalance",
    "allocate",
    "hf_callback",
    "layer_param_groups",
    "lightning_callback",
    "prune",
    "prune_module",
    "prune_plan",
    "smooth",
    "smooth_module",
]
