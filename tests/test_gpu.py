"""GPU code paths: same eigenvalues and scan results on CUDA as on the CPU (skip without GPU)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import layerscope
from layerscope.spectrum import eigenvalues

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


def test_eigenvalues_cuda_match_cpu() -> None:
    w = torch.randn(3, 300, 120, dtype=torch.float32)
    cpu = eigenvalues(w)
    gpu = eigenvalues(w, device=torch.device("cuda"))
    np.testing.assert_allclose(gpu, cpu, rtol=1e-9, atol=1e-9 * cpu.max())


def test_scan_cuda_matches_cpu() -> None:
    sd = {"a.weight": torch.randn(256, 128), "b.weight": torch.randn(128, 64)}
    cpu = layerscope.scan(sd, device="cpu", metrics="all", precision="float64").layers
    gpu = layerscope.scan(sd, device="cuda", metrics="all", precision="float64").layers
    np.testing.assert_allclose(gpu["alpha"], cpu["alpha"], rtol=1e-8)
    assert gpu["num_traps"].tolist() == cpu["num_traps"].tolist()


def test_scan_cuda_default_precision_within_float32_roundoff() -> None:
    # precision="auto" solves tall matrices in float32: cuSOLVER and LAPACK then differ by
    # float32 round-off (~1e-6 relative in λ, seen 6.6e-6 in alpha on an H200)
    sd = {"a.weight": torch.randn(256, 128), "b.weight": torch.randn(128, 64)}
    cpu = layerscope.scan(sd, device="cpu", metrics="all").layers
    gpu = layerscope.scan(sd, device="cuda", metrics="all").layers
    np.testing.assert_allclose(gpu["alpha"], cpu["alpha"], rtol=1e-4)
    assert gpu["num_traps"].tolist() == cpu["num_traps"].tolist()
