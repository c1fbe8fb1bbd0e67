"""The settings of one SGLD sampling run, shared by the run (``_sgld``) and its blocks of
chains (``_sgld_block``): their one home, so neither module imports the other for it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SamplerSettings:
    """What one sampling run needs besides the model, data and loss (already validated)."""

    num_chains: int
    num_steps: int
    step_size: float
    localization: float
    nbeta: float
    seed: int
    vectorize: bool | None
    threads: int = 1


__all__ = ["SamplerSettings"]
