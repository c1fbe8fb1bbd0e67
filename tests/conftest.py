"""Shared fixtures: run every test on one BLAS/OpenMP thread.

On small shared machines (2 cores, pytest-xdist workers) multi-threaded OpenBLAS and
torch's OpenMP pool spin-wait for a starved core: the same 1000×500 SVD took 0.04 s
on one thread and 0.04–4 s on two. Tests are small, so one thread per worker is both
fast and predictable; results are unaffected beyond round-off.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch
from threadpoolctl import threadpool_limits


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(limits=1):
            yield
    finally:
        torch.set_num_threads(before)
