"""layerscope's LLC estimator vs devinterp 2.0.1, which lives in its own virtual environment.

    python benchmarks/llc_vs_devinterp2.py --setup        # once: creates .venv-devinterp2
    OMP_NUM_THREADS=1 python benchmarks/llc_vs_devinterp2.py [--repeat 3] [--out r.json]

devinterp 2.0.1 is a rewrite for language models: ``devinterp.slt.llc.llc`` takes a data
set of ``input_ids`` and a per-token loss, and it cannot share a virtual environment with
devinterp 1.3.2 (the main one). ``--setup`` makes a second one (``--venv``, default
``.venv-devinterp2``): the local CPU torch 2.13.0 first, then devinterp 2.0.1 and the
main venv's transformers version (it leaves that torch in place). Its python runs
``benchmarks/_devinterp2_worker.py``, which times devinterp on the model and data this
script saves with ``torch.save``; layerscope runs here on the very same tensors.

Workloads, each at batch 32 and 256, 4 chains × 200 draws, no burn-in, the same step ε,
localization γ = 1 and nβ = B/ln B on both sides, ``--threads`` torch threads (default
1: ``OMP_NUM_THREADS`` and ``torch.set_num_threads`` on both sides), best of ``--repeat``
rounds with the
contenders (devinterp 2.0.1, layerscope's default path and ``vectorize=False``)
interleaved within each round (≈17 min in all on one core; figures in
docs/benchmarks.md, "devinterp 2.0.1"):

* ``lm`` (the fair one: what 2.0.1 is built for): a Hugging Face GPT-2 built from a
  config (2 blocks, width 64, 4 heads, vocabulary 128, no dropout; ≈110k parameters),
  trained by Adam for a few hundred steps on 4096 sequences of 17 tokens from a random
  sparse Markov chain, then sampled with the per-token next-token cross-entropy
  (devinterp's default loss; layerscope gets its batch mean, computed by the same code),
  ε = 0.02/nβ (layerscope's default).
* ``mlp``: the ≈100k-parameter MLP and data of ``llc_vs_devinterp.py`` (ε = 1e-5), fed
  to devinterp 2.0.1 through a wrapper (rows ``[i, i]`` of sample indices as its
  ``input_ids``, a loss that looks the samples up; see the worker). devinterp 1.3.2
  (main venv, as timed by ``llc_vs_devinterp.py``) joins the rounds here, for 2.0.1's
  cost against 1.3.2 on one machine in one run.

What each side does per run (both sample the same number of chain-steps):

* devinterp 2.0.1: ``init_loss`` from 32 minibatches per chain (no-grad forwards), then
  chains one after another on a deep copy of the model, one forward + backward and an
  ``SGMCMC.sgld`` step per chain-step, every per-token loss and the batch's
  ``input_ids`` written to a zarr store (into a fresh temporary directory per run), the
  LLC read back from it. Progress bars off (``TQDM_DISABLE=1``). Data: the Hugging Face
  ``Dataset`` it documents (``--dataset torch``: a plain torch data set of the same rows).
* layerscope: ``llc.estimate`` with its defaults otherwise: the paired baseline (one
  extra forward per step, shared by the chains) and the diagnostics.

Unavoidable differences: the baselines (devinterp: the mean loss at w* over 32
minibatches, 128 no-grad forwards for 4 chains; layerscope: each step's minibatch, 200
forwards) and the minibatch order (each side shuffles with its own generator), so the
estimates agree only up to sampling noise and the baseline's bias; they are printed to
show that both sides ran the same problem.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path
from typing import IO, Any

import torch
from torch.utils.data import DataLoader, TensorDataset

from _devinterp2_worker import build_model, token_loss
from _rrr import gaussian_nll
from layerscope.probes import llc
from llc_vs_devinterp import devinterp_run, mlp_problem

ROOT = Path(__file__).resolve().parents[1]
WORKER = Path(__file__).resolve().parent / "_devinterp2_worker.py"
TARGET = 3.0
CHAINS, DRAWS = 4, 200
LM_CONFIG = {
    "vocab_size": 128,
    "n_positions": 32,
    "n_embd": 64,
    "n_layer": 2,
    "n_head": 4,
    "resid_pdrop": 0.0,
    "embd_pdrop": 0.0,
    "attn_pdrop": 0.0,
    "bos_token_id": 0,
    "eos_token_id": 0,
}
SEQ_LEN, NUM_SEQ, SUCCESSORS = 17, 4096, 4


def setup(venv: Path) -> None:
    """Create ``venv``: the local CPU torch 2.13.0 first (any other torch spec would pull
    CUDA wheels), then devinterp 2.0.1 and this venv's transformers, torch held at 2.13.0."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)
    pins = ["devinterp==2.0.1", f"transformers=={version('transformers')}", "torch==2.13.0"]
    subprocess.run([*pip, *pins], check=True)


def markov_tokens(n: int, seq_len: int, vocab: int, seed: int = 0) -> torch.Tensor:
    """``n`` sequences from a random Markov chain where each token has ``SUCCESSORS``
    possible successors (Dirichlet(1) probabilities): learnable by a small LM."""
    gen = torch.Generator().manual_seed(seed)
    succ = torch.stack([torch.randperm(vocab, generator=gen)[:SUCCESSORS] for _ in range(vocab)])
    probs = torch.distributions.Dirichlet(torch.ones(SUCCESSORS)).sample((vocab,))
    ids = torch.empty(n, seq_len, dtype=torch.long)
    ids[:, 0] = torch.randint(vocab, (n,), generator=gen)
    for t in range(1, seq_len):
        pick = torch.multinomial(probs[ids[:, t - 1]], 1, generator=gen)[:, 0]
        ids[:, t] = succ[ids[:, t - 1], pick]
    return ids


def lm_loss(model: torch.nn.Module, ids: torch.Tensor) -> torch.Tensor:
    """Batch mean of the per-token loss devinterp 2.0.1 averages (the same code)."""
    return token_loss(model, ids).mean()


def lm_problem(train_steps: int) -> tuple[dict[str, Any], torch.nn.Module, torch.Tensor]:
    """The tiny GPT-2 trained by Adam (batch 64, lr 3e-3) on Markov-chain sequences."""
    torch.manual_seed(0)
    spec = {"kind": "gpt2", "config": LM_CONFIG}
    model = build_model(spec)
    ids = markov_tokens(NUM_SEQ, SEQ_LEN, LM_CONFIG["vocab_size"])
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(1)
    for _ in range(train_steps):
        batch = ids[torch.randint(len(ids), (64,), generator=gen)]
        opt.zero_grad()
        lm_loss(model, batch).backward()
        opt.step()
    return spec, model.eval(), ids


def save_problem(path: Path, spec: dict[str, Any], model: torch.nn.Module, **data: Any) -> None:
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    torch.save({"spec": json.dumps(spec), "state_dict": state, **data}, path)


class Worker:
    """devinterp 2.0.1's side: the worker script in the other venv, one JSON line per job."""

    def __init__(self, venv: Path, log: IO[str], threads: int = 1) -> None:
        python = venv / "bin" / "python"
        if not python.exists():
            sys.exit(
                f"devinterp 2.0.1 venv not found at {venv}: run "
                f"`python benchmarks/llc_vs_devinterp2.py --setup --venv {venv}` first"
            )
        n = str(threads)
        env = {**os.environ, "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "TQDM_DISABLE": "1"}
        self.log = log
        self.proc = subprocess.Popen(
            [str(python), str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            env=env,
        )
        self.versions = self._answer()
        if self.versions.get("devinterp") != "2.0.1":
            sys.exit(f"{venv} has devinterp {self.versions.get('devinterp')}, not 2.0.1")

    def _answer(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            self.log.seek(0)
            last = (self.log.read().strip().splitlines() or ["no output"])[-1]
            sys.exit(f"devinterp 2.0.1 worker failed: {last}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, job: dict[str, Any]) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(job) + "\n")
        self.proc.stdin.flush()
        return self._answer()

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def layerscope_run(
    model: torch.nn.Module, data: Any, loss: Any, job: dict[str, Any], vectorize: bool | None
) -> dict[str, Any]:
    """One timed ``llc.estimate`` (``vectorize=None``: its default, vmap with a fallback)."""
    start = time.perf_counter()
    with warnings.catch_warnings():  # vmap's "performance drop" notes for sdpa attention
        warnings.simplefilter("ignore")
        res = llc.estimate(
            model,
            data,
            loss,
            num_chains=job["chains"],
            num_draws=job["draws"],
            burnin=0,
            step_size=job["step"],
            nbeta=job["nbeta"],
            localization=job["localization"],
            seed=job["seed"],
            batch_size=job["batch"],
            vectorize=vectorize,
        )
    return {
        "seconds": time.perf_counter() - start,
        "llc_mean": res.mean,
        "llc_per_chain": list(res.per_chain),
        "baseline_loss": res.baseline_loss,
        "vectorized": res.vectorized,
        "warnings": list(res.warnings),
    }


def devinterp1_run(model: torch.nn.Module, data: Any, job: dict[str, Any]) -> dict[str, Any]:
    """devinterp 1.3.2 (main venv) as timed by llc_vs_devinterp.py, on the MLP's tensors."""
    loader = DataLoader(TensorDataset(*data), batch_size=job["batch"], shuffle=True)
    start = time.perf_counter()
    value = devinterp_run(model, loader, job["step"], job["nbeta"], job["draws"], 0, job["seed"])
    return {"seconds": time.perf_counter() - start, "llc_mean": value}


def problems(tmp: Path, which: list[str], train_steps: int) -> dict[str, dict[str, Any]]:
    """Per workload: the saved file, the model, layerscope's data and loss, the step rule."""
    out: dict[str, dict[str, Any]] = {}
    if "lm" in which:
        spec, model, ids = lm_problem(train_steps)
        save_problem(tmp / "lm.pt", spec, model, input_ids=ids)
        out["lm"] = {
            "file": tmp / "lm.pt",
            "model": model,
            "data": ids,
            "loss": lm_loss,
            "step": lambda nbeta: 0.02 / nbeta,
        }
    if "mlp" in which:
        model, x, y = mlp_problem()
        spec = {"kind": "mlp", "sizes": [64, 256, 256, 64]}
        save_problem(tmp / "mlp.pt", spec, model, x=x, y=y)
        out["mlp"] = {
            "file": tmp / "mlp.pt",
            "model": model,
            "data": (x, y),
            "loss": gaussian_nll,
            "step": lambda nbeta: 1e-5,
        }
    return out


def measure(args: argparse.Namespace, worker: Worker, tmp: Path) -> list[dict[str, Any]]:
    """Best of ``args.repeat`` interleaved rounds for every (workload, batch)."""
    probs = problems(tmp, args.workloads, args.train_steps)
    rows = []
    for name, p in probs.items():
        params = sum(t.numel() for t in p["model"].parameters())
        for batch in args.batches:
            nbeta = batch / math.log(batch)
            job = {
                "data": str(p["file"]),
                "batch": batch,
                "chains": args.chains,
                "draws": args.draws,
                "step": p["step"](nbeta),
                "nbeta": nbeta,
                "localization": 1.0,
                "seed": 0,
                "dataset": args.dataset,
            }
            runs: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
                "devinterp2": worker.run,
                "layerscope": lambda j, p=p: layerscope_run(
                    p["model"], p["data"], p["loss"], j, None
                ),
                "layerscope_loop": lambda j, p=p: layerscope_run(
                    p["model"], p["data"], p["loss"], j, False
                ),
            }
            if name == "mlp" and args.chains == CHAINS:  # the 1.3.2 benchmark's chains
                runs["devinterp1"] = lambda j, p=p: devinterp1_run(p["model"], p["data"], j)
            for run in runs.values():  # untimed: first-call costs (imports, allocator)
                run({**job, "draws": 3})
            timed: dict[str, list[dict[str, Any]]] = {key: [] for key in runs}
            for _ in range(args.repeat):
                for key, run in runs.items():
                    timed[key].append(run(job))
            rows.append(summarize(name, params, job, timed))
            print(format_row(rows[-1]), flush=True)
    return rows


def summarize(
    name: str, params: int, job: dict[str, Any], timed: dict[str, list[dict[str, Any]]]
) -> dict[str, Any]:
    """One table row: best times, ratios, and the last run's estimates and checks."""
    row: dict[str, Any] = {
        "workload": name,
        "params": params,
        "batch": job["batch"],
        "chain_steps": job["chains"] * job["draws"],
        "step": job["step"],
        "nbeta": job["nbeta"],
    }
    for key, runs in timed.items():
        row[f"{key}_s"] = min(r["seconds"] for r in runs)
        row[f"{key}_all_s"] = [r["seconds"] for r in runs]
        row[f"{key}_llc"] = runs[-1]["llc_mean"]
        row[f"{key}_all_llc"] = [r["llc_mean"] for r in runs]
    row["ratio"] = row["devinterp2_s"] / row["layerscope_s"]
    row["ratio_loop"] = row["devinterp2_s"] / row["layerscope_loop_s"]
    if "devinterp1_s" in row:
        row["devinterp1_over_devinterp2"] = row["devinterp1_s"] / row["devinterp2_s"]
    row["devinterp2_init_loss"] = timed["devinterp2"][-1]["init_loss"]
    row["devinterp2_failed_chains"] = max(r["failed_chains"] for r in timed["devinterp2"])
    last = timed["layerscope"][-1]
    row["layerscope_baseline"] = last["baseline_loss"]
    row["layerscope_vectorized"] = last["vectorized"]
    row["layerscope_warnings"] = last["warnings"]
    return row


def format_row(r: dict[str, Any]) -> str:
    ms = 1e3 / r["chain_steps"]
    return (
        f"{r['workload']:4s} B={r['batch']:<4d} devinterp 2.0.1 {r['devinterp2_s']:7.2f} s"
        f" ({ms * r['devinterp2_s']:6.2f} ms/chain-step)  layerscope {r['layerscope_s']:7.2f} s"
        f" ({ms * r['layerscope_s']:6.2f})  loop {r['layerscope_loop_s']:7.2f} s"
        f"  ratio {r['ratio']:5.2f}x, loop {r['ratio_loop']:5.2f}x (target >= {TARGET}x)\n"
        f"     LLC devinterp {r['devinterp2_llc']:.2f} (init loss {r['devinterp2_init_loss']:.4f},"
        f" {r['devinterp2_failed_chains']} failed chains), layerscope {r['layerscope_llc']:.2f}"
        f" / loop {r['layerscope_loop_llc']:.2f} (mean baseline {r['layerscope_baseline']:.4f},"
        f" vmap {r['layerscope_vectorized']}, {len(r['layerscope_warnings'])} warnings)"
    ) + (
        f"\n     devinterp 1.3.2 (main venv) {r['devinterp1_s']:.2f} s, LLC"
        f" {r['devinterp1_llc']:.2f}: 2.0.1 takes {1 / r['devinterp1_over_devinterp2']:.2f}x"
        if "devinterp1_s" in r
        else ""
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--venv", type=Path, default=ROOT / ".venv-devinterp2")
    parser.add_argument("--setup", action="store_true", help="create --venv and exit")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--workloads", nargs="+", choices=("lm", "mlp"), default=["lm", "mlp"])
    parser.add_argument("--batches", nargs="+", type=int, default=[32, 256])
    parser.add_argument("--chains", type=int, default=CHAINS)
    parser.add_argument("--draws", type=int, default=DRAWS)
    parser.add_argument("--train-steps", type=int, default=300, help="Adam steps for the LM")
    parser.add_argument(
        "--dataset",
        choices=("hf", "torch"),
        default="hf",
        help="devinterp's data set: Hugging Face Dataset or plain torch",
    )
    parser.add_argument(
        "--threads", type=int, default=1, help="torch threads on each side (default 1)"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if args.setup:
        setup(args.venv)
        return
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory() as tmp, (Path(tmp) / "worker.log").open("w+") as log:
        worker = Worker(args.venv, log, args.threads)
        try:
            rows = measure(args, worker, Path(tmp))
        finally:
            worker.close()
    results = {
        "machine": platform.processor() or platform.machine(),
        "versions": worker.versions,
        "layerscope_torch": torch.__version__,
        "threads": args.threads,
        "rows": rows,
    }
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
