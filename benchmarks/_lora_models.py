"""Synthetic Llama-shaped LoRA adapters for ``benchmarks/lora_audit.py``.

Rank-16 factors on the seven Llama targets of each block (q/k/v/o: hidden × hidden;
gate/up: intermediate × hidden; down: hidden × intermediate), written as a REAL PEFT
adapter directory (``adapter_config.json`` + ``adapter_model.safetensors`` with PEFT's
key names ``base_model.model.<module>.lora_A.weight`` (r × in) and ``…lora_B.weight``
(out × r)), plus the base weights (i.i.d. normal, std 0.02) as one safetensors file
named like a Hugging Face ``LlamaForCausalLM`` state dict (``model.layers.{i}.…``).

The update of a target is ΔW = s·B·A with s = lora_alpha / r = 2 (PEFT's default
scaling). A has i.i.d. N(0, 1/in) entries (nearly orthonormal rows); the columns of B
are scaled by a decaying power law j^(−p) (p drawn per target) so that ΔW has 16
distinct singular values, and B is scaled so that ‖ΔW‖_F / ‖W_base‖_F = ``rel``
(drawn per target between 0.02 and 0.2).

Also the WeightWatcher side: nn.Modules over the same tensors (merged tuned model;
PEFT's wrapped layout) and its two routes, delta and ``peft=True``, silenced.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from _models import INIT_STD, LlamaShape, quiet

RANK = 16
LORA_ALPHA = 32
SCALE = LORA_ALPHA / RANK
PREFIX = "base_model.model."
TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
_PARENT = {"gate_proj": "mlp", "up_proj": "mlp", "down_proj": "mlp"}


@dataclass(frozen=True)
class LoraSet:
    """Base weights and LoRA factors of the synthetic model.

    Attributes:
        shape: model dimensions.
        base: ``model.layers.{i}.<parent>.<target>.weight`` -> (out × in) float32.
        factors: module name (``model.layers.{i}.<parent>.<target>``) -> (A, B).
    """

    shape: LlamaShape
    base: dict[str, torch.Tensor]
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]]

    def delta(self, module: str) -> torch.Tensor:
        """The dense update s·B·A (float32, out × in), as PEFT's merge computes it."""
        A, B = self.factors[module]
        return (B @ A) * SCALE

    @property
    def target_modules(self) -> list[str]:
        return list(self.factors)


def _dims(shape: LlamaShape, target: str) -> tuple[int, int]:
    """(out, in) of a target's weight."""
    h, i = shape.hidden, shape.intermediate
    return {"gate_proj": (i, h), "up_proj": (i, h), "down_proj": (h, i)}.get(target, (h, h))


def module_name(block: int, target: str) -> str:
    return f"model.layers.{block}.{_PARENT.get(target, 'self_attn')}.{target}"


def make_lora(shape: LlamaShape, seed: int = 0) -> LoraSet:
    """Base weights (std 0.02) and rank-16 factors for every target of every block."""
    gen = torch.Generator().manual_seed(seed)
    base: dict[str, torch.Tensor] = {}
    factors: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
    for block in range(shape.blocks):
        for target in TARGETS:
            out, inp = _dims(shape, target)
            module = module_name(block, target)
            W = torch.randn(out, inp, generator=gen) * INIT_STD
            A = torch.randn(RANK, inp, generator=gen) / inp**0.5
            p = 0.5 + float(torch.rand(1, generator=gen))  # singular values decay as j^-p
            cols = torch.arange(1, RANK + 1, dtype=torch.float32) ** -p
            B = torch.randn(out, RANK, generator=gen) * cols
            rel = 0.02 + 0.18 * float(torch.rand(1, generator=gen))
            B *= rel * float(W.norm()) / float((B @ A).norm() * SCALE)
            base[module + ".weight"] = W
            factors[module] = (A.contiguous(), B.contiguous())
    return LoraSet(shape, base, factors)


def adapter_config(lora: LoraSet, base_model: str) -> dict[str, Any]:
    """The fields of PEFT's ``adapter_config.json`` that matter for a LoRA (PEFT 0.21)."""
    return {
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": RANK,
        "lora_alpha": LORA_ALPHA,
        "lora_dropout": 0.0,
        "target_modules": list(TARGETS),
        "bias": "none",
        "fan_in_fan_out": False,
        "use_rslora": False,
        "use_dora": False,
        "rank_pattern": {},
        "alpha_pattern": {},
        "init_lora_weights": True,
        "inference_mode": True,
    }


def write_adapter(lora: LoraSet, directory: Path, base_model: str) -> Path:
    """Write the PEFT adapter directory; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    tensors: dict[str, torch.Tensor] = {}
    for module, (A, B) in lora.factors.items():
        tensors[f"{PREFIX}{module}.lora_A.weight"] = A
        tensors[f"{PREFIX}{module}.lora_B.weight"] = B
    save_file(tensors, str(directory / "adapter_model.safetensors"), {"format": "pt"})
    config = adapter_config(lora, base_model)
    (directory / "adapter_config.json").write_text(json.dumps(config, indent=2))
    return directory


def write_base(lora: LoraSet, path: Path) -> Path:
    """Write the base weights as one safetensors file; return its path."""
    save_file(lora.base, str(path), {"format": "pt"})
    return path


def merged_tensors(lora: LoraSet) -> dict[str, torch.Tensor]:
    """Tuned weights W + s·B·A (what ``merge_and_unload`` gives)."""
    return {name: W + lora.delta(name.removesuffix(".weight")) for name, W in lora.base.items()}


def peft_layout_tensors(lora: LoraSet) -> dict[str, torch.Tensor]:
    """Names as in a wrapped PEFT model: ``<module>.base_layer``, ``<module>.lora_A.default``,
    ``<module>.lora_B.default``."""
    out: dict[str, torch.Tensor] = {}
    for module, (A, B) in lora.factors.items():
        out[f"{module}.base_layer.weight"] = lora.base[module + ".weight"]
        out[f"{module}.lora_A.default.weight"] = A
        out[f"{module}.lora_B.default.weight"] = B
    return out


def _adapter_keys(path: Path) -> set[str]:
    with safe_open(str(path / "adapter_model.safetensors"), "pt") as f:
        return set(f.keys())


def verify_with_peft(lora: LoraSet, adapter_dir: Path) -> dict[str, Any]:
    """Load the adapter with the real ``peft`` into a tiny LlamaForCausalLM of the same shapes.

    Checks: (1) our keys equal the keys ``get_peft_model(...).save_pretrained`` writes;
    (2) ``PeftModel.from_pretrained`` loads the directory, every lora_A/lora_B equals
    the written factor, and PEFT's own ``get_delta_weight`` equals s·B·A; (3) the base
    names are the model's state-dict names.
    """
    import peft
    import transformers

    transformers.logging.set_verbosity_error()
    s = lora.shape
    config = transformers.LlamaConfig(
        hidden_size=s.hidden,
        intermediate_size=s.intermediate,
        num_hidden_layers=s.blocks,
        num_attention_heads=s.heads,
        num_key_value_heads=s.heads,
        vocab_size=32,
    )
    model = transformers.LlamaForCausalLM(config)
    missing_base = sorted(set(lora.base) - set(model.state_dict()))
    lcfg = peft.LoraConfig(r=RANK, lora_alpha=LORA_ALPHA, target_modules=list(TARGETS))
    with tempfile.TemporaryDirectory() as tmp:
        peft.get_peft_model(model, lcfg).save_pretrained(tmp)
        peft_keys = _adapter_keys(Path(tmp))
    model = transformers.LlamaForCausalLM(config)
    loaded = peft.PeftModel.from_pretrained(model, str(adapter_dir))
    max_factor_err, max_delta_rel_err = 0.0, 0.0
    for module, (A, B) in lora.factors.items():
        layer = loaded.base_model.model.get_submodule(module)
        a, b = layer.lora_A["default"].weight, layer.lora_B["default"].weight
        max_factor_err = max(max_factor_err, float((a - A).abs().max()), float((b - B).abs().max()))
        with torch.no_grad():
            d = layer.get_delta_weight("default")
        ref = lora.delta(module)
        max_delta_rel_err = max(max_delta_rel_err, float((d - ref).norm() / ref.norm()))
    ours = _adapter_keys(adapter_dir)
    return {
        "peft_version": peft.__version__,
        "keys_match_save_pretrained": ours == peft_keys,
        "keys_only_ours": sorted(ours - peft_keys),
        "keys_only_peft": sorted(peft_keys - ours),
        "loaded_modules": len(lora.factors),
        "max_factor_abs_err": max_factor_err,
        "max_delta_rel_err": max_delta_rel_err,
        "base_names_missing_in_llama": missing_base,
    }


# --------------------------------------------------------------------------- WeightWatcher


def ww_delta(ww: Any, tuned: torch.nn.Module, base: torch.nn.Module) -> pd.DataFrame:
    """WeightWatcher's delta analysis of tuned − base.

    ``WeightWatcher(model=tuned).analyze(base_model=base)`` would silently analyse the
    TUNED weights: 0.7.7's ``set_model_`` keeps ``base_model`` only when ``model`` is
    passed in the same call. Both go to the constructor here.
    """
    with quiet():
        details: pd.DataFrame = ww.WeightWatcher(model=tuned, base_model=base).analyze()
    return details


def ww_peft(ww: Any, module: torch.nn.Module) -> pd.DataFrame:
    """WeightWatcher's LoRA route on a module in PEFT's layout (see peft_layout_tensors)."""
    with quiet():
        details: pd.DataFrame = ww.WeightWatcher(model=module).analyze(peft=True)
    return details
