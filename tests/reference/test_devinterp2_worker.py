"""The devinterp 2.0.1 benchmark's worker (benchmarks/_devinterp2_worker.py) feeds devinterp
the same problem layerscope gets.

* Without the side venv: the per-token LM loss the worker shares with the benchmark is
  the shifted next-token cross-entropy (``F.cross_entropy`` as the reference), and the
  MLP's index wrapper gives the Gaussian NLL of the looked-up samples.
* With ``.venv-devinterp2`` (``benchmarks/llc_vs_devinterp2.py --setup``; skipped
  without it): the shared loss equals devinterp 2.0.1's own ``compute_per_token_loss``,
  and a worker job on the MLP wrapper reports as ``init_loss`` the full-data mean loss
  at w* computed here (32 batches of 32 without replacement cover all 1024 samples
  once), with no failed chain.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from torch.nn import functional

ROOT = Path(__file__).resolve().parents[2]
VENV_PYTHON = ROOT / ".venv-devinterp2" / "bin" / "python"
WORKER = ROOT / "benchmarks" / "_devinterp2_worker.py"

from _devinterp2_worker import build_model, mlp_index_loss, token_loss  # noqa: E402
from _rrr import gaussian_nll  # noqa: E402

TINY_GPT2 = {
    "kind": "gpt2",
    "config": {
        "vocab_size": 32,
        "n_positions": 16,
        "n_embd": 16,
        "n_layer": 1,
        "n_head": 2,
        "bos_token_id": 0,
        "eos_token_id": 0,
    },
}
MLP = {"kind": "mlp", "sizes": [5, 7, 3]}
needs_venv = pytest.mark.skipif(not VENV_PYTHON.exists(), reason="no .venv-devinterp2")


def test_token_loss_is_shifted_cross_entropy() -> None:
    torch.manual_seed(0)
    model = build_model(TINY_GPT2).eval()
    ids = torch.randint(32, (3, 9))
    logits = model(ids).logits
    ref = functional.cross_entropy(
        logits[:, :-1].reshape(-1, 32), ids[:, 1:].reshape(-1), reduction="none"
    )
    got = token_loss(model, ids)
    assert got.shape == (3, 8)
    torch.testing.assert_close(got.reshape(-1), ref, rtol=1e-5, atol=1e-6)


def test_mlp_index_loss_is_gaussian_nll_of_the_rows() -> None:
    torch.manual_seed(0)
    model = build_model(MLP)
    assert [type(m).__name__ for m in model] == ["Linear", "ReLU", "Linear"]
    x, y = torch.randn(10, 5), torch.randn(10, 3)
    rows = torch.tensor([7, 2, 2, 9])
    got = mlp_index_loss(x, y)(model, rows.repeat(2, 1).T)
    assert got.shape == (4, 1)
    torch.testing.assert_close(got.mean(), gaussian_nll(model, (x[rows], y[rows])))


def _side(code: str, *args: str) -> str:
    proc = subprocess.run(
        [str(VENV_PYTHON), "-c", code, *args],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"},
        cwd=WORKER.parent,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


@needs_venv
@pytest.mark.slow
def test_shared_loss_equals_devinterp2_default() -> None:
    code = (
        "import json, sys, torch\n"
        "from devinterp.slt.lm_loss import compute_per_token_loss\n"
        "from _devinterp2_worker import build_model, token_loss\n"
        "torch.manual_seed(0)\n"
        "model = build_model(json.loads(sys.argv[1])).eval()\n"
        "ids = torch.randint(32, (3, 9))\n"
        "diff = (token_loss(model, ids) - compute_per_token_loss(model, ids)).abs().max()\n"
        "print(json.dumps({'diff': float(diff)}))\n"
    )
    out = json.loads(_side(code, json.dumps(TINY_GPT2)).splitlines()[-1])
    assert out["diff"] == 0.0


@needs_venv
@pytest.mark.slow
def test_worker_job_sees_the_same_data(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = build_model(MLP)
    x, y = torch.randn(1024, 5), torch.randn(1024, 3)
    path = tmp_path / "mlp.pt"
    torch.save({"spec": json.dumps(MLP), "state_dict": model.state_dict(), "x": x, "y": y}, path)
    job = {
        "data": str(path),
        "batch": 32,
        "chains": 2,
        "draws": 5,
        "step": 1e-4,
        "nbeta": 9.0,
        "localization": 1.0,
        "seed": 0,
        "dataset": "hf",
    }
    proc = subprocess.run(
        [str(VENV_PYTHON), str(WORKER)],
        input=json.dumps(job) + "\n",
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "OMP_NUM_THREADS": "1", "TQDM_DISABLE": "1"},
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    versions, answer = (json.loads(line) for line in proc.stdout.splitlines())
    assert versions["devinterp"] == "2.0.1"
    assert answer["failed_chains"] == 0
    assert len(answer["llc_per_chain"]) == 2
    assert answer["seconds"] > 0
    with torch.no_grad():
        full = float(gaussian_nll(model, (x, y)))
    assert answer["init_loss"] == pytest.approx(full, rel=1e-5)
