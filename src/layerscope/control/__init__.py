"""Acting on the diagnosis: pruning plans (AlphaPruning), pruners (magnitude, Wanda) and
per-layer learning rates (TempBalance)."""

from layerscope.control.apply import prune
from layerscope.control.plan import PlanOptions, PrunePlan, allocate, prune_plan
from layerscope.control.prune import prune_module
from layerscope.control.tempbalance import TempBalance, layer_param_groups

__all__ = [
    "PlanOptions",
    "PrunePlan",
    "TempBalance",
    "allocate",
    "layer_param_groups",
    "prune",
    "prune_module",
    "prune_plan",
]
