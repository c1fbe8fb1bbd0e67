"""Block quantizers as GGUF stores weights, and the size of the noise they add.

GGUF (llama.cpp's file format) quantizes each row of a weight matrix in blocks of 32
consecutive entries along the input dimension (the last axis of a PyTorch ``(out, in)``
weight). Two families:

* symmetric (``Q8_0``, ``Q5_0``, ``Q4_0``): one fp16 scale d per block, x ≈ d·q with
  integer q; ``Q8_0``: d = max|x|/127, q = round(x/d) ∈ [−127, 127];
* asymmetric (``Q5_1``, ``Q4_1``): scale d and minimum m per block (both fp16),
  d = (max − min)/(2^k − 1), q = ⌊(x − min)/d + ½⌋ ∈ [0, 2^k − 1], x ≈ d·q + m.

The gguf package's own numpy code (``gguf.quants.quantize``/``dequantize``, the reference
implementation of ggml-quants.c in Python) is used for every type it implements a
quantizer for; :func:`kbit` extends the asymmetric ``Q4_1`` recipe to any k (3 and 2 bits
have no ggml type of this simple form: ``Q3_K``/``Q2_K`` are super-block formats that
gguf 0.19 can only dequantize).

Rounding to a grid of step Δ leaves an error that is close to uniform on [−Δ/2, Δ/2] when
Δ is small against the spread of the block (Widrow & Kollár, *Quantization Noise*,
Cambridge University Press 2008, ch. 4): variance Δ²/12 per entry.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

BLOCK = 32
Array = NDArray[np.float32]

# gguf 0.19 implements quantize_blocks for these (and BF16, TQ*, MXFP4); the K- and
# IQ-types are dequantize-only there.
GGUF_TYPES = ("Q8_0", "Q5_1", "Q5_0", "Q4_1", "Q4_0")
# symmetric types: the largest |q| (d = max|x| / QMAX; Q4_0/Q5_0 divide by −8/−16)
_SYMMETRIC_QMAX = {"Q8_0": 127, "Q5_0": 16, "Q4_0": 8}
_ASYMMETRIC_BITS = {"Q5_1": 5, "Q4_1": 4}


def _check(w: NDArray[np.floating], what: str) -> Array:
    x = np.asarray(w, dtype=np.float32)
    if x.ndim != 2 or x.shape[1] % BLOCK:
        raise ValueError(f"{what}: need a 2-D weight whose last axis is a multiple of {BLOCK}")
    return x


def gguf_roundtrip(w: NDArray[np.floating], qtype: str) -> Array:
    """``w`` quantized to the GGUF type ``qtype`` and dequantized, by the gguf package."""
    from gguf import GGMLQuantizationType
    from gguf.quants import dequantize, quantize

    if qtype not in GGUF_TYPES:
        raise ValueError(f"unknown GGUF type {qtype!r}; choose from {', '.join(GGUF_TYPES)}")
    t = GGMLQuantizationType[qtype]
    x = _check(w, qtype)
    return np.asarray(dequantize(quantize(x, t), t), dtype=np.float32).reshape(x.shape)


def kbit(w: NDArray[np.floating], bits: int) -> Array:
    """k-bit block-32 asymmetric quantization, dequantized: ``Q4_1``'s recipe at any k.

    Per block of 32 entries: d = (max − min)/(2^k − 1), q = clip(⌊(x − min)/d + ½⌋, 0,
    2^k − 1), x̂ = fp16(d)·q + fp16(min) — the codes use the float32 d (as ggml does),
    the stored scale and minimum are rounded to fp16. At k = 4 this is ggml's Q4_1.
    """
    if not 1 <= bits <= 8:
        raise ValueError(f"bits must be in 1..8, got {bits}")
    x = _check(w, f"{bits}-bit")
    blocks = x.reshape(-1, BLOCK)
    lo = blocks.min(axis=1, keepdims=True)
    d = (blocks.max(axis=1, keepdims=True) - lo) / np.float32(2**bits - 1)
    with np.errstate(divide="ignore"):
        inv = np.where(d == 0, np.float32(0), np.float32(1) / d)
    q = np.clip(np.trunc((blocks - lo) * inv + np.float32(0.5)), 0, 2**bits - 1)
    d16 = d.astype(np.float16).astype(np.float32)
    lo16 = lo.astype(np.float16).astype(np.float32)
    return np.asarray((d16 * q + lo16).reshape(x.shape), dtype=np.float32)


def block_steps(w: NDArray[np.floating], scheme: str) -> NDArray[np.float64]:
    """The grid step Δ of every block of ``w`` under ``scheme`` (a GGUF type or ``"Nbit"``).

    Asymmetric: Δ = (max − min)/(2^k − 1); symmetric: Δ = max|x|/QMAX.
    """
    blocks = _check(w, scheme).reshape(-1, BLOCK).astype(np.float64)
    if scheme in _SYMMETRIC_QMAX:
        steps = np.abs(blocks).max(axis=1) / _SYMMETRIC_QMAX[scheme]
    else:
        bits = _ASYMMETRIC_BITS.get(scheme) or _bits_of(scheme)
        steps = (blocks.max(axis=1) - blocks.min(axis=1)) / (2**bits - 1)
    return np.asarray(steps, dtype=np.float64)


def _bits_of(scheme: str) -> int:
    if not (scheme.endswith("bit") and scheme[:-3].isdigit()):
        raise ValueError(f"unknown scheme {scheme!r}: a GGUF type or 'Nbit' (e.g. '3bit')")
    return int(scheme[:-3])


def predicted_noise_var(w: NDArray[np.floating], scheme: str) -> float:
    """Per-entry variance of the rounding error, mean over blocks of Δ²/12."""
    return float(np.mean(block_steps(w, scheme) ** 2) / 12.0)


def quantizer(scheme: str) -> Callable[[NDArray[np.floating]], Array]:
    """The round trip for ``scheme``: a GGUF type through gguf, ``"Nbit"`` through kbit."""
    if scheme in GGUF_TYPES:
        return lambda w: gguf_roundtrip(w, scheme)
    bits = _bits_of(scheme)
    return lambda w: kbit(w, bits)


def mp_noise_edge(var: float, n: int, m: int) -> float:
    """Top edge of the eigenvalues of EᵀE for an n×m noise matrix E with i.i.d. entries of
    variance ``var``: λ+ = var·(√n + √m)² = var·N·(1 + 1/√Q)² with N = max(n, m),
    Q = N/min(n, m) (Marchenko & Pastur 1967), on the scale of our ESD (σ² of W, no 1/N)."""
    return float(var * (np.sqrt(n) + np.sqrt(m)) ** 2)


def spike_shift(
    lam: NDArray[np.floating] | float, var: float, n: int, m: int
) -> NDArray[np.float64]:
    """Where an eigenvalue λ = θ² of a signal matrix moves when i.i.d. noise of variance
    ``var`` is added to its n×m entries: λ' = λ + var·(n + m) + var²·n·m/λ, valid above the
    detection threshold λ > var·√(nm) (Benaych-Georges & Nadakuditi, J. Multivariate Anal.
    2012, arXiv 1103.2221, rectangular additive perturbation; the large-n limit)."""
    lam = np.asarray(lam, dtype=np.float64)
    return np.asarray(lam + var * (n + m) + var**2 * n * m / lam, dtype=np.float64)
