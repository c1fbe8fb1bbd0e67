"""Scan options of the tracking entry points, validated once at the boundary."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from layerscope.options import ScanOptions


def scan_kwargs(
    metrics: str | tuple[str, ...] | list[str], options: Mapping[str, Any]
) -> dict[str, Any]:
    """Keyword arguments for :func:`layerscope.scan`, checked against :class:`ScanOptions`.

    Raises:
        ValueError: an unknown option name or an invalid value (the scan's own message).
    """
    kwargs = ScanOptions.normalize({**options, "metrics": metrics})
    ScanOptions(**kwargs)
    return kwargs
