"""Adapter for ``.safetensors`` files: names, shapes and dtypes from the header alone.

``safe_open`` parses only the JSON header; :func:`read_tensor` reopens the file and
reads one tensor, so nothing is kept open between layers. Tensors keep their stored
dtype (bf16/fp16 stay as they are; conversion happens downstream).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import torch
from safetensors import SafetensorError, safe_open

from layerscope.adapters.base import (
    LayerWeights,
    SourceError,
    clean_name,
    natural_key,
    one_line,
)

# safetensors header dtype codes -> torch dtype names (as in ``dtype_name``).
_DTYPES = {
    "F64": "float64",
    "F32": "float32",
    "F16": "float16",
    "BF16": "bfloat16",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "C64": "complex64",
    "I64": "int64",
    "I32": "int32",
    "I16": "int16",
    "I8": "int8",
    "U64": "uint64",
    "U32": "uint32",
    "U16": "uint16",
    "U8": "uint8",
    "BOOL": "bool",
}


class TensorEntry(NamedTuple):
    """One tensor as described by a safetensors header."""

    key: str
    shape: tuple[int, ...]
    dtype: str


def read_header(path: Path) -> list[TensorEntry]:
    """The tensors a safetensors file holds, without reading their data.

    The header stores names alphabetically (``layers.10`` before ``layers.2``); they are
    returned in natural order so results follow the model's depth.
    """
    try:
        with safe_open(str(path), framework="pt") as handle:
            entries = []
            keys: list[str] = handle.keys()
            for key in keys:
                tensor_slice = handle.get_slice(key)
                code = str(tensor_slice.get_dtype())
                shape = tuple(int(size) for size in tensor_slice.get_shape())
                entries.append(TensorEntry(key, shape, _DTYPES.get(code, code.lower())))
            return sorted(entries, key=lambda e: natural_key(e.key))
    except (SafetensorError, OSError) as exc:
        raise SourceError(f"cannot read safetensors file {path}: {one_line(exc)}") from exc


def read_tensor(path: Path, key: str) -> torch.Tensor:
    """Read one tensor of a safetensors file onto the CPU, in its stored dtype."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            tensor: torch.Tensor = handle.get_tensor(key)
            return tensor
    except (SafetensorError, OSError) as exc:
        message = f"cannot read {key} from safetensors file {path}: {one_line(exc)}"
        raise SourceError(message) from exc


def layers(
    path: Path, entries: Iterable[TensorEntry], config: Mapping[str, Any] | None = None
) -> Iterator[LayerWeights]:
    """One lazily loaded :class:`LayerWeights` per header entry."""
    for entry in entries:
        yield LayerWeights(
            name=clean_name(entry.key),
            shape=entry.shape,
            dtype=entry.dtype,
            load=partial(read_tensor, path, entry.key),
            config=config,
        )


class SafetensorsSource:
    """The tensors of one ``.safetensors`` file; the header is read once, at construction."""

    def __init__(self, path: Path, *, config: Mapping[str, Any] | None = None) -> None:
        self.path = path
        self.config = config
        self._entries = read_header(path)
        self.description = f"safetensors file {path.name}"

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[LayerWeights]:
        return layers(self.path, self._entries, self.config)
