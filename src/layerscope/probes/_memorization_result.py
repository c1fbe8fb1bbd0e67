"""The result of ``memorized_bits``: plain data, written as JSON/CSV and read back for
``layerscope report`` (Morris et al. 2025, arXiv 2505.24832; docs/memorization.md)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

SCHEMA_VERSION = 1
READABLE_VERSIONS = (1,)


@dataclass(frozen=True)
class MemorizationResult:
    """Per-sample code lengths of the data under the model and the reference.

    Attributes:
        model_bits: H_θ(x) = −log₂ p_θ(x) over the scored tokens, one per sample.
        reference_bits: H_ref(x) over the same tokens.
        scored_tokens: number of scored tokens per sample.
        reference: ``"uniform"`` or the reference model's class name.
        vocab_size: V, the size of the model's output distribution.
        num_parameters: the model's parameter count (shared tensors counted once).
        ids: a name per sample (the CLI's document ids); ``None``: their positions.
        meta: where the inputs came from (the CLI's paths), kept in the JSON file.
        documents: the start of each sample's text for the reports (``None``: not kept).
    """

    model_bits: NDArray[np.float64]
    reference_bits: NDArray[np.float64]
    scored_tokens: NDArray[np.int64]
    reference: str
    vocab_size: int
    num_parameters: int
    ids: tuple[str, ...] | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    documents: tuple[str, ...] | None = None

    @property
    def memorized_bits(self) -> NDArray[np.float64]:
        """bits(x) = max(0, H_ref(x) − H_θ(x)) per sample."""
        return np.maximum(0.0, self.reference_bits - self.model_bits)

    @property
    def total_bits(self) -> float:
        """Σ_x bits(x) over the data set."""
        return float(self.memorized_bits.sum())

    @property
    def bits_per_parameter(self) -> float:
        """Total memorized bits / parameter count."""
        return self.total_bits / self.num_parameters

    @property
    def bits_per_token(self) -> float:
        """Total memorized bits / scored tokens."""
        return self.total_bits / max(1, int(self.scored_tokens.sum()))

    def to_frame(self) -> pd.DataFrame:
        """One row per sample: index, id, scored tokens, model/reference/memorized bits."""
        names = self.ids if self.ids is not None else [str(i) for i in range(self.model_bits.size)]
        return pd.DataFrame(
            {
                "sample": np.arange(self.model_bits.size),
                "id": list(names),
                "tokens": self.scored_tokens,
                "model_bits": self.model_bits,
                "reference_bits": self.reference_bits,
                "memorized_bits": self.memorized_bits,
            }
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary and per-sample table (with each sample's ``document``
        start when kept)."""
        from layerscope.results import records

        rows = records(self.to_frame())
        for row, text in zip(rows, self.documents or (), strict=False):
            row["document"] = text
        return {
            "schema_version": SCHEMA_VERSION,
            "kind": "memorization",
            "reference": self.reference,
            "vocab_size": self.vocab_size,
            "num_parameters": self.num_parameters,
            "num_samples": int(self.model_bits.size),
            "scored_tokens": int(self.scored_tokens.sum()),
            "total_bits": self.total_bits,
            "bits_per_parameter": self.bits_per_parameter,
            "bits_per_token": self.bits_per_token,
            "meta": self.meta,
            "samples": rows,
        }

    @classmethod
    def from_dict(cls, data: Any, where: str = "memorization result") -> MemorizationResult:
        """Inverse of :meth:`to_dict`; ``ValueError`` naming ``where`` and what is wrong."""
        from layerscope.results import check_header

        check_header(data, "memorization", READABLE_VERSIONS, where)
        try:
            rows = list(data["samples"])
            model = np.array([float(r["model_bits"]) for r in rows], dtype=np.float64)
            reference = np.array([float(r["reference_bits"]) for r in rows], dtype=np.float64)
            tokens = np.array([int(r["tokens"]) for r in rows], dtype=np.int64)
            ids = tuple(str(r["id"]) for r in rows)
            texts = [str(r["document"]) for r in rows if "document" in r]
            fixed = (str(data["reference"]), int(data["vocab_size"]), int(data["num_parameters"]))
            meta = dict(data.get("meta", {}))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{where}: not a complete memorization result ({exc!r})") from exc
        if texts and len(texts) != len(rows):
            raise ValueError(f"{where}: some samples have a document, others not")
        documents = tuple(texts) if texts else None
        return cls(model, reference, tokens, *fixed, ids=ids, meta=meta, documents=documents)

    @classmethod
    def from_json(cls, path: str | os.PathLike[str]) -> MemorizationResult:
        """Read a file written by :meth:`to_json`."""
        from layerscope.results import load_json

        return cls.from_dict(load_json(path), str(path))

    def to_json(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` as JSON (atomically: a temporary file, then a rename)."""
        from layerscope.results import atomic_write

        text = json.dumps(self.to_dict(), indent=2)
        atomic_write(path, lambda h: h.write(text.encode()))

    def to_csv(self, path: str | os.PathLike[str]) -> None:
        """Write the per-sample table as CSV (atomically)."""
        from layerscope.results import atomic_write

        atomic_write(path, lambda h: h.write(self.to_frame().to_csv(index=False).encode()))
