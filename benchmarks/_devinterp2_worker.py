"""Times devinterp 2.0.1's LLC in its own virtual environment (see llc_vs_devinterp2.py).

    OMP_NUM_THREADS=1 .venv-devinterp2/bin/python benchmarks/_devinterp2_worker.py

Reads one JSON job per line on stdin and answers one JSON line on stdout per job (all
other output of devinterp goes to stderr). The first answer, before any job, is
``{"devinterp": version, "torch": version, "transformers": version}``. A job is

    {"data": "problem.pt", "batch": 32, "chains": 4, "draws": 200, "step": 1e-5,
     "nbeta": 9.2, "localization": 1.0, "seed": 0, "dataset": "hf" | "torch"}

where ``problem.pt`` (``torch.save``) holds ``spec`` (see :func:`build_model`), the
model's ``state_dict`` and the data: ``input_ids`` (sequences of token ids, for a causal
LM) or ``x``, ``y`` (regression, for the MLP). The answer is ``{"seconds": wall time of
devinterp.slt.llc.llc, "llc_mean", "llc_per_chain", "init_loss", "failed_chains"}``.

devinterp 2.0.1 samples only data sets of ``input_ids`` and a per-token loss
``(model, input_ids) -> (batch, seq − 1)``. The causal LM runs with its default loss
(cross-entropy of the logits). The MLP runs through a wrapper: its ``input_ids`` are
rows ``[i, i]`` of sample indices, and its loss looks rows ``x[i]``, ``y[i]`` up and
returns the per-sample Gaussian NLL ``0.5·‖f(x) − y‖²`` as a ``(batch, 1)`` "token" loss.

This file imports neither layerscope nor devinterp at module level, so that the
benchmark (main venv, devinterp 1.3.2) can share :func:`build_model` and
:func:`token_loss` with it: both sides run the very same model code.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.nn import functional


def build_model(spec: dict[str, Any]) -> nn.Module:
    """The benchmark's model from its JSON spec: ``{"kind": "mlp", "sizes": [...]}`` (ReLU
    between linear layers) or ``{"kind": "gpt2", "config": {...}}`` (a Hugging Face
    ``GPT2LMHeadModel`` built from that ``GPT2Config``; dropout should be 0)."""
    if spec["kind"] == "mlp":
        sizes = spec["sizes"]
        layers: list[nn.Module] = []
        for fan_in, fan_out in itertools.pairwise(sizes):
            layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
        return nn.Sequential(*layers[:-1])
    if spec["kind"] == "gpt2":
        from transformers import GPT2Config, GPT2LMHeadModel

        return GPT2LMHeadModel(GPT2Config(**spec["config"]))
    raise ValueError(f"spec: unknown model kind {spec['kind']!r}")


def lm_logits(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Logits of a Hugging Face causal LM the way devinterp 2.0.1 calls it (no KV cache)."""
    out: torch.Tensor = model(input_ids, return_dict=False, use_cache=False)[0]
    return out


def token_loss(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    """Per-token next-token cross-entropy ``(batch, seq − 1)``: devinterp 2.0.1's
    ``lm_cross_entropy_loss`` (log-softmax, then the target's entry)."""
    log_probs = functional.log_softmax(lm_logits(model, input_ids), dim=-1)
    return -log_probs[:, :-1].gather(-1, input_ids[:, 1:, None])[..., 0]


def mlp_index_loss(x: torch.Tensor, y: torch.Tensor) -> Any:
    """devinterp 2.0.1 loss for the regression MLP: rows ``[i, i]`` of ``input_ids`` are
    sample indices; returns ``0.5·‖f(x_i) − y_i‖²`` as a ``(batch, 1)`` token loss."""

    def loss(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
        idx = input_ids[:, 0]
        return 0.5 * ((model(x[idx]) - y[idx]) ** 2).sum(1, keepdim=True)

    return loss


class _Rows(torch.utils.data.Dataset[dict[str, torch.Tensor]]):
    """``{"input_ids": row}`` items over one tensor: the cheapest data set devinterp takes."""

    def __init__(self, ids: torch.Tensor) -> None:
        self.ids = ids

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {"input_ids": self.ids[i]}


def _problem(path: str, kind: str) -> tuple[nn.Module, Any, Any]:
    """Model (eval mode), data set of ``input_ids`` and per-token loss (None: LM default)."""
    saved = torch.load(path, weights_only=True)
    model = build_model(json.loads(saved["spec"]))
    model.load_state_dict(saved["state_dict"])
    model.eval()
    if "input_ids" in saved:
        ids, loss = saved["input_ids"], None
    else:
        ids = torch.arange(len(saved["x"])).repeat(2, 1).T.contiguous()
        loss = mlp_index_loss(saved["x"], saved["y"])
    if kind == "torch":
        return model, _Rows(ids), loss
    from datasets import Dataset

    return model, Dataset.from_dict({"input_ids": ids.numpy()}).with_format("torch"), loss


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """One timed ``devinterp.slt.llc.llc`` call (see the module docstring)."""
    from devinterp.slt.llc import llc

    model, dataset, loss = _problem(job["data"], job.get("dataset", "hf"))
    with tempfile.TemporaryDirectory() as tmp, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        start = time.perf_counter()
        out = llc(
            model,
            dataset,
            {},
            lr=job["step"],
            n_beta=job["nbeta"],
            loss_fn=loss,
            num_chains=job["chains"],
            num_draws=job["draws"],
            batch_size=job["batch"],
            num_burnin_steps=0,
            localization=job["localization"],
            init_seed=job["seed"],
            device="cpu",
            output_path=Path(tmp) / "samples.zarr",
        )
        result = {
            "llc_mean": float(out["llc_mean"]),
            "llc_per_chain": [float(v) for v in out["llc_per_chain"].values],
            "init_loss": float(out["init_loss"]),
        }
        seconds = time.perf_counter() - start
    failed = sum("Chain failed" in str(w.message) for w in caught)
    return {"seconds": seconds, **result, "failed_chains": failed}


def main() -> None:
    # The thread budget comes from the parent, through OMP_NUM_THREADS.
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    answer = sys.stdout
    with contextlib.redirect_stdout(sys.stderr):
        from importlib.metadata import version

        import devinterp
        import transformers

        del devinterp, transformers
        versions = {p: version(p) for p in ("devinterp", "torch", "transformers")}
        print(json.dumps(versions), file=answer, flush=True)
        for line in sys.stdin:
            if line.strip():
                print(json.dumps(run_job(json.loads(line))), file=answer, flush=True)


if __name__ == "__main__":
    main()
