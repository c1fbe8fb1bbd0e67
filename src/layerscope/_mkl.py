"""Two MKL entry points that torch's CPU library carries but torch does not expose.

torch links Intel MKL statically into ``libtorch_cpu.so`` on x86 Linux. We call two of
its symbols through ctypes, each behind a fallback, so a torch built without MKL (macOS,
ARM, a future release that hides the symbols) runs the plain torch path:

* ``mkl_set_num_threads_local`` — the thread-local thread count (see
  :func:`layerscope.spectrum` for why the eigensolver runs on one thread).
* ``mkl_blas_dsyrk`` / ``mkl_blas_ssyrk`` — the BLAS symmetric rank-k update
  C ← α·AᵀA + β·C. The Gram matrix WᵀW is symmetric, and syrk computes only one
  triangle: half the flops of the general product ``W.mT @ W`` (measured 1.8–1.9x
  faster on 1024²–11008×4096, float32 and float64, one thread). Its result is checked
  against ``torch.matmul`` on a small matrix the first time it is used; a mismatch
  disables it for the process.
"""

from __future__ import annotations

import ctypes
import functools
from collections.abc import Callable
from pathlib import Path

import torch

_SCALARS = {torch.float64: ctypes.c_double, torch.float32: ctypes.c_float}


@functools.cache
def _library() -> ctypes.CDLL | None:
    try:
        return ctypes.CDLL(str(Path(torch.__file__).parent / "lib" / "libtorch_cpu.so"))
    except OSError:  # not Linux, or no such library in this torch build
        return None


@functools.cache
def local_threads() -> Callable[[int], int] | None:
    """MKL's ``mkl_set_num_threads_local`` (returns the previous value), when exported."""
    lib = _library()
    setter = getattr(lib, "mkl_set_num_threads_local", None) if lib is not None else None
    if setter is None:
        return None
    setter.restype = ctypes.c_int

    def set_local(n: int) -> int:
        # The exported symbol takes its argument by reference (Fortran convention).
        return int(setter(ctypes.byref(ctypes.c_int(n))))

    return set_local


def _raw_syrk(dtype: torch.dtype) -> Callable[..., None] | None:
    lib = _library()
    name = {torch.float64: "mkl_blas_dsyrk", torch.float32: "mkl_blas_ssyrk"}.get(dtype)
    fn = getattr(lib, name, None) if lib is not None and name is not None else None
    if fn is not None:
        fn.restype = None
    return fn


def _call(fn: Callable[..., None], C: torch.Tensor, A: torch.Tensor, beta: float) -> bool:
    """C(upper) ← AᵀA + β·C(upper) for a 2-D A with unit stride along one axis.

    In Fortran's column-major view a row-major (k, n) block with unit column stride is
    the n×k matrix Aᵀ (``trans='N'``), one with unit row stride is the k×n matrix A
    (``trans='T'``); the row-major upper triangle of C is the Fortran lower triangle.
    Returns False when A has neither layout (the caller copies it).
    """
    k, n = A.shape
    if A.stride(1) == 1 and A.stride(0) >= max(1, n):
        trans, lda = b"N", A.stride(0)
    elif A.stride(0) == 1 and A.stride(1) >= max(1, k):
        trans, lda = b"T", A.stride(1)
    else:
        return False
    scalar = _SCALARS[A.dtype]
    fn(
        ctypes.c_char_p(b"L"),
        ctypes.c_char_p(trans),
        ctypes.byref(ctypes.c_int(n)),
        ctypes.byref(ctypes.c_int(k)),
        ctypes.byref(scalar(1.0)),
        ctypes.c_void_p(A.data_ptr()),
        ctypes.byref(ctypes.c_int(lda)),
        ctypes.byref(scalar(beta)),
        ctypes.c_void_p(C.data_ptr()),
        ctypes.byref(ctypes.c_int(n)),
    )
    return True


@functools.cache
def _checked_syrk(dtype: torch.dtype) -> Callable[..., None] | None:
    """The raw routine, only if it reproduces ``torch.matmul`` on a small case (both layouts)."""
    fn = _raw_syrk(dtype)
    if fn is None:
        return None
    A = torch.randn(13, 7, dtype=dtype, generator=torch.Generator().manual_seed(0))
    want = (A.mT @ A).triu()
    for view in (A, A.mT.contiguous().mT):
        C = torch.zeros(7, 7, dtype=dtype)
        if not _call(fn, C, view, 0.0) or not torch.allclose(C.triu(), want):
            return None
    return fn


def syrk_upper(C: torch.Tensor, A: torch.Tensor, beta: float) -> bool:
    """C ← AᵀA + β·C on C's upper triangle, in place, via MKL; False if unavailable.

    A is a 2-D CPU tensor of C's dtype (float32/float64); C a contiguous square CPU
    tensor. The strictly lower triangle of C is unspecified afterwards (MKL writes
    scratch into parts of it). Needs a unit stride
    along one axis of A (a row block of W or of its transpose) or copies A first.
    """
    if A.device.type != "cpu" or C.device.type != "cpu" or A.dtype != C.dtype:
        return False
    if A.dtype not in _SCALARS or not C.is_contiguous():
        return False
    fn = _checked_syrk(A.dtype)
    return fn is not None and (_call(fn, C, A, beta) or _call(fn, C, A.contiguous(), beta))
