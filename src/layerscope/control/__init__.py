"""Acting on the diagnosis: pruning plans (AlphaPruning) and pruners (magnitude, Wanda)."""

from layerscope.control.apply import prune
from layerscope.control.plan import PlanOptions, PrunePlan, allocate, prune_plan
from layerscope.control.prune import prune_module

__all__ = ["PlanOptions", "PrunePlan", "allocate", "prune", "prune_module", "prune_plan"]
