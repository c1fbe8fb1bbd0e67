"""SVD smoothing and sharpening of a model (WeightWatcher 0.7.7 ``SVDSmoothing`` /
``SVDSharpness``): each layer's spectrum truncated by a rule read from a layerscope scan.

Rules (the rank k is read from the scan column; a conv layer's slices keep ⌈k / r⌉ each):

* ``method="smooth"`` keeps the k largest singular components, W_k = Σ_{i≤k} s_i u_i v_iᵀ:

  - ``rule="detx"`` (WeightWatcher's default ``method=DETX``): k = ``detX_num``, the ERG tail;
  - ``rule="pl"`` (``method=LAMBDA_MIN``): k = ``num_pl_spikes``, the power-law tail λ ≥ xmin;
  - ``rule="mp"`` (``method=RMT``): k = ``num_spikes``, the eigenvalues above the MP edge;
  - ``rule="percent"`` (``method=SVD``): k = ⌊percent · M · r⌋;
  - ``rule="auto"`` (``method=AUTO``): the ``mp`` rule where alpha > 6, else ``detx``.

  A layer whose rule gives k = 0 is left unchanged, as in WeightWatcher.
* ``method="sharpen"`` removes the k = ``num_traps`` largest components (the correlation traps
  of the shuffled matrix), W − W_k.

Smoothed: linear, embedding and conv (1-D/2-D/3-D, channels first) weights whose scan row is
``ok`` and covers the whole parameter. Not smoothed: biases, depthwise convs, fused QKV
tensors that the scan splits into q/k/v (WeightWatcher smooths the fused matrix).
The pure functions: :mod:`layerscope.functional.smoothing`. Docs: docs/control.md.
"""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from layerscope.adapters.base import clean_name
from layerscope.control import apply
from layerscope.functional import smoothing
from layerscope.results import atomic_write
from layerscope.scan import scan

METHODS = ("smooth", "sharpen")
# rule -> scan metric groups it reads (powerlaw always runs: the row's verdict needs alpha)
RULES: dict[str, tuple[str, ...]] = {
    "detx": ("erg",),
    "pl": (),
    "mp": ("mp",),
    "percent": (),
    "auto": ("mp", "erg"),
}
AUTO_ALPHA = 6.0  # WeightWatcher's method="auto": alpha above this -> the MP rule
KINDS = ("linear", "embedding", "conv1d", "conv2d", "conv3d")


def _check(method: str, rule: str, percent: float) -> None:
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose from {', '.join(METHODS)}")
    if method == "smooth" and rule not in RULES:
        raise ValueError(f"unknown rule {rule!r}; choose from {', '.join(RULES)}")
    if not 0.0 < percent <= 1.0:
        raise ValueError(f"percent must be in (0, 1], got {percent}")


def plan_ranks(
    source: Any,
    method: str = "smooth",
    rule: str = "detx",
    percent: float = 0.8,
    **options: Any,
) -> dict[str, tuple[int, int]]:
    """Scan ``source`` and return parameter -> (pooled rank k, number of slices r).

    Args:
        source: anything :func:`layerscope.scan` reads (module, state dict, file, directory).
        method: ``smooth`` or ``sharpen``.
        rule: the smoothing rule (``detx``, ``pl``, ``mp``, ``percent``, ``auto``); ignored
            by sharpen.
        percent: fraction kept by ``rule="percent"``.
        **options: scan options (``include``, ``exclude``, ``kinds``, ``min_size``, ``seed``,
            ``device``...); ``metrics`` is set from the rule.

    Returns:
        The selected parameters with their k (0 = unchanged) and r.
    """
    _check(method, rule, percent)
    groups = ("traps",) if method == "sharpen" else RULES[rule]
    layers = scan(source, **{**options, "metrics": ("powerlaw", *groups)}).layers
    ok = layers[(layers["status"] == "ok") & layers["kind"].isin(KINDS)]
    ok = ok[ok["name"] == ok["param"]]
    rows: list[Any] = list(ok.itertuples())
    key = "traps" if method == "sharpen" else rule
    return {str(r.param): (_rank(r, key, percent), int(r.num_slices)) for r in rows}


def _rank(row: Any, rule: str, percent: float) -> int:
    if rule == "percent":
        return smoothing.percent_rank(percent, int(row.M), int(row.num_slices))
    if rule == "auto":
        rule = "mp" if row.alpha > AUTO_ALPHA else "detx"
    column = {"detx": "detX_num", "pl": "num_pl_spikes", "mp": "num_spikes"}.get(rule, "num_traps")
    value = getattr(row, column)
    return int(value) if pd.notna(value) else 0


def _slices(t: torch.Tensor) -> torch.Tensor:
    """(r, out, in) view of a dense (r = 1) or channels-first conv weight."""
    if t.ndim == 2:
        return t.unsqueeze(0)
    return t.reshape(t.shape[0], t.shape[1], -1).permute(2, 0, 1)


def apply_ranks(
    state: Mapping[str, torch.Tensor], ranks: Mapping[str, tuple[int, int]], method: str
) -> dict[str, int]:
    """Smooth or sharpen the tensors of ``state`` in place.

    Args:
        state: parameter name -> tensor (written in place, dtype kept).
        ranks: parameter -> (pooled k, slices r), from :func:`plan_ranks`.
        method: ``smooth`` (keep the top ⌈k/r⌉ per slice) or ``sharpen`` (remove them).

    Returns:
        parameter -> per-slice rank kept (smooth) or removed (sharpen), for changed tensors.
    """
    done = {}
    for name, (k, r) in ranks.items():
        if k <= 0:
            continue
        t = state[name]
        slices = _slices(t)
        if slices.shape[0] != r:  # the scan read it channels-last (k..., in, out)
            raise ValueError(
                f"{name}: channels-last conv weight {tuple(t.shape)} is not supported; "
                "leave it out with --exclude"
            )
        k_slice = min(smoothing.per_slice_rank(k, r), *slices.shape[1:])
        W = slices.detach().to(device="cpu", dtype=torch.float64).numpy()
        new = (
            smoothing.keep_top(W, k_slice) if method == "smooth" else smoothing.drop_top(W, k_slice)
        )
        with torch.no_grad():
            shaped = torch.from_numpy(new).to(t.dtype).permute(1, 2, 0).reshape(t.shape)
            t.copy_(shaped)
        done[name] = k_slice
    return done


def smooth_module(
    model: torch.nn.Module,
    method: str = "smooth",
    rule: str = "detx",
    percent: float = 0.8,
    **options: Any,
) -> torch.nn.Module:
    """A copy of ``model`` with each selected layer smoothed or sharpened.

    Args:
        model: the module (left unchanged).
        method: ``smooth`` (keep the top k components) or ``sharpen`` (remove the k traps).
        rule: ``detx`` (default, as WeightWatcher), ``pl``, ``mp`` or ``percent``.
        percent: fraction of components kept by ``rule="percent"``.
        **options: scan options (``include``, ``exclude``, ``kinds``, ``min_size``, ``seed``...).

    Returns:
        The modified copy.
    """
    out = copy.deepcopy(model)
    _smooth_in_place(out, method, rule, percent, options)
    return out


def _smooth_in_place(
    model: torch.nn.Module, method: str, rule: str, percent: float, options: dict[str, Any]
) -> dict[str, int]:
    ranks = plan_ranks(model, method, rule, percent, **options)
    state = {clean_name(n): p.data for n, p in model.named_parameters()}
    return apply_ranks(state, ranks, method)


def smooth(
    source: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    method: str = "smooth",
    rule: str = "detx",
    percent: float = 0.8,
    **options: Any,
) -> dict[str, int]:
    """Smooth or sharpen a model file or directory into ``out``, in the input's format.

    Args:
        source: Hugging Face directory (written with ``save_pretrained`` next to copies of
            its other files), ``.safetensors`` file or ``torch.save`` state dict.
        out: output directory (Hugging Face input; must not exist) or file.
        method: ``smooth`` or ``sharpen``.
        rule: ``detx``, ``pl``, ``mp`` or ``percent`` (smooth only).
        percent: fraction kept by ``rule="percent"``.
        **options: scan options (``include``, ``exclude``, ``min_size``, ``seed``...).

    Returns:
        parameter -> per-slice rank kept (smooth) or removed (sharpen), for changed tensors.
    """
    _check(method, rule, percent)
    src, dst = Path(source), Path(out)
    if src.is_dir() and (src / "config.json").is_file():
        if dst.exists():  # checked again on rename; fail before the slow load
            raise ValueError(f"{dst}: already exists; remove it or choose another output")
        model = apply.load_hf(src)
        done = _smooth_in_place(model, method, rule, percent, dict(options))

        def fill(tmp: Path) -> None:
            apply.copy_non_weights(src, tmp)
            model.save_pretrained(tmp)  # type: ignore[operator]

        apply.write_dir(dst, fill)
        return done
    if src.is_dir():
        raise ValueError(f"{src}: a directory without config.json; give a weights file")
    return _smooth_file(src, dst, method, rule, percent, options)


def _apply_to_state(
    state: dict[str, torch.Tensor], method: str, rule: str, percent: float, options: dict[str, Any]
) -> dict[str, int]:
    ranks = plan_ranks(state, method, rule, percent, **options)
    # the scan names tensors with adapters.base.clean_name; the tensors are the same objects
    return apply_ranks({clean_name(k): v for k, v in state.items()}, ranks, method)


def _smooth_file(
    src: Path, dst: Path, method: str, rule: str, percent: float, options: dict[str, Any]
) -> dict[str, int]:
    if src.suffix == ".safetensors":
        from safetensors import safe_open
        from safetensors.torch import load_file, save

        with safe_open(str(src), framework="pt") as handle:
            metadata = handle.metadata()
        state = load_file(str(src))
        done = _apply_to_state(state, method, rule, percent, options)
        data = save(state, metadata=metadata)
        atomic_write(dst, lambda f: f.write(data))
        return done
    if src.suffix in apply.STATE_DICT_SUFFIXES:
        loaded = torch.load(src, map_location="cpu", weights_only=True)
        if not isinstance(loaded, dict) or not all(
            isinstance(v, torch.Tensor) for v in loaded.values()
        ):
            raise ValueError(f"{src}: expected a state dict (names -> tensors)")
        done = _apply_to_state(loaded, method, rule, percent, options)
        atomic_write(dst, lambda f: torch.save(loaded, f))
        return done
    raise ValueError(f"{src}: cannot smooth this format (HF directory, .safetensors, .pt/.bin)")


__all__ = ["METHODS", "RULES", "apply_ranks", "plan_ranks", "smooth", "smooth_module"]
