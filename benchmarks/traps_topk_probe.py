"""Could a top-k eigensolver make correlation traps cheap? One matrix, measured in parts.

    python benchmarks/traps_topk_probe.py [--quick] [--matrix mlp.up_proj] [--k 32]

For one matrix of the synthetic Llama block (``_models.py``; full 4096/11008 shapes, or
1024/2816 with ``--quick``), on one thread: the seeded element shuffle
(``spectrum.shuffle_entries``), the exact path's float32 Gram + full symmetric
eigensolver of the shuffled copy, and the ``k`` largest eigenvalues of the same shuffled
Gram by ARPACK Lanczos (``scipy.sparse.linalg.eigsh``) on the operator v ↦ Wₛᵀ(Wₛv) in
float32 (no Gram formed). Prints the times and the largest relative difference of the
top ``k`` eigenvalues between the two solvers; the trap count only needs the eigenvalues
above the MP edge, i.e. the top of this list.
"""

from __future__ import annotations

import argparse

import numpy as np
import scipy.sparse.linalg as sla
import torch

import _models
from layerscope import spectrum


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="hidden 1024 / intermediate 2816")
    parser.add_argument("--matrix", default="mlp.up_proj", help="block-relative matrix name")
    parser.add_argument("--k", type=int, default=32, help="top eigenvalues by Lanczos")
    args = parser.parse_args()
    torch.set_num_threads(1)
    shape = _models.one_block(args.quick)
    W = _models.llama_tensors(shape)[f"model.layers.0.{args.matrix}.weight"]
    batch = (W if W.shape[0] >= W.shape[1] else W.mT).unsqueeze(0)
    gen = torch.Generator().manual_seed(0)
    t_shuffle, shuffled = _models.clock(lambda: spectrum.shuffle_entries(batch, gen))
    Ws = shuffled[0].contiguous().numpy()
    t_exact, lam = _models.clock(
        lambda: torch.linalg.eigvalsh(spectrum.gram(shuffled, torch.float32), UPLO="U")
    )
    exact_top = np.sort(lam[0].double().numpy())[::-1][: args.k]
    M = Ws.shape[1]
    op = sla.LinearOperator((M, M), matvec=lambda v: Ws.T @ (Ws @ v), dtype=np.float32)
    t_topk, top = _models.clock(
        lambda: sla.eigsh(op, k=args.k, which="LA", return_eigenvectors=False)
    )
    top = np.sort(top.astype(np.float64))[::-1]
    rel = float(np.max(np.abs(top - exact_top) / exact_top))
    print(f"{args.matrix} {tuple(W.shape)}, one thread")
    print(f"shuffle                      {t_shuffle:7.2f} s")
    print(f"exact: float32 Gram + eigvalsh {t_exact:7.2f} s")
    print(f"Lanczos top-{args.k} (eigsh)       {t_topk:7.2f} s  max rel diff {rel:.1e}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
