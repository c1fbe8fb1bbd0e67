"""The tracker core: one run in one store, and the one path by which scans raise alerts.

The Monitor, both training callbacks (through the Monitor) and
:func:`~layerscope.track.track_checkpoints` (so ``layerscope track``) each hold a
:class:`Tracker`: it opens the store, starts (or resumes) the run, stores each scan and
then runs the detector, whose new alerts it stores, logs and passes to ``on_alert``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from layerscope.track.options import TrackOptions
from layerscope.track.store import DEFAULT_PATH, Alert, RunRef, RunStore

if TYPE_CHECKING:
    from layerscope.results import ScanResult

logger = logging.getLogger(__name__)


class Tracker:
    """A run being tracked: options, store, run id, detector and the alerts raised.

    Args:
        options: the tracking options (the store to open or use is ``options.store``).
        run: run name (created or resumed) or the id of an existing run.
        meta: information stored with the run, merged over ``options.meta``.

    Raises:
        ValueError: an unusable store or an unknown run id.
    """

    def __init__(
        self, options: TrackOptions, run: RunRef, meta: Mapping[str, Any] | None = None
    ) -> None:
        self.options = options
        store = options.store
        self.owns_store = not isinstance(store, RunStore)
        self.store = store if isinstance(store, RunStore) else RunStore(store or DEFAULT_PATH)
        info = {**(options.meta or {}), **(meta or {})}
        try:
            self.run_id = (
                self.store.start_run(run, info) if isinstance(run, str) else self.store.run_id(run)
            )
        except Exception:
            self.close()
            raise
        self.run = self.store.run_name(self.run_id)
        self.detector = options.make_detector()
        self.alerts: list[Alert] = []

    def record(
        self,
        step: int,
        result: ScanResult,
        source: str | None = None,
        fingerprint: str | None = None,
    ) -> list[Alert]:
        """Store the scan of ``step``, then run the detector; return the new alerts."""
        self.store.log_scan(self.run_id, step, result, source, fingerprint=fingerprint)
        return self.check(step)

    def check(self, step: int) -> list[Alert]:
        """Run the detector after the scan of ``step``; store, log and hand on new alerts.

        A failing detector or hook is logged, never raised (training must go on).
        """
        if self.detector is None:
            return []
        try:
            new = list(self.detector(self.store, self.run_id, step))
        except Exception:
            logger.exception("layerscope: alert check at step %d failed", step)
            return []
        for alert in new:
            self.store.log_alert(
                self.run_id,
                alert.step,
                alert.level,
                alert.message,
                alert.evidence,
                evidence_step=alert.evidence_step,
            )
            logger.warning("layerscope alert at step %d: %s", alert.step, alert.message)
            self.alerts.append(alert)
            self._hand_on(alert, self.options.on_alert)
        return new

    @staticmethod
    def _hand_on(alert: Alert, hook: Callable[[Alert], None] | None) -> None:
        if hook is None:
            return
        try:
            hook(alert)
        except Exception:
            logger.exception("layerscope: on_alert hook failed at step %d", alert.step)

    def close(self) -> None:
        """Close the store if this tracker opened it."""
        if self.owns_store:
            self.store.close()


def replay(store: RunStore, run: RunRef, options: TrackOptions | None = None) -> list[Alert]:
    """Run the detector over a stored run (e.g. one tracked without it, or under new
    rules) through the same path as a live run; store and return the alerts it adds."""
    opts = TrackOptions.build(options, store=store)
    tracker = Tracker(opts, run)
    steps = store.steps(tracker.run_id)
    last = int(steps["step"].max()) if len(steps) else 0
    return tracker.check(last)


__all__ = ["Tracker", "replay"]
