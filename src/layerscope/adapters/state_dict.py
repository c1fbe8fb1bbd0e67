"""Adapter for state dicts: in-memory mappings and torch checkpoint files (``.pt``/``.bin``...).

Checkpoint files are opened with ``torch.load(weights_only=True, mmap=True)``: the
pickle may only rebuild tensors and plain containers, and tensor data stays on disk
until a layer is used. A file that needs arbitrary unpickling is refused unless
the caller passes ``allow_unsafe_pickle=True`` (CLI ``--unsafe-pickle``).

Quirks handled here:

* common checkpoint containers are unwrapped: ``{"state_dict": ...}`` (Lightning),
  ``model_state_dict``, ``model``, ``module``, ``ema``;
* nested dicts of tensors are flattened with dots; non-tensor entries are ignored;
* a whole pickled ``nn.Module`` (unsafe loads only) goes to the module adapter;
* files written with the legacy (non-zip) format cannot be memory-mapped and are
  read whole.

Tensors are yielded as stored: a tied weight saved under two names appears twice.
"""

from __future__ import annotations

import dataclasses
import pickle
import re
from collections.abc import Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
import torch

from layerscope.adapters.base import (
    LayerWeights,
    Source,
    SourceError,
    clean_name,
    detached_cpu,
    dtype_name,
    one_line,
)
from layerscope.adapters.torch_module import TorchModuleSource

TensorLike: TypeAlias = "torch.Tensor | npt.NDArray[Any]"

CHECKPOINT_SUFFIXES = (".pt", ".pth", ".bin", ".ckpt")
CONTAINER_KEYS = ("state_dict", "model_state_dict", "model", "module", "ema")

_ZIP_MAGIC = b"PK\x03\x04"
_NUMERIC_KINDS = frozenset("biufc")
# What a weights_only refusal says when the pickle wants a class/function (not corruption).
_NEEDS_UNPICKLING = re.compile(r"GLOBAL (\S+)|(\S+) must be \S+ to load")


def _is_tensor(value: object) -> bool:
    if isinstance(value, np.ndarray):
        return value.dtype.kind in _NUMERIC_KINDS
    return isinstance(value, torch.Tensor)


def _numpy_to_torch(array: npt.NDArray[Any]) -> torch.Tensor:
    """``torch.from_numpy``, copying first when the array is read-only or not C-contiguous."""
    if not (array.flags.writeable and array.flags.c_contiguous):
        array = np.array(array, order="C")
    return torch.from_numpy(array)


def flatten_tensors(obj: Mapping[Any, Any], prefix: str = "") -> dict[str, TensorLike]:
    """The tensors of a (nested) mapping under dotted names; other entries are dropped."""
    tensors: dict[str, TensorLike] = {}
    for key, value in obj.items():
        name = f"{prefix}{key}"
        if _is_tensor(value):
            tensors[name] = value
        elif isinstance(value, Mapping):
            tensors.update(flatten_tensors(value, prefix=f"{name}."))
    return tensors


def _holds_weights(value: object) -> bool:
    if isinstance(value, torch.nn.Module):
        return True
    return isinstance(value, Mapping) and bool(flatten_tensors(value))


def unwrap_checkpoint(obj: object) -> object:
    """Descend through checkpoint containers (``state_dict``, ``model``...) to the weights.

    At each level the first of :data:`CONTAINER_KEYS` that holds tensors (or a module)
    is taken; other entries (optimizer state, epoch, hyper-parameters) are ignored.
    """
    while isinstance(obj, Mapping):
        inner = next(
            (obj[key] for key in CONTAINER_KEYS if key in obj and _holds_weights(obj[key])),
            None,
        )
        if inner is None:
            return obj
        obj = inner
    return obj


def make_layer(
    name: str, value: TensorLike, config: Mapping[str, Any] | None = None
) -> LayerWeights:
    """A :class:`LayerWeights` for a stored tensor or numpy array (name cleaned here)."""
    if isinstance(value, torch.Tensor):
        return LayerWeights(
            name=clean_name(name),
            shape=tuple(value.shape),
            dtype=dtype_name(value.dtype),
            load=partial(detached_cpu, value),
            config=config,
        )
    return LayerWeights(
        name=clean_name(name),
        shape=tuple(value.shape),
        dtype=value.dtype.name,
        load=partial(_numpy_to_torch, value),
        config=config,
    )


class StateDictSource:
    """Named tensors held in a mapping (in memory, or memory-mapped from a checkpoint)."""

    def __init__(
        self,
        tensors: Mapping[str, TensorLike],
        description: str,
        *,
        config: Mapping[str, Any] | None = None,
    ) -> None:
        self._tensors = dict(tensors)
        self.description = description
        self.config = config

    def __len__(self) -> int:
        return len(self._tensors)

    def __iter__(self) -> Iterator[LayerWeights]:
        owners: dict[tuple[int, int, tuple[int, ...], tuple[int, ...]], str] = {}
        for name, value in self._tensors.items():
            layer = make_layer(name, value, self.config)
            if isinstance(value, torch.Tensor) and value.numel():
                # torch.save keeps shared storage: tied weights load as views of one buffer.
                key = (
                    value.untyped_storage().data_ptr(),
                    int(value.storage_offset()),
                    tuple(value.shape),
                    tuple(value.stride()),
                )
                owner = owners.setdefault(key, layer.name)
                if owner != layer.name:
                    layer = dataclasses.replace(layer, tied_to=owner)
            yield layer


def source_from_object(
    obj: object,
    description: str,
    *,
    where: str | None = None,
    config: Mapping[str, Any] | None = None,
) -> Source:
    """A source for a loaded checkpoint object: a module, or a mapping holding tensors.

    ``where`` names the origin in error messages (the full path of a file).
    """
    where = where or description
    inner = unwrap_checkpoint(obj)
    if isinstance(inner, torch.nn.Module):
        module_source = TorchModuleSource(inner, config=config)
        module_source.description = f"{description} ({module_source.description})"
        return module_source
    if not isinstance(inner, Mapping):
        raise SourceError(f"{where} holds a {type(inner).__name__}, not a state dict")
    tensors = flatten_tensors(inner)
    if not tensors:
        raise SourceError(f"{where} holds no tensors")
    plural = "" if len(tensors) == 1 else "s"
    return StateDictSource(tensors, f"{description} ({len(tensors)} tensor{plural})", config=config)


def _refusal(path: Path, exc: pickle.UnpicklingError) -> SourceError | None:
    """The error to raise when a weights_only load failed because the pickle needs code."""
    match = _NEEDS_UNPICKLING.search(str(exc))
    if match is None:
        return None
    what = match.group(1) or match.group(2)
    return SourceError(
        f"refusing to unpickle {path}: it needs arbitrary code ({what}) to load; "
        "pass allow_unsafe_pickle=True (CLI: --unsafe-pickle) only for a file you trust"
    )


def load_checkpoint(path: Path, *, allow_unsafe_pickle: bool = False) -> object:
    """``torch.load`` a checkpoint to the CPU, memory-mapped when the format allows it."""
    with path.open("rb") as handle:
        zip_format = handle.read(len(_ZIP_MAGIC)) == _ZIP_MAGIC
    try:
        return torch.load(
            path, map_location="cpu", weights_only=not allow_unsafe_pickle, mmap=zip_format
        )
    except pickle.UnpicklingError as exc:
        refusal = None if allow_unsafe_pickle else _refusal(path, exc)
        if refusal is not None:
            raise refusal from exc
        raise SourceError(f"cannot read torch checkpoint {path}: {one_line(exc)}") from exc
    except Exception as exc:  # corrupt pickles raise anything (KeyError, struct.error...)
        raise SourceError(f"cannot read torch checkpoint {path}: {one_line(exc)}") from exc


def open_checkpoint(
    path: Path,
    *,
    allow_unsafe_pickle: bool = False,
    config: Mapping[str, Any] | None = None,
) -> Source:
    """A source for a ``.pt``/``.pth``/``.bin``/``.ckpt`` file."""
    obj = load_checkpoint(path, allow_unsafe_pickle=allow_unsafe_pickle)
    return source_from_object(
        obj, f"torch checkpoint {path.name}", where=f"torch checkpoint {path}", config=config
    )


def open_mapping(mapping: Mapping[Any, Any]) -> Source:
    """A source for an in-memory state dict (tensors or numpy arrays, possibly nested)."""
    return source_from_object(mapping, "state dict")
