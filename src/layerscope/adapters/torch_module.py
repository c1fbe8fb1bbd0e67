"""Adapter for a live ``torch.nn.Module``: its parameters, tagged with the owning module's class.

Quirks handled here:

* tied/shared parameters (e.g. ``lm_head.weight`` is ``embed_tokens.weight``) are
  yielded once, under the first name ``named_modules()`` reaches;
* ``torch.compile`` wraps the model in an ``OptimizedModule`` whose parameters are
  named ``_orig_mod.*``: the prefix is stripped by :func:`clean_name`;
* TorchScript modules report their Python class through ``original_name``;
* a Hugging Face model's ``config`` is attached to every layer (fused-QKV splitting).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import partial
from typing import Any

import torch

from layerscope.adapters.base import LayerWeights, clean_name, detached_cpu, dtype_name


def _module_type(module: torch.nn.Module) -> str:
    """The class name of a module (``Linear``, ``Conv1D``...), seen through TorchScript."""
    if isinstance(module, torch.jit.ScriptModule):
        return str(module.original_name)
    return type(module).__name__


def _hf_config(module: torch.nn.Module) -> Mapping[str, Any] | None:
    """A Hugging Face ``PretrainedConfig`` as a plain dict, when the module carries one."""
    to_dict = getattr(getattr(module, "config", None), "to_dict", None)
    if not callable(to_dict):
        return None
    config = to_dict()
    return config if isinstance(config, dict) else None


class TorchModuleSource:
    """Every parameter of an ``nn.Module``, one :class:`LayerWeights` per parameter.

    ``load()`` returns ``param.detach()`` moved to the CPU at call time, so a model
    on the GPU is copied one layer at a time.
    """

    def __init__(self, module: torch.nn.Module, *, config: Mapping[str, Any] | None = None) -> None:
        self.module = module
        self.config = config if config is not None else _hf_config(module)
        inner = getattr(module, "_orig_mod", module)
        self.description = f"torch module {type(inner).__name__}"

    def _parameters(self) -> Iterator[tuple[str, torch.nn.Parameter, str, str | None]]:
        """(name, parameter, module type, first owner's name if tied) for every parameter.

        A parameter reachable under several names (tied embeddings, shared modules) is
        yielded under each, the later ones with ``tied_to`` set so scans list them.
        """
        first: dict[int, str] = {}
        for module_name, module in self.module.named_modules(remove_duplicate=False):
            module_type = _module_type(module)
            for param_name, param in module.named_parameters(recurse=False):
                full_name = clean_name(f"{module_name}.{param_name}" if module_name else param_name)
                owner = first.setdefault(id(param), full_name)
                yield full_name, param, module_type, None if owner == full_name else owner

    def __len__(self) -> int:
        return sum(1 for _ in self._parameters())

    def __iter__(self) -> Iterator[LayerWeights]:
        for name, param, module_type, tied_to in self._parameters():
            yield LayerWeights(
                name=name,
                shape=tuple(param.shape),
                dtype=dtype_name(param.dtype),
                load=partial(detached_cpu, param),
                module_type=module_type,
                config=self.config,
                tied_to=tied_to,
            )
