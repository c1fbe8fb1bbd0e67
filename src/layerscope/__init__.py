"""layerscope: see inside a neural network's layers from the weights alone.

>>> import layerscope
>>> result = layerscope.scan("path/to/model")   # doctest: +SKIP
>>> result.layers[["name", "alpha", "verdict"]]  # doctest: +SKIP
>>> audit = layerscope.compare("base/", "tuned/")  # doctest: +SKIP
"""

from layerscope._version import __version__
from layerscope.adapters import SourceError
from layerscope.compare import compare
from layerscope.compare_result import CompareResult
from layerscope.diff import DiffResult, diff
from layerscope.results import ScanResult
from layerscope.scan import ProgressEvent, ScanOptions, scan

__all__ = [
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
