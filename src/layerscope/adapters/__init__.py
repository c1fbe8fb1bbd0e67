"""Model sources -> lazily loaded layers: :func:`open_source` picks the adapter.

Supported sources: a ``torch.nn.Module``; an in-memory mapping of names to tensors or
numpy arrays (checkpoint containers such as ``{"state_dict": ...}`` are unwrapped);
a path to a ``.safetensors`` file, a torch checkpoint (``.pt``, ``.pth``, ``.bin``,
``.ckpt``), a ``*.index.json`` shard index, or a Hugging Face model directory.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeAlias

import torch

from layerscope.adapters.base import LayerWeights, Source, SourceError
from layerscope.adapters.hf_dir import open_hf_dir, open_weights_file
from layerscope.adapters.state_dict import open_mapping
from layerscope.adapters.torch_module import TorchModuleSource

__all__ = ["LayerWeights", "Source", "SourceError", "SourceLike", "open_source"]

SourceLike: TypeAlias = "torch.nn.Module | Mapping[str, Any] | str | os.PathLike[str]"


def open_source(source: SourceLike, *, allow_unsafe_pickle: bool = False) -> Source:
    """Open a model source as a sized, re-iterable collection of :class:`LayerWeights`.

    Args:
        source: an ``nn.Module``, a mapping of names to tensors/arrays, or a path to a
            weights file or model directory.
        allow_unsafe_pickle: let torch checkpoints run arbitrary unpickling code
            (``weights_only=False``). Only for files you trust.

    Raises:
        SourceError: the source does not exist, has an unsupported type or format, or
            cannot be read (the message is one line and names the file).
    """
    if isinstance(source, torch.nn.Module):
        return TorchModuleSource(source)
    if isinstance(source, Mapping):
        return open_mapping(source)
    if isinstance(source, str | os.PathLike):
        return _open_path(Path(source), allow_unsafe_pickle=allow_unsafe_pickle)
    raise SourceError(
        f"cannot open a model source of type {type(source).__name__}: pass an nn.Module, "
        "a mapping of tensors, or a path to a weights file or model directory"
    )


def _open_path(path: Path, *, allow_unsafe_pickle: bool) -> Source:
    if not path.exists():
        raise SourceError(f"model source does not exist: {path}")
    if path.is_dir():
        return open_hf_dir(path, allow_unsafe_pickle=allow_unsafe_pickle)
    return open_weights_file(path, allow_unsafe_pickle=allow_unsafe_pickle)
