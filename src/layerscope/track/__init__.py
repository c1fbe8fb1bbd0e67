"""Training over time: a run store, a monitor for training loops, a checkpoint tracker.

* :class:`RunStore`: the SQLite file (default ``./layerscope-runs.db``) holding runs,
  per-layer metrics over steps, user-logged scalars and alerts;
* :class:`Monitor`: scans a model every N steps of a plain PyTorch loop, in the background;
* :func:`track_checkpoints`: scans a directory of saved checkpoints in step order;
* :func:`run_phases`, :class:`PhaseDetector`: phase labels (under-trained / learning /
  converged / over-fitting) from a run's stored trajectories, and the Monitor's default
  alert detector built on them;
* :class:`LayerscopeLightningCallback`, :class:`LayerscopeHFCallback`: the monitor as a
  PyTorch Lightning / Hugging Face Trainer callback (the frameworks are optional).

Importing this package imports neither Lightning nor transformers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from layerscope.track.checkpoints import TrackEvent, find_checkpoints, track_checkpoints
from layerscope.track.monitor import Monitor, MonitorStats
from layerscope.track.phases import PhaseDetector, RunPhases, run_phases
from layerscope.track.store import Alert, RunStore

if TYPE_CHECKING:
    from layerscope.track.callbacks import LayerscopeHFCallback, LayerscopeLightningCallback

_LAZY = frozenset({"LayerscopeHFCallback", "LayerscopeLightningCallback"})


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from layerscope.track import callbacks

        return getattr(callbacks, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "Alert",
    "LayerscopeHFCallback",
    "LayerscopeLightningCallback",
    "Monitor",
    "MonitorStats",
    "PhaseDetector",
    "RunPhases",
    "RunStore",
    "TrackEvent",
    "find_checkpoints",
    "run_phases",
    "track_checkpoints",
]
