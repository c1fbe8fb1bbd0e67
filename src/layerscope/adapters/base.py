"""The one type every adapter yields: a lazily loaded named tensor.

An adapter turns a model source (an ``nn.Module``, a state dict, a file, a
Hugging Face directory) into a stream of :class:`LayerWeights`. Nothing is read
from disk until :meth:`LayerWeights.load` is called, so a scan holds at most a
few layers in memory at a time (docs/design.md, rule 2).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import torch


class SourceError(ValueError):
    """A model source cannot be read: missing/corrupt file, unknown format, missing shard.

    The message is one line and names the file and what is wrong; the CLI prints
    it and exits non-zero.
    """


@dataclass(frozen=True)
class LayerWeights:
    """One named parameter tensor of a model, loaded on demand.

    Attributes:
        name: the parameter's full name, e.g. ``encoder.layer.0.attention.self.query.weight``
            (framework prefixes such as ``_orig_mod.`` already stripped).
        shape: the tensor's shape as stored.
        dtype: the stored dtype as a short string (``float32``, ``bfloat16``...).
        module_type: class name of the owning module when the source knows it
            (``Linear``, ``Conv2d``, ``Conv1D``, ``Embedding``, ``MultiheadAttention``...),
            else ``None`` (bare state dicts and files).
        load: returns the tensor on the CPU in its stored dtype.
        config: model configuration when the source has one (HF ``config.json``),
            used to split fused QKV with grouped-query attention.
        tied_to: name of an earlier tensor this one shares storage with (tied
            embeddings and ``lm_head``); such a tensor is listed, not analysed twice.
    """

    name: str
    shape: tuple[int, ...]
    dtype: str
    load: Callable[[], torch.Tensor] = field(repr=False, compare=False)
    module_type: str | None = None
    config: Mapping[str, Any] | None = field(default=None, repr=False, compare=False)
    tied_to: str | None = None


class Source(Protocol):
    """What every adapter returns: a sized, re-iterable collection of layers."""

    description: str

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[LayerWeights]: ...


def dtype_name(dtype: torch.dtype) -> str:
    """``torch.bfloat16`` -> ``"bfloat16"``."""
    return str(dtype).removeprefix("torch.")


STRIP_PREFIXES = ("_orig_mod.", "module.")


def clean_name(name: str) -> str:
    """Strip wrapper prefixes added by ``torch.compile`` (``_orig_mod.``) and DDP (``module.``).

    They are a property of how the model was wrapped when saved, not of the model,
    so two checkpoints of the same model compare by the same names.
    """
    changed = True
    while changed:
        changed = False
        for prefix in STRIP_PREFIXES:
            if name.startswith(prefix):
                name = name[len(prefix) :]
                changed = True
        name = name.replace("._orig_mod.", ".")
    return name


_DIGITS = re.compile(r"(\d+)")


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that orders ``layers.2`` before ``layers.10`` (files store names alphabetically)."""
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in _DIGITS.split(name))


_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def one_line(exc: BaseException, limit: int = 200) -> str:
    """A library exception's message squeezed onto one line, for a :class:`SourceError`."""
    text = " ".join(_ANSI.sub("", str(exc)).split()) or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def detached_cpu(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor without autograd history, on the CPU (a no-op copy-wise when already there)."""
    return tensor.detach().cpu()
