"""An alert about a tracked run: what the detector raised, when, and on what evidence."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Alert:
    """A warning about a run, with the evidence behind it (JSON-ready).

    ``step`` is when it was raised (the first step the detector could know it, given the
    scans so far); ``evidence_step`` is the step its evidence dates from (``None``: the
    same, or not known).
    """

    step: int
    level: str
    message: str
    evidence: Mapping[str, Any] = field(default_factory=dict)
    evidence_step: int | None = None


__all__ = ["Alert"]
