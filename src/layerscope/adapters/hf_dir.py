"""Adapter for a Hugging Face model directory (and single weight files by path).

Looked for, in order: ``model.safetensors.index.json`` (+ shards), ``model.safetensors``,
``pytorch_model.bin.index.json`` (+ shards), ``pytorch_model.bin``; otherwise exactly one
``*.safetensors.index.json``, ``*.safetensors``, ``*.bin.index.json`` or
``*.bin``/``*.pt``/``*.pth`` file (``adapter_model.safetensors``, sentence-transformers
layouts). ``config.json``, when present, is attached to every layer.

Sharded checkpoints are read lazily: ``len()`` comes from the index, and each shard is
opened only when iteration reaches it; tensors are loaded one at a time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from layerscope.adapters import safetensors as st
from layerscope.adapters.base import LayerWeights, Source, SourceError, natural_key, one_line
from layerscope.adapters.state_dict import (
    CHECKPOINT_SUFFIXES,
    flatten_tensors,
    load_checkpoint,
    make_layer,
    open_checkpoint,
    unwrap_checkpoint,
)

INDEX_SUFFIX = ".index.json"
FILE_SUFFIXES = (".safetensors", *CHECKPOINT_SUFFIXES)
_PREFERRED = (
    "model.safetensors.index.json",
    "model.safetensors",
    "pytorch_model.bin.index.json",
    "pytorch_model.bin",
)
_FALLBACK_PATTERNS = (
    ("*.safetensors.index.json",),
    ("*.safetensors",),
    ("*.bin.index.json",),
    ("*.bin", "*.pt", "*.pth"),
)
# Files a training run leaves next to the weights that are not model weights.
_NOT_WEIGHTS = frozenset(
    {"training_args.bin", "optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state.pth"}
)


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise SourceError(f"cannot read {what} {path}: {one_line(exc)}") from exc
    if not isinstance(data, dict):
        raise SourceError(f"{what} {path} is not a JSON object")
    return data


def read_config(directory: Path) -> Mapping[str, Any] | None:
    """``config.json`` of a model directory as a read-only mapping, or ``None``."""
    path = directory / "config.json"
    if not path.is_file():
        return None
    return MappingProxyType(_read_json(path, "model config"))


def _read_index(index: Path) -> dict[str, str]:
    """``weight_map`` of a sharded checkpoint's index, each named shard checked to exist."""
    weight_map = _read_json(index, "shard index").get("weight_map")
    if not isinstance(weight_map, dict) or not weight_map:
        raise SourceError(f"shard index {index} has no weight_map")
    for shard in sorted(set(weight_map.values())):
        if not (index.parent / str(shard)).is_file():
            raise SourceError(f"shard {shard} named by index {index} does not exist")
    return {str(key): str(shard) for key, shard in weight_map.items()}


class ShardedSource:
    """A checkpoint split over shard files listed by an ``*.index.json`` weight map."""

    def __init__(
        self,
        index: Path,
        *,
        allow_unsafe_pickle: bool = False,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self.index = index
        self.config = config
        self.allow_unsafe_pickle = allow_unsafe_pickle
        self._weight_map = _read_index(index)
        self._shards: dict[str, list[str]] = {}
        for key, shard in sorted(self._weight_map.items(), key=lambda kv: natural_key(kv[1])):
            self._shards.setdefault(shard, []).append(key)
        kind = (
            "safetensors" if index.name.lower().endswith(".safetensors" + INDEX_SUFFIX) else "torch"
        )
        self._safetensors = kind == "safetensors"
        self.description = f"sharded {kind} checkpoint {index.name} ({len(self._shards)} shards)"

    def __len__(self) -> int:
        return len(self._weight_map)

    def __iter__(self) -> Iterator[LayerWeights]:
        for shard, keys in self._shards.items():
            yield from self._shard_layers(self.index.parent / shard, set(keys))

    def _shard_layers(self, path: Path, keys: set[str]) -> Iterator[LayerWeights]:
        """The layers the index assigns to one shard, in the shard's own order."""
        if self._safetensors:
            entries = [entry for entry in st.read_header(path) if entry.key in keys]
            found = {entry.key for entry in entries}
            self._check_complete(path, keys, found)
            yield from st.layers(path, entries, self.config)
            return
        obj = load_checkpoint(path, allow_unsafe_pickle=self.allow_unsafe_pickle)
        inner = unwrap_checkpoint(obj)
        tensors = flatten_tensors(inner) if isinstance(inner, Mapping) else {}
        self._check_complete(path, keys, set(tensors))
        for name, value in tensors.items():
            if name in keys:
                yield make_layer(name, value, self.config)

    def _check_complete(self, shard: Path, expected: set[str], found: set[str]) -> None:
        missing = sorted(expected - found)
        if missing:
            raise SourceError(
                f"shard {shard.name} lacks {len(missing)} tensor(s) its index "
                f"{self.index} assigns to it, e.g. {missing[0]}"
            )


def _find_weights(directory: Path) -> Path:
    """The weights file (or shard index) of a model directory."""
    for name in _PREFERRED:
        if (directory / name).is_file():
            return directory / name
    for patterns in _FALLBACK_PATTERNS:
        matches = sorted(
            {
                path
                for pattern in patterns
                for path in directory.glob(pattern)
                if path.is_file() and path.name not in _NOT_WEIGHTS
            }
        )
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            names = ", ".join(path.name for path in matches[:5])
            raise SourceError(
                f"directory {directory} holds several candidate weight files ({names}); "
                "open one of them directly"
            )
    raise SourceError(
        f"no model weights found in directory {directory}: looked for "
        f"{', '.join(_PREFERRED)}, or a single *.safetensors, *.bin, *.pt or *.pth file"
    )


def open_weights_file(
    path: Path,
    *,
    allow_unsafe_pickle: bool = False,
    config: Mapping[str, Any] | None = None,
) -> Source:
    """A source for a weights file or shard index, chosen by its name."""
    name = path.name.lower()
    if name.endswith(INDEX_SUFFIX):
        return ShardedSource(path, allow_unsafe_pickle=allow_unsafe_pickle, config=config)
    if name.endswith(".safetensors"):
        return st.SafetensorsSource(path, config=config)
    if name.endswith(CHECKPOINT_SUFFIXES):
        return open_checkpoint(path, allow_unsafe_pickle=allow_unsafe_pickle, config=config)
    raise SourceError(
        f"unsupported file type {path.suffix or '(no extension)'} for {path}: supported are "
        f"{', '.join(FILE_SUFFIXES)}, a *{INDEX_SUFFIX} shard index, or a model directory"
    )


def open_hf_dir(directory: Path, *, allow_unsafe_pickle: bool = False) -> Source:
    """A source for a Hugging Face model directory, with ``config.json`` attached."""
    config = read_config(directory)
    weights = _find_weights(directory)
    source = open_weights_file(weights, allow_unsafe_pickle=allow_unsafe_pickle, config=config)
    source.description = f"{source.description} in {directory.name}/"
    return source
