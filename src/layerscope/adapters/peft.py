"""Adapter for PEFT LoRA adapter directories (``adapter_config.json`` + weights).

PEFT's ``save_pretrained`` writes ``adapter_model.safetensors`` (or ``.bin``) with keys
``base_model.model.<module>.lora_A.weight`` (r × in) and ``…lora_B.weight`` (out × r),
and for embeddings ``…lora_embedding_A`` (r × vocab) / ``…lora_embedding_B`` (dim × r).
The update of a target module is

    ΔW = s · B A,   s = lora_alpha / r   (s = lora_alpha / √r with ``use_rslora``)

with per-module ``rank_pattern`` / ``alpha_pattern`` overrides matched like PEFT
(the module name ends with the pattern). For embeddings ΔW = s · (B A)ᵀ, which has
the same spectrum. Source: Hu et al. (2021), "LoRA: Low-Rank Adaptation of Large
Language Models", arXiv 2106.09685; Kalajdzievski (2023), rsLoRA, arXiv 2312.03732;
PEFT ``LoraLayer.update_layer``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layerscope.adapters.base import LayerWeights, SourceError, natural_key
from layerscope.adapters.hf_dir import open_weights_file

CONFIG_NAME = "adapter_config.json"
_KEY = re.compile(
    r"^(?:base_model\.model\.)?(?P<module>.+?)\.lora_(?P<emb>embedding_)?(?P<ab>[AB])"
    r"(?:\.[A-Za-z_]+)?(?:\.weight)?$"
)


@dataclass(frozen=True)
class LoraFactors:
    """The two factors of one LoRA target module and its scale.

    Attributes:
        module: module name in the base model (PEFT prefix removed).
        base_name: the base model's weight this update applies to (``module + ".weight"``).
        A, B: lazily loaded factors, A (r × in), B (out × r).
        scale: s in ΔW = s·B·A.
        rank: r.
        transposed: the base weight is laid out as (s·B·A)ᵀ: an embedding
            (vocab × dim), or a ``fan_in_fan_out`` layer such as GPT-2's Conv1D.
    """

    module: str
    base_name: str
    A: LayerWeights
    B: LayerWeights
    scale: float
    rank: int
    transposed: bool = False


def is_adapter_dir(path: Any) -> bool:
    """True for a directory holding a PEFT ``adapter_config.json``."""
    try:
        return Path(path).is_dir() and (Path(path) / CONFIG_NAME).is_file()
    except TypeError:
        return False


def _pattern_value(patterns: Mapping[str, Any], module: str, default: float) -> float:
    for pattern, value in patterns.items():
        if re.match(rf"(.*\.)?{pattern}$", module):
            return float(value)
    return default


def _scale(config: Mapping[str, Any], module: str, rank: int) -> float:
    alpha = _pattern_value(config.get("alpha_pattern") or {}, module, config.get("lora_alpha", 8))
    if config.get("use_rslora"):
        return alpha / math.sqrt(rank)
    return alpha / rank


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / CONFIG_NAME
    try:
        config: dict[str, Any] = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise SourceError(f"cannot read PEFT config {path}: {exc}") from exc
    peft_type = config.get("peft_type", "LORA")
    if peft_type != "LORA":
        raise SourceError(f"{path}: peft_type {peft_type} is not supported (only LORA)")
    if config.get("use_dora"):
        raise SourceError(f"{path}: DoRA adapters are not supported (ΔW is not B·A)")
    return config


def _weights_file(directory: Path) -> Path:
    for name in ("adapter_model.safetensors", "adapter_model.bin"):
        if (directory / name).is_file():
            return directory / name
    raise SourceError(f"PEFT adapter {directory} has no adapter_model.safetensors or .bin")


def open_lora(path: str | Path, *, allow_unsafe_pickle: bool = False) -> list[LoraFactors]:
    """Read a PEFT LoRA adapter directory into one :class:`LoraFactors` per target module.

    Raises:
        SourceError: missing/unreadable config or weights, non-LoRA adapter, a module
            with only one of its two factors, or factors whose ranks disagree.
    """
    directory = Path(path)
    config = _read_config(directory)
    source = open_weights_file(_weights_file(directory), allow_unsafe_pickle=allow_unsafe_pickle)
    parts: dict[str, dict[str, LayerWeights]] = {}
    embeddings: set[str] = set()
    for layer in source:
        match = _KEY.match(layer.name)
        if match is not None:
            parts.setdefault(match["module"], {})[match["ab"]] = layer
            if match["emb"]:
                embeddings.add(match["module"])
    factors = []
    for module in sorted(parts, key=natural_key):
        f = _factors(module, parts[module], config, directory)
        transposed = module in embeddings or bool(config.get("fan_in_fan_out"))
        factors.append(dataclasses.replace(f, transposed=transposed))
    if not factors:
        raise SourceError(f"PEFT adapter {directory} holds no lora_A/lora_B weights")
    return factors


def _factors(
    module: str, pair: Mapping[str, LayerWeights], config: Mapping[str, Any], where: Path
) -> LoraFactors:
    if set(pair) != {"A", "B"}:
        raise SourceError(
            f"PEFT adapter {where}: module {module} lacks lora_{({'A', 'B'} - set(pair)).pop()}"
        )
    A, B = pair["A"], pair["B"]
    rank = A.shape[0]
    if len(A.shape) != 2 or len(B.shape) != 2 or B.shape[1] != rank:
        raise SourceError(
            f"PEFT adapter {where}: module {module} has factors of shapes "
            f"{A.shape} and {B.shape}, which do not multiply"
        )
    rank_cfg = int(_pattern_value(config.get("rank_pattern") or {}, module, config.get("r", rank)))
    if rank_cfg != rank:
        raise SourceError(
            f"PEFT adapter {where}: module {module} has rank {rank}, config says {rank_cfg}"
        )
    return LoraFactors(module, f"{module}.weight", A, B, _scale(config, module, rank), rank)
