"""The options of every tracking entry point, validated once at the boundary.

:class:`TrackOptions` is shared by :class:`~layerscope.track.Monitor`, both training
callbacks, :func:`~layerscope.track.track_checkpoints` and ``layerscope track``, so an
option means the same everywhere and none can drift between them.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from layerscope.functional.phases import PhaseRules
from layerscope.options import ScanOptions
from layerscope.track.store import Alert, RunStore

if TYPE_CHECKING:
    import torch

    from layerscope.track.llc import LLCTracker

Metrics = str | tuple[str, ...] | list[str]
Detector = Callable[[RunStore, int, int], Iterable[Alert]]
"""Called as ``detector(store, run_id, step)`` after each stored scan; yields new alerts."""
DetectorSpec = Detector | Literal["phases"] | None


@dataclass(frozen=True)
class TrackOptions:
    """How a run is tracked (every entry point takes these, by name or as one object).

    Attributes:
        every: scan when the step reaches a new multiple of ``every`` (and at the first
            step); live models only (Monitor, callbacks).
        store: a :class:`RunStore`, a database path, or ``None`` for
            ``./layerscope-runs.db``.
        metrics: metric groups to compute (as for :func:`layerscope.scan`); default
            ``"all"`` when ``detector="phases"`` (its collapse signature needs the
            correlation traps), else ``"default"``.
        detector: ``"phases"`` (default: a :class:`~layerscope.track.phases.PhaseDetector`
            with ``rules``), a callable ``detector(store, run_id, step)`` yielding new
            alerts, or ``None``.
        rules: the phase detector's rules (a ``PhaseRules`` or a mapping of its fields).
        on_alert: called with each new :class:`Alert` (exceptions are logged, not raised).
        time_budget: most fraction of wall time to spend scanning (live models only).
        background: scan on a background thread (live models only).
        seed: seed of the scan's random shuffles (the same weights give the same rows).
        probe: a batch of inputs for the baseline measures at each scan (live models only).
        llc: an :class:`~layerscope.track.llc.LLCTracker` (live models only).
        meta: extra JSON-ready information stored with the run.
        scan: further :func:`layerscope.scan` options (``include``, ``jobs``...).

    Raises:
        ValueError: an invalid value (one line naming the option).
    """

    every: int = 100
    store: RunStore | str | os.PathLike[str] | None = None
    metrics: Metrics | None = None
    detector: DetectorSpec = "phases"
    rules: PhaseRules | Mapping[str, Any] | None = None
    on_alert: Callable[[Alert], None] | None = None
    time_budget: float | None = None
    background: bool = True
    seed: int = 0
    probe: torch.Tensor | None = None
    llc: LLCTracker | None = None
    meta: Mapping[str, Any] | None = None
    scan: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.every, int) or isinstance(self.every, bool) or self.every < 1:
            raise ValueError(f"every must be a positive integer, got {self.every!r}")
        if self.time_budget is not None and not 0.0 < self.time_budget <= 1.0:
            raise ValueError(f"time_budget must be in (0, 1], got {self.time_budget}")
        if self.probe is not None and (not hasattr(self.probe, "dim") or self.probe.dim() < 1):
            raise ValueError("probe must be a tensor of inputs with a batch dimension")
        if self.detector != "phases" and self.detector is not None and not callable(self.detector):
            raise ValueError(f"detector must be callable, 'phases' or None, got {self.detector!r}")
        if self.on_alert is not None and not callable(self.on_alert):
            raise ValueError(f"on_alert must be callable, got {self.on_alert!r}")
        from layerscope.track.phases import rules_from

        object.__setattr__(self, "rules", rules_from(self.rules))
        self.scan_kwargs()  # validates the scan options

    @classmethod
    def build(cls, options: TrackOptions | None = None, **kwargs: Any) -> TrackOptions:
        """``options`` (or the defaults) with ``kwargs`` replacing fields; keyword
        arguments that are not fields are scan options (checked by :class:`ScanOptions`)."""
        base = options or cls()
        names = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in kwargs.items() if k in names}
        extra = {k: v for k, v in kwargs.items() if k not in names}
        if extra:
            fields["scan"] = {**fields.get("scan", base.scan), **extra}
        return dataclasses.replace(base, **fields)

    @property
    def scan_metrics(self) -> Metrics:
        """The metric groups scanned: ``metrics``, or ``"all"`` for the phase detector."""
        if self.metrics is not None:
            return self.metrics
        return "all" if self.detector == "phases" else "default"

    def scan_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`layerscope.scan` (validated)."""
        kwargs = ScanOptions.normalize(
            {**self.scan, "seed": self.seed, "metrics": self.scan_metrics}
        )
        ScanOptions(**kwargs)
        return kwargs

    def make_detector(self) -> Detector | None:
        """The detector to run after each stored scan."""
        if self.detector == "phases":
            from layerscope.track.phases import PhaseDetector

            return PhaseDetector(self.rules)
        return self.detector

    def live_only(self) -> list[str]:
        """The options set here that need a live model (for ``track_checkpoints``)."""
        changed = {
            "every": self.every != TrackOptions.every,
            "time_budget": self.time_budget is not None,
            "background": not self.background,
            "probe": self.probe is not None,
            "llc": self.llc is not None,
        }
        return [name for name, is_set in changed.items() if is_set]


__all__ = ["Detector", "DetectorSpec", "Metrics", "TrackOptions"]
