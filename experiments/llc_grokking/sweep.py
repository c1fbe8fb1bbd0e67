"""LLC at a memorised and a grokked checkpoint over localization γ × step size ε·nβ.

Shows how much the drop across grokking depends on the sampler settings, and which
settings reach equilibrium (drift, R-hat and the estimator's warnings); prints a
markdown table (docs/llc_grokking.md, "Sampler settings").

    nice -n 19 python -m experiments.llc_grokking.sweep --steps 300 2500
"""

from __future__ import annotations

import argparse
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import replace

import pandas as pd
import torch

from experiments.llc_grokking.plot import markdown
from experiments.llc_grokking.train import CONFIGS, ce_loss, checkpoints, evaluate
from layerscope.probes.llc import estimate


def sweep(
    steps: Sequence[int],
    localizations: Sequence[float],
    step_times_nbeta: Sequence[float],
    draws: int,
    seed: int,
) -> pd.DataFrame:
    """One row per (checkpoint, γ, ε·nβ): LLC, chain spread, drift, R-hat, warnings."""
    cfg = replace(CONFIGS["quick"], seed=seed)
    nbeta = cfg.llc_batch / math.log(cfg.llc_batch)
    rows = []
    for step, model, data in checkpoints(cfg, sorted(steps)):
        test_acc = evaluate(model, data[2], data[3])[1]
        for gamma in localizations:
            for times in step_times_nbeta:
                res = estimate(
                    model,
                    (data[0], data[1]),
                    ce_loss,
                    num_chains=cfg.llc_chains,
                    num_draws=draws,
                    burnin=draws,
                    batch_size=cfg.llc_batch,
                    nbeta=nbeta,
                    step_size=times / nbeta,
                    localization=gamma,
                    seed=seed,
                )
                d = res.diagnostics
                rows.append(
                    {
                        "step": step,
                        "test_acc": test_acc,
                        "gamma": gamma,
                        "eps*nbeta": times,
                        "llc": res.mean,
                        "llc_std": res.std,
                        "drift": d.drift,
                        "r_hat": d.r_hat,
                        "warnings": len(res.warnings),
                    }
                )
    return pd.DataFrame(rows)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, nargs="+", default=[300, 2500])
    p.add_argument("--gamma", type=float, nargs="+", default=[1.0, 10.0, 30.0])
    p.add_argument("--eps-nbeta", type=float, nargs="+", default=[0.02, 0.05])
    p.add_argument("--draws", type=int, default=200, help="draws (and as many burn-in)")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    table = sweep(args.steps, args.gamma, args.eps_nbeta, args.draws, args.seed)
    print(markdown(table))
    return 0


if __name__ == "__main__":
    sys.exit(main())
