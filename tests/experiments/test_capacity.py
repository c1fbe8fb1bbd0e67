"""The capacity experiment: its data are uniform, its CSV rows consistent, and a model
far larger than its data memorizes nearly all of the data's entropy."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

pytest.importorskip("transformers")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from experiments.capacity import run as cap


def test_random_data_are_uniform_and_seeded() -> None:
    cfg = cap.Config(vocab=8, seq_len=16, samples=500)
    data = cap.random_data(cfg).numpy()
    assert data.shape == (500, 16) and np.array_equal(data, cap.random_data(cfg).numpy())
    counts = np.bincount(data.ravel(), minlength=8)
    chi2 = ((counts - data.size / 8) ** 2 / (data.size / 8)).sum()
    assert chi2 < 24.3  # χ²(7) 99.9 % quantile


def test_small_data_are_memorized_and_the_csv_is_consistent(tmp_path: Path) -> None:
    out = tmp_path / "cap.csv"
    args = ["--vocab", "16", "--seq-len", "16", "--sizes", "4", "--lr", "0.01"]
    args += ["--max-steps", "300", "--eval-every", "100", "--out", str(out)]
    assert cap.main(args) == 0
    row = pd.read_csv(out).iloc[0]
    assert list(pd.read_csv(out).columns) == list(cap.COLUMNS)
    assert row["data_bits"] == pytest.approx(4 * 15 * math.log2(16))
    d = 32  # GPT-2: token + position embeddings, 12d² + 13d per block, final LayerNorm 2d
    assert row["params"] == 16 * d + 16 * d + (12 * d * d + 13 * d) + 2 * d
    assert 0.9 * row["data_bits"] < row["memorized_bits"] <= row["data_bits"] + 1e-6
    assert row["bits_per_param"] == pytest.approx(row["memorized_bits"] / row["params"])
    assert (row["steps"], row["decay"]) == (200, "none")  # stopped on convergence


def test_learning_rate_schedules() -> None:
    assert cap._lr(0, 1.0, 1000) == pytest.approx(0.01)  # warm-up: (step + 1) / 100
    assert cap._lr(99, 1.0, 1000, "linear") == 1.0
    assert cap._lr(500, 1.0, 1000) == 1.0
    assert cap._lr(550, 1.0, 1000, "linear") == pytest.approx(0.5)  # (1000 - 550) / 900
    assert cap._lr(550, 1.0, 1000, "cosine") == pytest.approx(0.5)  # cos(π/2) = 0
    assert cap._lr(325, 1.0, 1000, "cosine") == pytest.approx((1 + math.cos(math.pi / 4)) / 2)
    assert cap._lr(1000, 1.0, 1000, "linear") == cap._lr(1000, 1.0, 1000, "cosine") == 0.0
    with pytest.raises(ValueError, match="decay must be one of"):
        cap.Config(decay="step")


def test_a_decayed_run_takes_all_its_steps(tmp_path: Path) -> None:
    out = tmp_path / "cap.csv"
    args = ["--vocab", "16", "--seq-len", "16", "--sizes", "4", "--lr", "0.01"]
    args += ["--max-steps", "300", "--eval-every", "100", "--decay", "linear", "--out", str(out)]
    trace = tmp_path / "trace.jsonl"
    assert cap.main([*args, "--trace", str(trace)]) == 0
    row = pd.read_csv(out).iloc[0]
    points = pd.read_json(trace, lines=True)
    assert points["step"].tolist() == [100, 200, 300]
    # The rate of the last step taken, s - 1: 0.01·(1 − (s − 1 − 100) / 200) after warm-up.
    assert points["lr"].tolist() == pytest.approx([0.01, 0.01 * 101 / 200, 0.01 / 200])
    assert points["bits"].iloc[-1] == pytest.approx(row["memorized_bits"])
    # The same run at a constant rate stops at step 200 (converged; see the test above).
    assert (row["steps"], row["lr"], row["decay"]) == (300, 0.01, "linear")
    assert bool(row["converged"])


def test_a_csv_of_other_columns_is_not_appended_to(tmp_path: Path) -> None:
    out = tmp_path / "old.csv"
    out.write_text(",".join(c for c in cap.COLUMNS if c != "clip") + "\n")  # before --clip
    with pytest.raises(SystemExit, match=r"old\.csv: its header is not this version's columns"):
        cap.main(["--sizes", "4", "--max-steps", "1", "--out", str(out)])
    assert out.read_text().count("\n") == 1  # left as it was


def test_an_unknown_device_is_a_one_line_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as stop:
        cap.main(["--device", "tpu9", "--sizes", "4"])
    assert stop.value.code == 2
    assert "error: --device tpu9: " in capsys.readouterr().err


# A child process frees and reallocates a 40 MiB tensor (above glibc's mmap threshold)
# ten times and prints the page faults that cost; the argument says whether it first
# calls keep_freed_memory.
_FAULTS = """
import resource, sys, torch
from experiments.capacity import run
kept = run.keep_freed_memory() if sys.argv[1] == "keep" else None
torch.ones(10 << 20).sum()  # the first allocation faults in either case
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(10):
    torch.ones(10 << 20).sum()
print(kept, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_freed_tensors_stay_in_the_heap_instead_of_faulting_in_again() -> None:
    def faults(mode: str) -> tuple[str, int]:
        out = subprocess.run(
            [sys.executable, "-c", _FAULTS, mode],
            capture_output=True,
            text=True,
            check=True,
            cwd=Path(__file__).resolve().parents[2],
        ).stdout.split()
        return out[0], int(out[1])

    default, kept = faults("default"), faults("keep")
    pages = 10 * (40 << 20) // 4096  # what re-faulting every reallocation costs
    assert default[1] > pages // 2  # the default allocator does re-fault them
    assert kept == ("True", kept[1]) and kept[1] < pages // 5


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_a_gpu_run_follows_the_cpu_run(tmp_path: Path) -> None:
    # Same seeds, same batches (drawn on the CPU): the rows agree up to float rounding.
    args = ["--vocab", "16", "--seq-len", "16", "--sizes", "4,8", "--lr", "0.01"]
    args += ["--max-steps", "200", "--eval-every", "100", "--decay", "cosine"]
    for device in ("cpu", "cuda"):
        assert cap.main([*args, "--device", device, "--out", str(tmp_path / f"{device}.csv")]) == 0
    cpu, gpu = (pd.read_csv(tmp_path / f"{d}.csv") for d in ("cpu", "cuda"))
    assert np.allclose(cpu["memorized_bits"], gpu["memorized_bits"], rtol=0.02)
