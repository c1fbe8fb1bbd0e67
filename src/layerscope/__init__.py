"""layerscope: see inside a neural network's layers from the weights alone.

>>> import layerscope
>>> result = layerscope.scan("path/to/model")   # doctest: +SKIP
>>> result.layers[["name", "alpha", "verdict"]]  # doctest: +SKIP
"""

from layerscope.adapters import SourceError
from layerscope.results import ScanResult
from layerscope.scan import ProgressEvent, ScanOptions, scan

__version__ = "0.1.0"

__all__ = ["ProgressEvent", "ScanOptions", "ScanResult", "SourceError", "__version__", "scan"]
