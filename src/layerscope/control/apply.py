"""Read a model file, prune it, write it back in the same format (atomically).

Formats: a Hugging Face model directory (``config.json``: loaded with ``transformers``,
written with ``save_pretrained`` next to copies of the other files — tokenizer, sentence-
transformers modules — so the result loads like the input); a ``.safetensors`` file; a
``torch.save`` state dict (``.pt``/``.pth``/``.bin``). Wanda needs to run the model, so it
is available for Hugging Face directories and for ``nn.Module`` objects (the Python API).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from layerscope.control import prune as pruning
from layerscope.results import atomic_write

STATE_DICT_SUFFIXES = (".pt", ".pth", ".bin")
_WEIGHT_FILES = (".safetensors", ".bin", ".pt", ".pth", ".index.json")


def load_hf(directory: Path) -> torch.nn.Module:
    """The model class named in ``config.json`` (``architectures[0]``), else ``AutoModel``."""
    try:
        import transformers
    except ImportError as exc:
        hint = "pip install 'layerscope[control]'"
        raise ValueError(
            f"{directory}: pruning a Hugging Face model needs transformers ({hint})"
        ) from exc

    config = json.loads((directory / "config.json").read_text())
    arch = (config.get("architectures") or [None])[0]
    cls = getattr(transformers, arch, None) if arch else None
    model_cls: Any = cls if cls is not None else transformers.AutoModel
    model: torch.nn.Module = model_cls.from_pretrained(directory)
    return model


def write_dir(out: Path, fill: Any) -> None:
    """Build a directory in a temp sibling, then rename it to ``out`` (which must not exist)."""
    if out.exists():
        raise ValueError(f"{out}: already exists; remove it or choose another output")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        fill(tmp)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def copy_non_weights(src: Path, dst: Path) -> None:
    """Copy everything of a model directory but its weights and config (tokenizer files,
    sentence-transformers modules...) into ``dst``."""
    for entry in src.iterdir():
        if entry.name == "config.json" or entry.name.endswith(_WEIGHT_FILES):
            continue
        if entry.is_dir():
            shutil.copytree(entry, dst / entry.name)
        else:
            shutil.copy2(entry, dst / entry.name)


def prune_hf_dir(
    src: Path,
    out: Path,
    sparsities: Mapping[str, float],
    method: str,
    calibration: Iterable[Any] | None,
    sequential: bool | str = False,
) -> dict[str, float]:
    """Prune a Hugging Face directory into ``out`` (a new directory)."""
    if out.exists():  # checked again on rename; fail before the slow load
        raise ValueError(f"{out}: already exists; remove it or choose another output")
    model = load_hf(src)
    achieved = pruning.prune_module(model, sparsities, method, calibration, sequential=sequential)

    def fill(tmp: Path) -> None:
        copy_non_weights(src, tmp)
        model.save_pretrained(tmp)  # type: ignore[operator]

    write_dir(out, fill)
    return achieved


def prune_file(src: Path, out: Path, sparsities: Mapping[str, float]) -> dict[str, float]:
    """Magnitude-prune a ``.safetensors`` or ``torch.save`` state-dict file into ``out``."""
    if src.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file, save

        with safe_open(str(src), framework="pt") as handle:
            metadata = handle.metadata()
        state = load_file(str(src))
        achieved = pruning.prune_state_dict(state, sparsities)
        data = save(state, metadata=metadata)
        atomic_write(out, lambda f: f.write(data))
        return achieved
    if src.suffix in STATE_DICT_SUFFIXES:
        loaded = torch.load(src, map_location="cpu", weights_only=True)
        if not isinstance(loaded, dict) or not all(
            isinstance(v, torch.Tensor) for v in loaded.values()
        ):
            raise ValueError(f"{src}: expected a state dict (names -> tensors)")
        achieved = pruning.prune_state_dict(loaded, sparsities)
        atomic_write(out, lambda f: torch.save(loaded, f))
        return achieved
    raise ValueError(f"{src}: cannot prune this format (HF directory, .safetensors, .pt/.bin)")


def text_calibration(
    directory: Path, text: str, nsamples: int, seqlen: int, seed: int
) -> list[dict[str, torch.Tensor]]:
    """``nsamples`` random windows of ``seqlen`` tokens of ``text`` (the model's tokenizer),
    as batches of one: {input_ids, attention_mask}."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(directory)
    ids = tokenizer(text, add_special_tokens=False, return_tensors="pt")["input_ids"][0]
    if ids.numel() <= seqlen:
        raise ValueError(f"calibration text has {ids.numel()} tokens, need more than {seqlen}")
    rng = np.random.default_rng(seed)
    starts = rng.integers(0, ids.numel() - seqlen, size=nsamples)
    windows = [ids[s : s + seqlen][None] for s in starts]
    return [{"input_ids": w, "attention_mask": torch.ones_like(w)} for w in windows]


def prune(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    plan: Any = None,
    sparsity: float | None = None,
    method: str = "magnitude",
    calibration: Iterable[Any] | None = None,
    mapping: str = "block",
    sequential: bool | str = False,
) -> dict[str, float]:
    """Prune a model file or directory by a plan or a uniform sparsity, into ``out``.

    Args:
        source: Hugging Face directory, ``.safetensors`` file or ``torch.save`` state dict.
        out: output directory (for a Hugging Face input; must not exist) or file.
        plan: a :class:`~layerscope.control.plan.PrunePlan`, a path to its JSON, or a
            mapping parameter name -> sparsity.
        sparsity: uniform sparsity instead of a plan: the plan with ε = 0 (the same
            layers as an alpha plan, each at ``sparsity``).
        method: ``magnitude`` or ``wanda`` (Hugging Face directories only).
        calibration: Wanda's batches (see :func:`layerscope.control.prune.default_forward`).
        mapping: which layers a uniform plan covers (``block``: the repeated blocks).
        sequential: Wanda one-shot (False), ``"block"``/True or ``"layer"`` (see
            :func:`layerscope.control.prune.prune_module`).

    Returns:
        The achieved sparsity of each pruned parameter.
    """
    from layerscope.control.plan import PrunePlan, prune_plan

    if (plan is None) == (sparsity is None):
        raise ValueError("give either a plan or a uniform sparsity")
    src, dst = Path(source), Path(out)
    if sparsity is not None:
        sparsities: Mapping[str, float] = prune_plan(
            str(src), sparsity=sparsity, eps=0.0, mapping=mapping
        ).layers
    elif isinstance(plan, PrunePlan):
        sparsities = plan.layers
    elif isinstance(plan, str | os.PathLike):
        sparsities = PrunePlan.from_json(plan).layers
    else:
        sparsities = dict(plan)
    if src.is_dir() and (src / "config.json").is_file():
        return prune_hf_dir(src, dst, sparsities, method, calibration, sequential)
    if method != "magnitude":
        raise ValueError(f"{src}: {method} needs to run the model: give a Hugging Face directory")
    if src.is_dir():
        raise ValueError(f"{src}: a directory without config.json; give a weights file")
    return prune_file(src, dst, sparsities)
