"""The result of an LLC estimate: plain data with ``to_dict``, ``to_json`` and ``to_frame``."""

from __future__ import annotations

import dataclasses
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from layerscope.probes._llc_diagnostics import LLCDiagnostics
from layerscope.results import SCHEMA_VERSION, atomic_write, json_value, read_json


@dataclass(frozen=True)
class LLCResult:
    """A local learning coefficient estimate with the settings and diagnostics behind it.

    Attributes:
        mean: mean over the chains that did not diverge of the per-chain LLC.
        std: their standard deviation (ddof=1): chain-to-chain spread, not an error bar
            (the bias from step size and nβ is usually larger; docs/science.md, LLC).
        per_chain: λ̂_c = nβ·mean_t(L_b(w_t) − baseline_t) over the draws of chain c.
        nbeta, step_size, localization, num_chains, num_draws, burnin, batch_size:
            the settings used (nβ and the step size after defaults were applied).
        num_samples: the data set size, when known.
        baseline: ``"paired"`` (L_b(w*) on each step's minibatch) or ``"fixed"``.
        baseline_loss: mean baseline over the draws.
        diagnostics: see :class:`LLCDiagnostics`.
        warnings: plain-language reasons not to trust the number (empty: none found).
        vectorized: whether the chains ran together under vmap.
        fallback_reason: why they did not (vmap's error), else empty.
        threads: the thread budget the chains ran with (see ``estimate``).
        loss_traces: ``(C, num_draws)`` minibatch losses after burn-in (``keep_traces``).
        baseline_trace: ``(num_draws,)`` baselines of those steps (``keep_traces``).
    """

    mean: float
    std: float
    per_chain: tuple[float, ...]
    nbeta: float
    step_size: float
    localization: float
    num_chains: int
    num_draws: int
    burnin: int
    batch_size: int | None
    num_samples: int | None
    baseline: str
    baseline_loss: float
    diagnostics: LLCDiagnostics
    warnings: tuple[str, ...]
    vectorized: bool
    fallback_reason: str = ""
    threads: int = 1
    loss_traces: np.ndarray | None = None
    baseline_trace: np.ndarray | None = None

    @property
    def trustworthy(self) -> bool:
        """True when no diagnostic raised a warning."""
        return not self.warnings

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict: settings, estimate, diagnostics (flattened), warnings, traces."""
        out: dict[str, Any] = {}
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if isinstance(value, LLCDiagnostics):
                out.update({f"diag_{k}": v for k, v in dataclasses.asdict(value).items()})
            elif isinstance(value, np.ndarray):
                out[field.name] = value.tolist()
            elif isinstance(value, tuple):
                out[field.name] = list(value)
            else:
                out[field.name] = value
        out["diag_chain_drift"] = list(self.diagnostics.chain_drift)
        return out

    def to_json(
        self, path: str | os.PathLike[str] | None = None, meta: Mapping[str, Any] | None = None
    ) -> str:
        """The JSON document ``{"schema_version", "kind": "llc", "meta", **to_dict()}``.

        ``meta`` says what was estimated (the CLI gives checkpoint, model, data, loss).
        NaN and infinities become ``null``. Written atomically to ``path`` when given.
        """
        doc = {
            "schema_version": SCHEMA_VERSION,
            "kind": "llc",
            "meta": dict(meta or {}),
            **self.to_dict(),
        }
        text = json.dumps(_json_ready(doc), indent=2)
        if path is not None:
            atomic_write(path, lambda handle: handle.write(text.encode()))
        return text

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LLCResult:
        """Inverse of :meth:`to_dict` (``null`` read back as NaN, lists as tuples)."""
        diag_names = [f.name for f in dataclasses.fields(LLCDiagnostics)]
        diag: dict[str, Any] = {
            n: _number(data[f"diag_{n}"]) for n in diag_names if n != "chain_drift"
        }
        diag["diverged_chains"] = int(data["diag_diverged_chains"])
        chain_drift = tuple(_number(v) for v in data["diag_chain_drift"])
        values: dict[str, Any] = {}
        for field in dataclasses.fields(cls):
            if field.name == "diagnostics" or field.name not in data:
                continue
            value = data[field.name]
            if field.name in ("loss_traces", "baseline_trace"):
                value = None if value is None else np.asarray(value, dtype=np.float64)
            elif field.name == "per_chain":
                value = tuple(_number(v) for v in value)
            elif field.name == "warnings":
                value = tuple(value)
            elif field.name in _FLOAT_FIELDS:
                value = _number(value)
            values[field.name] = value
        return cls(diagnostics=LLCDiagnostics(chain_drift=chain_drift, **diag), **values)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> LLCResult:
        """Read a result written by :meth:`to_json` (its ``meta`` is not part of the result)."""
        data = read_json(path, "llc")
        try:
            return cls.from_dict(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: not a complete llc result ({exc})") from exc

    def to_frame(self) -> pd.DataFrame:
        """One row per chain: chain, llc, drift, diverged, mean_loss (with traces)."""
        frame = pd.DataFrame(
            {
                "chain": range(self.num_chains),
                "llc": self.per_chain,
                "drift": self.diagnostics.chain_drift,
                "diverged": [not np.isfinite(v) for v in self.per_chain],
            }
        )
        if self.loss_traces is not None:
            frame["mean_loss"] = self.loss_traces.mean(axis=1)
        return frame


def _json_ready(value: Any) -> Any:
    """Nested dicts/lists with NaN/Inf -> None and numpy scalars -> Python."""
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_ready(v) for v in value]
    return json_value(value)


_FLOAT_FIELDS = frozenset({"mean", "std", "nbeta", "step_size", "localization", "baseline_loss"})


def _number(value: Any) -> float:
    """A JSON number, with ``null`` (how NaN and infinities are written) read as NaN."""
    return float("nan") if value is None else float(value)
