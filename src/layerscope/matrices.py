"""A layer's tensor -> the 2-D matrices analysed. Every format quirk lives here.

Treatments (docs/science.md §1; WeightWatcher 0.7.7 ``conv2D_Wmats``/``apply_normalize_Wmats``):

* Linear / Embedding / HF ``Conv1D``: the matrix itself (the spectrum of W and Wᵀ
  is the same, so GPT-2's transposed storage only matters when splitting QKV).
* Conv2d ``(out, in, kh, kw)``: the kh·kw slices ``W[:, :, i, j]`` (out×in) are
  analysed together and their eigenvalues pooled into one ESD; each eigenvalue is
  multiplied by 1/2 (WeightWatcher scales every slice by √(1/2), ``conv2d_norm``).
  Alpha is unaffected; norm metrics match WeightWatcher's. Channels-last kernels
  ``(kh, kw, in, out)`` (Keras/JAX) are detected as WeightWatcher does
  (out + in < kh + kw) and permuted.
* Conv1d ``(out, in, k)`` and Conv3d: like Conv2d with the kernel positions as
  slices (WeightWatcher takes a batched SVD of the 3-D tensor instead, which is
  wrong).
* Depthwise conv ``(out, 1, kh, kw)``: each slice is a single column, so pooling
  is meaningless; the (out × kh·kw) matrix of all filters is analysed instead
  (``depthwise="matrix"``). ``depthwise="slices"`` reproduces WeightWatcher, which pools
  the kh·kw one-column slices: their eigenvalues are the squared column norms, the
  diagonal of the same Gram matrix (docs/metrics.md).
* ``conv2d_fft``: a Conv2d kernel is read as the convolution operator on n×n inputs
  through the FFT of the kernel (``"operator"``, Sedghi et al. 2019) or as
  WeightWatcher 0.7.7 reads it (``"weightwatcher"``); see
  :mod:`layerscope.functional.conv_fft`. Under ``"operator"`` depthwise kernels keep
  their depthwise reading (their operator has 1×1 blocks, no Marchenko-Pastur bulk);
  ``"weightwatcher"`` applies to them as in WeightWatcher.
* Fused attention projections are split into Q, K, V where the layout is known:
  ``nn.MultiheadAttention.in_proj_weight`` and ``Wqkv``/``qkv``/``qkv_proj``
  ((q+k+v) × d, sizes from the config for grouped-query attention), GPT-2
  ``c_attn`` (d × 3d, stored transposed), GPT-NeoX/BLOOM ``query_key_value``
  (interleaved per head; needs ``num_attention_heads`` from the config).
  Otherwise the fused matrix is analysed whole.
* MoE experts stored as one 3-D tensor ``(experts, a, b)``: one matrix per
  expert; fused ``gate_up_proj`` is split into gate and up halves. Other 3-D
  tensors whose last axis is not a small kernel are treated the same way
  (``stacked``).
* 1-D parameters (biases, norms), scalars and integer/bool tensors (buffers such
  as ``position_ids``) are skipped with a reason.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

from layerscope.adapters.base import LayerWeights
from layerscope.functional import conv_fft

CONV2D_EIG_SCALE = 0.5
MIN_EVALS = 8

_EMBED = re.compile(r"(embed|wte\b|wpe\b|\.shared\.|^shared\.|tok_embeddings|word_embeddings)")
_QKV_CONCAT = re.compile(r"(^|\.)(wqkv|qkv|qkv_proj|in_proj)(\.weight|_weight)$", re.IGNORECASE)
_QKV_GPT2 = re.compile(r"(^|\.)c_attn\.weight$")
_QKV_NEOX = re.compile(r"(^|\.)query_key_value\.weight$")
_CONV_TYPES = {"Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d"}
_SMALL_KERNEL = 16

Extract = Callable[[torch.Tensor], torch.Tensor]
Reading = Callable[[NDArray[Any]], NDArray[np.float64]]

CONV2D_FFT_READINGS = ("operator", "weightwatcher")
DEPTHWISE_READINGS = ("matrix", "slices")


@dataclass(frozen=True)
class Readings:
    """How tensors with more than one possible reading become spectra.

    Attributes:
        conv2d_fft: ``None`` (kernel positions as slices), ``"operator"`` or
            ``"weightwatcher"`` (see the module docstring).
        fft_size: input size n of the FFT reading (WeightWatcher: 32).
        depthwise: ``"matrix"`` (out × kh·kw) or ``"slices"`` (WeightWatcher's).
    """

    conv2d_fft: str | None = None
    fft_size: int = conv_fft.DEFAULT_FFT_SIZE
    depthwise: str = "matrix"

    def __post_init__(self) -> None:
        if self.conv2d_fft is not None and self.conv2d_fft not in CONV2D_FFT_READINGS:
            choices = ", ".join(CONV2D_FFT_READINGS)
            raise ValueError(f"conv2d_fft must be None, {choices}; got {self.conv2d_fft!r}")
        if self.fft_size < 1:
            raise ValueError(f"fft_size must be >= 1, got {self.fft_size}")
        if self.depthwise not in DEPTHWISE_READINGS:
            choices = " or ".join(DEPTHWISE_READINGS)
            raise ValueError(f"depthwise must be {choices}, got {self.depthwise!r}")


DEFAULT_READINGS = Readings()


@dataclass(frozen=True)
class MatrixPlan:
    """One analysed unit (one result row), known before any data is read.

    Attributes:
        name: row name: the parameter name, plus ``[q]``/``[k]``/``[v]`` or ``[expert]``
            when the tensor is split.
        param: the source parameter name.
        kind: ``linear``, ``embedding``, ``conv1d``, ``conv2d``, ``conv3d``,
            ``conv2d-depthwise``, ``attention-q``/``-k``/``-v``, ``attention-qkv``
            (fused, layout unknown), ``expert``, ``stacked``.
        N, M: matrix dimensions, N ≥ M.
        num_slices: matrices pooled into one ESD (kernel positions of a conv).
        eig_scale: factor applied to every eigenvalue (conv normalisation).
        extract: full tensor -> (num_slices, rows, cols) float tensor (for a ``reading``,
            whatever that function reads).
        reading: pure function from the extracted array to the eigenvalues (``conv2d_fft``);
            ``None``: the pooled eigenvalues of the slices' Gram matrices.
    """

    name: str
    param: str
    kind: str
    N: int
    M: int
    num_slices: int
    eig_scale: float
    extract: Extract
    reading: Reading | None = None


@dataclass(frozen=True)
class Skipped:
    """A parameter that is not analysed, and why."""

    name: str
    shape: tuple[int, ...]
    reason: str


def _as_batch(t: torch.Tensor) -> torch.Tensor:
    return t.unsqueeze(0) if t.ndim == 2 else t


def _rows(t: torch.Tensor, start: int, stop: int, dim: int) -> torch.Tensor:
    return _as_batch(t.narrow(dim, start, stop - start))


def _conv_slices(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if channels_last:  # (k..., in, out) -> (out, in, k...)
        t = t.permute(t.ndim - 1, t.ndim - 2, *range(t.ndim - 2))
    out, inp = t.shape[0], t.shape[1]
    return t.reshape(out, inp, -1).permute(2, 0, 1)


def _depthwise(t: torch.Tensor) -> torch.Tensor:
    return t.reshape(t.shape[0], -1).unsqueeze(0)


def _expert(t: torch.Tensor, e: int, start: int, stop: int) -> torch.Tensor:
    return t[e, start:stop].unsqueeze(0)


def _neox_part(t: torch.Tensor, heads: int, part: int) -> torch.Tensor:
    hd = t.shape[0] // (3 * heads)
    return t.view(heads, 3, hd, t.shape[1])[:, part].reshape(heads * hd, t.shape[1]).unsqueeze(0)


def _plan(
    layer: LayerWeights, kind: str, shape: tuple[int, int], extract: Extract, suffix: str = ""
) -> MatrixPlan:
    return _plan_slices(layer, kind, shape, 1, 1.0, extract, suffix)


def _plan_slices(
    layer: LayerWeights,
    kind: str,
    shape: tuple[int, int],
    num_slices: int,
    eig_scale: float,
    extract: Extract,
    suffix: str = "",
) -> MatrixPlan:
    N, M = max(shape), min(shape)
    return MatrixPlan(layer.name + suffix, layer.name, kind, N, M, num_slices, eig_scale, extract)


def _qkv_sizes(total: int, cols: int, config: Mapping[str, Any] | None) -> list[int] | None:
    """Row sizes of the Q, K, V blocks of a concatenated (q+k+v) × d projection."""
    if config:
        heads = config.get("num_attention_heads") or config.get("n_head")
        kv = config.get("num_key_value_heads") or heads
        hd = config.get("head_dim") or (cols // heads if heads else None)
        if heads and kv and hd and heads * hd + 2 * kv * hd == total:
            return [heads * hd, kv * hd, kv * hd]
    if total % 3 == 0:
        return [total // 3] * 3
    return None


def _split_qkv(layer: LayerWeights, sizes: list[int], dim: int) -> list[MatrixPlan]:
    plans, start = [], 0
    other = layer.shape[1 - dim]
    for part, size in zip("qkv", sizes, strict=True):
        shape = (size, other) if dim == 0 else (other, size)
        extract = partial(_rows, start=start, stop=start + size, dim=dim)
        plans.append(_plan(layer, f"attention-{part}", shape, extract, f"[{part}]"))
        start += size
    return plans


def _plan_fused_qkv(layer: LayerWeights) -> list[MatrixPlan] | None:
    name, (rows, cols) = layer.name, layer.shape[:2]
    if _QKV_GPT2.search(name) and layer.module_type in (None, "Conv1D") and cols == 3 * rows:
        return _split_qkv(layer, [rows] * 3, dim=1)
    if _QKV_NEOX.search(name):
        heads = (layer.config or {}).get("num_attention_heads") or (layer.config or {}).get(
            "n_head"
        )
        model_type = (layer.config or {}).get("model_type", "")
        if heads and rows % (3 * heads) == 0 and model_type != "falcon":
            return [
                _plan(
                    layer,
                    f"attention-{p}",
                    (rows // 3, cols),
                    partial(_neox_part, heads=heads, part=i),
                    f"[{p}]",
                )
                for i, p in enumerate("qkv")
            ]
        return [_plan(layer, "attention-qkv", (rows, cols), _as_batch)]
    if _QKV_CONCAT.search(name):
        sizes = _qkv_sizes(rows, cols, layer.config)
        if sizes is not None:
            return _split_qkv(layer, sizes, dim=0)
        return [_plan(layer, "attention-qkv", (rows, cols), _as_batch)]
    return None


def _plan_2d(layer: LayerWeights) -> list[MatrixPlan]:
    fused = _plan_fused_qkv(layer)
    if fused is not None:
        return fused
    shape = (layer.shape[0], layer.shape[1])
    is_embedding = layer.module_type == "Embedding" or (
        layer.module_type is None and _EMBED.search(layer.name.lower()) is not None
    )
    return [_plan(layer, "embedding" if is_embedding else "linear", shape, _as_batch)]


def _plan_experts(layer: LayerWeights, kind: str) -> list[MatrixPlan]:
    E, a, b = layer.shape
    halves = [("gate", 0, a // 2), ("up", a // 2, a)] if "gate_up" in layer.name else [("", 0, a)]
    plans = []
    for e in range(E):
        for part, start, stop in halves:
            tag = f"[{e}{'.' + part if part else ''}]"
            extract = partial(_expert, e=e, start=start, stop=stop)
            plans.append(_plan(layer, kind, (stop - start, b), extract, tag))
    return plans


def _conv_kernel(t: torch.Tensor, channels_last: bool) -> torch.Tensor:
    """The kernel as (1, out, in, kh, kw): one "slice", so shuffles permute all of it."""
    if channels_last:  # (kh, kw, in, out) -> (out, in, kh, kw)
        t = t.permute(3, 2, 0, 1)
    return t.unsqueeze(0)


_FFT_READINGS: dict[str, Callable[[NDArray[Any], int], NDArray[np.float64]]] = {
    "operator": conv_fft.operator_eigenvalues,
    "weightwatcher": conv_fft.weightwatcher_eigenvalues,
}


def _fft_reading(kernel: NDArray[Any], method: str, n: int) -> NDArray[np.float64]:
    return _FFT_READINGS[method](kernel[0], n)


def _plan_fft(
    layer: LayerWeights, out: int, inp: int, channels_last: bool, readings: Readings
) -> MatrixPlan:
    """A Conv2d kernel read through its FFT (``readings.conv2d_fft``)."""
    method, n = readings.conv2d_fft or "operator", readings.fft_size
    # pooled matrices: the n² frequency matrices (operator) or the out·in n×n grids (WW)
    slices = n * n if method == "operator" else out * inp
    kind = "conv2d-depthwise-fft" if inp == 1 else "conv2d-fft"
    extract = partial(_conv_kernel, channels_last=channels_last)
    plan = _plan_slices(layer, kind, (out, inp), slices, 1.0, extract)
    return dataclasses.replace(plan, reading=partial(_fft_reading, method=method, n=n))


def _plan_conv(layer: LayerWeights, readings: Readings) -> list[MatrixPlan]:
    shape = layer.shape
    channels_last = layer.module_type is None and shape[0] + shape[1] < shape[-2] + shape[-1]
    out, inp = (shape[-1], shape[-2]) if channels_last else (shape[0], shape[1])
    positions = 1
    for k in shape[:-2] if channels_last else shape[2:]:
        positions *= k
    kind = {3: "conv1d", 4: "conv2d"}.get(len(shape), "conv3d")
    extract = partial(_conv_slices, channels_last=channels_last)
    depthwise = inp == 1 and not channels_last and positions > 1
    # The operator of a depthwise conv has 1×1 blocks |K̂_c(u, v)|²: no Marchenko-Pastur
    # bulk, so spikes and traps would be spurious; it keeps its depthwise reading.
    fft = readings.conv2d_fft is not None and (
        readings.conv2d_fft == "weightwatcher" or not depthwise
    )
    if kind == "conv2d" and fft:
        return [_plan_fft(layer, out, inp, channels_last, readings)]
    if depthwise:
        if readings.depthwise == "slices":  # WeightWatcher: kh·kw one-column matrices
            return [
                _plan_slices(
                    layer, f"{kind}-depthwise", (out, 1), positions, CONV2D_EIG_SCALE, extract
                )
            ]
        return [_plan(layer, f"{kind}-depthwise", (out, positions), _depthwise)]
    return [_plan_slices(layer, kind, (out, inp), positions, CONV2D_EIG_SCALE, extract)]


def _is_conv_3d(layer: LayerWeights) -> bool:
    if layer.module_type is not None:
        return layer.module_type in _CONV_TYPES
    k = layer.shape[2]
    return k <= _SMALL_KERNEL and k < min(layer.shape[0], layer.shape[1])


def plan_matrices(
    layer: LayerWeights, readings: Readings = DEFAULT_READINGS
) -> list[MatrixPlan] | Skipped:
    """Decide, from name, shape and module type only, which matrices a tensor yields.

    ``readings`` chooses among the readings of conv kernels (:class:`Readings`).
    """
    ndim = len(layer.shape)
    if layer.tied_to is not None:
        return Skipped(layer.name, layer.shape, f"tied to {layer.tied_to} (same storage)")
    if not layer.dtype.startswith(("float", "bfloat", "complex")):
        reason = f"{layer.dtype} tensor (buffer or index, not weights)"
        return Skipped(layer.name, layer.shape, reason)
    if ndim <= 1:
        what = "scalar" if ndim == 0 else "1-D parameter (bias or norm)"
        return Skipped(layer.name, layer.shape, what)
    if ndim == 2:
        return _plan_2d(layer)
    if ndim == 3 and "expert" in layer.name.lower():
        return _plan_experts(layer, "expert")
    if ndim == 3 and not _is_conv_3d(layer):
        return _plan_experts(layer, "stacked")
    if ndim in (3, 4, 5):
        return _plan_conv(layer, readings)
    return Skipped(layer.name, layer.shape, f"{ndim}-D tensor of unknown layout")
