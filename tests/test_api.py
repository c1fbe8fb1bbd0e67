"""The public API is small and explicit; importing it has no side effects."""

from __future__ import annotations

import logging
import subprocess
import sys

import layerscope


def test_public_api_is_pinned() -> None:
    assert sorted(layerscope.__all__) == [
        "CompareResult",
        "DiffResult",
        "ProgressEvent",
        "ScanOptions",
        "ScanResult",
        "SourceError",
        "__version__",
        "compare",
        "diff",
        "scan",
    ]
    for name in layerscope.__all__:
        assert hasattr(layerscope, name)


def test_import_prints_nothing_and_configures_no_logging() -> None:
    code = "import logging, layerscope; print(len(logging.getLogger().handlers))"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "0" and proc.stderr == ""
    assert logging.getLogger("layerscope").handlers == []
