"""The LLC over training: estimate it at a step and store it in a run store (opt-in).

The LLC needs data and a loss, so tracking it is explicit: build an :class:`LLCTracker`
with a held probe data set (a few thousand samples is plenty), the loss and how often,
and pass it to ``Monitor(model, llc=tracker)`` or call :meth:`LLCTracker.maybe_log`
from the training loop. Scalars stored at each estimated step: ``llc``, ``llc_std`` and
``llc_warnings`` (how many diagnostics fired; 0 = no reason found to distrust it).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from torch import nn

from layerscope.probes.llc import LLCOptions, LLCResult, estimate

if TYPE_CHECKING:
    from layerscope.probes._sgld import LossFn
    from layerscope.track.store import RunRef, RunStore


def log_llc(
    store: RunStore,
    run: RunRef,
    step: int,
    model: nn.Module,
    data: Any,
    loss_fn: LossFn,
    **options: Any,
) -> LLCResult:
    """Estimate the LLC of ``model`` now (:func:`~layerscope.probes.llc.estimate`) and
    store ``llc``, ``llc_std`` and ``llc_warnings`` as scalars of ``run`` at ``step``."""
    result = estimate(model, data, loss_fn, **options)
    store.log_scalars(
        run, step, llc=result.mean, llc_std=result.std, llc_warnings=len(result.warnings)
    )
    return result


@dataclass
class LLCTracker:
    """Estimate and store the LLC every ``every`` steps: at the first step seen and
    whenever the step reaches a new multiple of ``every`` (as the Monitor's scans).

    Args:
        data: the probe data (as for :func:`~layerscope.probes.llc.estimate`).
        loss_fn: ``loss_fn(model, batch) -> scalar`` mean loss.
        every: estimate when ``step // every`` changes.
        options: :func:`~layerscope.probes.llc.estimate` options (checked now). Keep the
            same ``seed``, step size and nβ over a run so that values are comparable.

    Raises:
        ValueError: ``every`` < 1 or an invalid option.
    """

    data: Any
    loss_fn: LossFn
    every: int = 1000
    options: dict[str, Any] = field(default_factory=dict)
    _last_bucket: int | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or self.every < 1:
            raise ValueError(f"every must be a positive integer, got {self.every!r}")
        LLCOptions.from_kwargs(**self.options)

    def due(self, step: int) -> bool:
        """Whether ``step`` is an estimation step (records it as seen)."""
        bucket = step // self.every
        if bucket == self._last_bucket:
            return False
        self._last_bucket = bucket
        return True

    def maybe_log(
        self, store: RunStore, run: RunRef, step: int, model: nn.Module
    ) -> LLCResult | None:
        """Estimate and store the LLC if ``step`` is due; else return ``None``."""
        if not self.due(step):
            return None
        return log_llc(store, run, step, model, self.data, self.loss_fn, **self.options)
