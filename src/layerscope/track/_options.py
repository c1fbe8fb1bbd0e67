"""Scan options of the tracking entry points, validated once at the boundary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from layerscope.options import ScanOptions

Metrics = str | tuple[str, ...] | list[str]


def tracking_metrics(metrics: Metrics | None, detector: object) -> Metrics:
    """The metric groups a tracker scans: ``metrics``, or by default ``"all"`` when the
    phase detector runs (its collapse signature needs the ``traps`` group), else
    ``"default"``."""
    if metrics is not None:
        return metrics
    return "all" if detector == "phases" else "default"


def scan_kwargs(metrics: Metrics, options: Mapping[str, Any]) -> dict[str, Any]:
    """Keyword arguments for :func:`layerscope.scan`, checked against :class:`ScanOptions`.

    Raises:
        ValueError: an unknown option name or an invalid value (the scan's own message).
    """
    kwargs = ScanOptions.normalize({**options, "metrics": metrics})
    ScanOptions(**kwargs)
    return kwargs
