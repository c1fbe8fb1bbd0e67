"""Self-contained HTML reports (one file, inline SVG/CSS/JS, works offline).

Rendering only: every number shown is read from a result (:class:`ScanResult`,
:class:`CompareResult`) or a run store; nothing here computes a metric.

* :func:`scan_html` — summary, alpha by depth, the layer table, per-layer spectra
  (when the scan kept them: ``keep_spectra=True``);
* :func:`compare_html` — base vs tuned alpha, the update's alpha and size, untouched
  and duplicated matrices, the gate result;
* :func:`run_html` — a tracked run: metrics over steps, a layer × step heat map of
  alpha, user scalars, phases and alerts;
* :func:`write_html` — write a page atomically.
"""

from __future__ import annotations

import os

from layerscope.report.html.compare_view import compare_html
from layerscope.report.html.scan_view import scan_html
from layerscope.report.html.training_view import run_html
from layerscope.results import atomic_write


def write_html(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` as UTF-8, atomically (temp file + rename)."""
    atomic_write(path, lambda handle: handle.write(text.encode("utf-8")))


__all__ = ["compare_html", "run_html", "scan_html", "write_html"]
