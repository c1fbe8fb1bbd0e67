"""Watch a model while it trains: log scalars every step, scan the weights every N steps.

>>> from layerscope.track import Monitor
>>> with Monitor(model, every=100, run="mlp-wd0") as monitor:   # doctest: +SKIP
...     for step in range(10_000):
...         loss = train_step()
...         monitor.step(step, train_loss=loss)

A scan copies the parameters to the CPU on the training thread (a consistent snapshot
between optimizer steps), then analyses the copy on a background thread so training goes
on. One scan runs at a time: a scan that falls due while the previous one is still
running is skipped and recorded as ``skipped``, as is a scan that would take the time
spent scanning above ``time_budget`` (a fraction of the wall time since the first step).
A failing scan is logged and recorded as an ``error`` step; it never raises into the
training loop.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any

import torch

from layerscope.scan import scan
from layerscope.track.options import Detector, TrackOptions
from layerscope.track.store import Alert
from layerscope.track.tracker import Tracker

if TYPE_CHECKING:
    from layerscope.track.llc import LLCTracker

logger = logging.getLogger(__name__)


@dataclass
class MonitorStats:
    """What a :class:`Monitor` did: scans stored, failed, skipped; seconds spent scanning."""

    scans: int = 0
    errors: int = 0
    skipped_busy: int = 0
    skipped_budget: int = 0
    scan_seconds: float = 0.0


class _Config:
    """A frozen copy of a Hugging Face config, read by the module adapter via ``to_dict``."""

    def __init__(self, values: dict[str, Any]) -> None:
        self._values = values

    def to_dict(self) -> dict[str, Any]:
        """The configuration values (a copy)."""
        return dict(self._values)


_MIRRORS: dict[str, type[torch.nn.Module]] = {}


def _mirror_class(type_name: str) -> type[torch.nn.Module]:
    """An empty module class with the given name (the adapter reads layer kinds from it)."""
    if type_name not in _MIRRORS:
        _MIRRORS[type_name] = type(type_name, (torch.nn.Module,), {})
    return _MIRRORS[type_name]


def snapshot(model: torch.nn.Module) -> torch.nn.Module:
    """A CPU copy of ``model``'s parameters in a module tree of the same names and classes.

    Only parameters are copied (no buffers, no code): scanning the copy gives the same
    result as scanning ``model``, tied parameters included, while training changes
    ``model``.
    """
    params: dict[int, torch.nn.Parameter] = {}
    mirrors: dict[int, torch.nn.Module] = {}

    def build(module: torch.nn.Module) -> torch.nn.Module:
        """The mirror of ``module`` (made once per module, so shared submodules stay shared)."""
        if id(module) in mirrors:
            return mirrors[id(module)]
        is_script = isinstance(module, torch.jit.ScriptModule)
        type_name = str(module.original_name) if is_script else type(module).__name__
        mirror = mirrors[id(module)] = _mirror_class(type_name)()
        for name, param in module.named_parameters(recurse=False):
            if id(param) not in params:
                copy = param.detach().to("cpu", copy=True)
                params[id(param)] = torch.nn.Parameter(copy, requires_grad=False)
            mirror.register_parameter(name, params[id(param)])
        for name, child in module.named_children():
            mirror.add_module(name, build(child))
        return mirror

    with torch.no_grad():
        root = build(model)
    to_dict = getattr(getattr(model, "config", None), "to_dict", None)
    if callable(to_dict):
        setattr(root, "config", _Config(dict(to_dict())))  # noqa: B010 (mypy: not a Module)
    return root


class Monitor:
    """Scan a model every ``every`` steps into a :class:`RunStore`, without stopping training.

    Args:
        model: the model being trained (any device; parameters are copied to the CPU).
        options: a :class:`~layerscope.track.options.TrackOptions` (every tracking entry
            point takes the same options).
        run: run name in the store (resumed when it exists); default ``run-<time>``.
        **kwargs: :class:`TrackOptions` fields replacing those of ``options`` (``every``,
            ``store``, ``metrics``, ``detector``, ``rules``, ``on_alert``,
            ``time_budget``, ``background``, ``seed``, ``probe``, ``llc``, ``meta``);
            any other name is a :func:`layerscope.scan` option (``include``, ``jobs``...).
            The default detector is the phase detector (scans then compute every metric,
            traps included); ``probe`` adds the baseline measures of
            :func:`layerscope.probes.baselines.baseline_metrics` as scalars ``probe_*``;
            ``llc`` (an :class:`~layerscope.track.llc.LLCTracker`) stores ``llc``,
            ``llc_std`` and ``llc_warnings`` every ``llc.every`` steps.

    Raises:
        ValueError: an invalid option (one line naming it), or an unusable store.
    """

    def __init__(
        self,
        model: torch.nn.Module,
        options: TrackOptions | None = None,
        *,
        run: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.options = TrackOptions.build(options, **kwargs)
        self._kwargs = self.options.scan_kwargs()
        self.model = model
        self.stats = MonitorStats()
        name = run or datetime.now().strftime("run-%Y%m%d-%H%M%S")
        opts = self.options
        info = {
            "model": type(model).__name__,
            "every": opts.every,
            "metrics": opts.scan_metrics,
            "seed": opts.seed,
        }
        self.tracker = Tracker(opts, name, {**info, **(opts.meta or {})})
        self.store = self.tracker.store
        self.run = self.tracker.run
        self.run_id = self.tracker.run_id
        self._lock = threading.Lock()
        self._worker: threading.Thread | None = None
        self._last_bucket: int | None = None
        self._started: float | None = None
        self._closed = False

    @property
    def every(self) -> int:
        """Steps between scans."""
        return self.options.every

    @property
    def alerts(self) -> list[Alert]:
        """The alerts raised so far by this monitor."""
        return self.tracker.alerts

    def step(self, step: int, **scalars: Any) -> None:
        """Log ``scalars`` at ``step``; scan when ``step`` reaches a new multiple of ``every``.

        Returns without waiting for the scan in background mode. Raises only for invalid
        input (a non-numeric scalar) or a closed monitor.
        """
        if self._closed:
            raise RuntimeError("this Monitor is closed")
        if self._started is None:
            self._started = time.perf_counter()
        if scalars:
            self.log(step, **scalars)
        if self.options.llc is not None:
            self._llc(step, self.options.llc)
        bucket = step // self.every
        if bucket != self._last_bucket:
            self._last_bucket = bucket
            self.scan(step)

    def log(self, step: int, **scalars: Any) -> None:
        """Record ``scalars`` (losses, accuracies...) at ``step`` without scanning.

        A failure to write (disk full, locked database) is logged, not raised.
        """
        try:
            self.store.log_scalars(self.run_id, step, **scalars)
        except ValueError:
            raise
        except Exception:
            logger.exception("layerscope: could not log scalars at step %d", step)

    def scan(self, step: int) -> bool:
        """Scan now (unless busy or over the time budget); return whether a scan started."""
        if self._worker is not None and self._worker.is_alive():
            self._skip(step, "previous scan still running", busy=True)
            return False
        if self._over_budget():
            budget = f"time budget {self.options.time_budget:g} of wall time reached"
            self._skip(step, budget, busy=False)
            return False
        started = time.perf_counter()
        if self.options.probe is not None:
            self._probe(step, self.options.probe)
        try:
            copy = snapshot(self.model)
        except Exception as exc:
            self._failed(step, exc, time.perf_counter() - started)
            return False
        if not self.options.background:
            self._job(step, copy, started)
            return True
        self._worker = threading.Thread(
            target=self._job, args=(step, copy, started), name="layerscope-monitor", daemon=True
        )
        self._worker.start()
        return True

    def _probe(self, step: int, probe: torch.Tensor) -> None:
        """Store the baseline measures on the probe batch; a failure is logged, not raised."""
        from layerscope.probes.baselines import baseline_metrics

        try:
            values = baseline_metrics(self.model, probe, seed=self.options.seed)
        except Exception:
            logger.exception("layerscope: probe measures at step %d failed", step)
            return
        self.log(step, **{f"probe_{k}": v for k, v in values.items()})

    def _llc(self, step: int, tracker: LLCTracker) -> None:
        """Estimate and store the LLC when due; a failure is logged, not raised."""
        try:
            tracker.maybe_log(self.store, self.run_id, step, self.model)
        except Exception:
            logger.exception("layerscope: LLC estimate at step %d failed", step)

    def _over_budget(self) -> bool:
        with self._lock:
            attempts = self.stats.scans + self.stats.errors
            spent = self.stats.scan_seconds
        budget = self.options.time_budget
        if budget is None or attempts == 0 or self._started is None:
            return False
        elapsed = time.perf_counter() - self._started
        return spent + spent / attempts > budget * elapsed

    def _skip(self, step: int, reason: str, *, busy: bool) -> None:
        with self._lock:
            if busy:
                self.stats.skipped_busy += 1
            else:
                self.stats.skipped_budget += 1
        logger.info("layerscope: scan at step %d skipped: %s", step, reason)
        self._record(self.store.log_skip, self.run_id, step, reason)

    def _failed(self, step: int, exc: Exception, seconds: float) -> None:
        logger.error("layerscope: scan at step %d failed", step, exc_info=exc)
        with self._lock:
            self.stats.errors += 1
            self.stats.scan_seconds += seconds
        self._record(self.store.log_error, self.run_id, step, f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _record(write: Callable[..., None], *args: Any) -> None:
        try:
            write(*args)
        except Exception:
            logger.exception("layerscope: could not write to the run store")

    def _job(self, step: int, model: torch.nn.Module, started: float) -> None:
        """Scan the snapshot and store it; every failure is logged and recorded."""
        try:
            result = scan(model, **self._kwargs)
            self.store.log_scan(self.run_id, step, result)
        except Exception as exc:
            self._failed(step, exc, time.perf_counter() - started)
            return
        with self._lock:
            self.stats.scans += 1
            self.stats.scan_seconds += time.perf_counter() - started
        self.tracker.check(step)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the running scan; return ``True`` when none is running any more."""
        worker = self._worker
        if worker is not None:
            worker.join(timeout)
            return not worker.is_alive()
        return True

    def close(self) -> None:
        """Wait for the running scan, then close the store if this monitor opened it."""
        if self._closed:
            return
        self._closed = True
        self.wait()
        self.tracker.close()

    def __enter__(self) -> Monitor:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


__all__ = ["Detector", "Monitor", "MonitorStats", "snapshot"]
