"""Validated options of the entry points (one dataclass per entry point)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Self

from layerscope import metrics as registry
from layerscope import spectrum
from layerscope.functional import conv_fft, fingers
from layerscope.matrices import Readings


@dataclass(frozen=True)
class ScanOptions:
    """Validated options of :func:`scan` (see its docstring)."""

    metrics: str | tuple[str, ...] = "default"
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()
    min_size: int = 0
    seed: int = 0
    device: str = "auto"
    jobs: int = 1
    precision: str = "auto"
    keep_spectra: bool = False
    allow_unsafe_pickle: bool = False
    fit: str = "PL"
    fix_fingers: str | None = None
    conv2d_fft: str | None = None
    fft_size: int = conv_fft.DEFAULT_FFT_SIZE
    depthwise: str = "matrix"
    intra: bool = False
    traps: str = "exact"

    @classmethod
    def normalize(cls, options: dict[str, Any]) -> dict[str, Any]:
        """Keyword options with list/str values turned into tuples; unknown names rejected."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            what = cls.__name__.removesuffix("Options").lower()
            listed = ", ".join(sorted(known))
            raise ValueError(f"unknown {what} option(s): {', '.join(unknown)}; known: {listed}")
        out = dict(options)
        for key in ("include", "exclude", "kinds"):
            if isinstance(out.get(key), str):
                out[key] = (out[key],)
            elif out.get(key) is not None:
                out[key] = tuple(out[key])
        if isinstance(out.get("metrics"), list):
            out["metrics"] = tuple(out["metrics"])
        return out

    @classmethod
    def from_kwargs(cls, **options: Any) -> Self:
        """Validated options from keyword arguments (see :meth:`normalize`)."""
        return cls(**cls.normalize(options))

    def __post_init__(self) -> None:
        registry.resolve(self.metrics)
        if self.jobs < 1:
            raise ValueError(f"jobs must be >= 1, got {self.jobs}")
        if self.min_size < 0:
            raise ValueError(f"min_size must be >= 0, got {self.min_size}")
        if self.precision not in ("auto", "float64", "float32"):
            raise ValueError(
                f"precision must be 'auto', 'float64' or 'float32', got {self.precision!r}"
            )
        spectrum.resolve_device(self.device)
        fingers.FitOptions(self.fit, self.fix_fingers)
        if self.traps not in ("exact", "fast"):
            raise ValueError(f"traps must be 'exact' or 'fast', got {self.traps!r}")
        self._check_readings()

    def _check_readings(self) -> None:
        """conv2d_fft, depthwise and intra, and the metric groups they cannot feed."""
        _ = self.readings
        specs = registry.resolve(self.metrics)
        if self.intra:
            if self.conv2d_fft is not None:
                raise ValueError("intra and conv2d_fft cannot be combined (as in WeightWatcher)")
            bad = [s.name for s in specs if s.needs_shuffle or s.needs_vectors or s.needs_matrix]
            if bad:
                raise ValueError(f"intra=True does not support metric group(s) {', '.join(bad)}")
        if self.conv2d_fft is not None:
            bad = [s.name for s in specs if s.needs_vectors or s.needs_matrix]
            if bad:
                raise ValueError(f"conv2d_fft does not support metric group(s) {', '.join(bad)}")

    @property
    def readings(self) -> Readings:
        """How conv kernels are read (``conv2d_fft``, ``fft_size``, ``depthwise``), validated."""
        return Readings(self.conv2d_fft, self.fft_size, self.depthwise)

    @property
    def fit_options(self) -> fingers.FitOptions:
        """The tail-fit options (``fit``, ``fix_fingers``), validated."""
        return fingers.FitOptions(self.fit, self.fix_fingers)


@dataclass(frozen=True)
class CompareOptions(ScanOptions):
    """Validated options of :func:`layerscope.compare`: scan options plus the audit's own."""

    untouched_tol: float = 1e-6
    duplicate_tol: float = 1e-4
    duplicates: bool = True
    lora_layer_alpha: bool = True

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.intra or self.conv2d_fft is not None or self.depthwise != "matrix":
            raise ValueError("compare supports neither intra, conv2d_fft nor depthwise='slices'")
        if not 0.0 <= self.untouched_tol < 1.0:
            raise ValueError(f"untouched_tol must be in [0, 1), got {self.untouched_tol}")
        if not 0.0 <= self.duplicate_tol < 1.0:
            raise ValueError(f"duplicate_tol must be in [0, 1), got {self.duplicate_tol}")
