"""devinterp 1.3.2's LLC at its default baseline, for the side-by-side test and benchmarks.

Its ``sample`` + ``LLCEstimator`` with the baseline ``get_init_loss_multi_batch`` takes
(the mean loss of w* on the first ``chains`` batches of the loader, seeded), the
Gaussian NLL as the loss and localization γ = 1, the settings both callers compare at.
"""

from __future__ import annotations

import warnings
from typing import Any

from torch import nn
from torch.utils.data import DataLoader

from _rrr import gaussian_nll


def devinterp_llc(
    model: nn.Module,
    loader: DataLoader,
    *,
    chains: int,
    draws: int,
    burnin: int,
    step: float,
    nbeta: float,
    seed: int = 0,
    cores: int = 1,
) -> tuple[dict[str, Any], float]:
    """devinterp's results (``llc/mean``, ``llc/std``, ...) and the baseline it used."""
    from devinterp.slt.llc import LLCEstimator
    from devinterp.slt.sampler import sample
    from devinterp.utils import get_init_loss_multi_batch

    init = float(get_init_loss_multi_batch(loader, chains, model, gaussian_nll, "cpu", seed))
    estimator = LLCEstimator(chains, draws, init, nbeta=nbeta)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sample(
            model,
            loader,
            [estimator],
            evaluate=gaussian_nll,
            optimizer_kwargs={"lr": step, "localization": 1.0, "nbeta": nbeta},
            num_chains=chains,
            num_draws=draws,
            num_burnin_steps=burnin,
            seed=seed,
            verbose=False,
            cores=cores,
        )
    return estimator.get_results(), init
