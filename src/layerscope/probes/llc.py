"""Local learning coefficient (LLC) of a trained model by SGLD, with diagnostics.

    λ̂(w*) = nβ · (E_w[L_n(w)] − L_n(w*)),   w ~ p(w) ∝ exp(−nβ·L_n(w) − (γ/2)‖w − w*‖²)

(Lau, Furman, Wang, Murfet & Wei, arXiv 2308.12108; docs/science.md §8), sampled by SGLD
chains started at w* (see :mod:`layerscope.probes._sgld_block` for the update rule).
Each draw contributes nβ·(L_b(w_t) − L_b(w*)) with both losses on the *same* minibatch
b, which cancels the batch-to-batch noise that a fixed baseline multiplies by nβ (the
measured −17…−25 % bias of devinterp's few-batch baseline, docs/science.md §8). Defaults and
their sources are in :func:`estimate`; how to read the diagnostics is in docs/llc.md.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from layerscope.probes._dln import dln_learning_coefficient
from layerscope.probes._llc_data import DataInfo, batches, describe
from layerscope.probes._llc_diagnostics import LLCDiagnostics, Thresholds, diagnose, warnings_for
from layerscope.probes._llc_result import LLCResult
from layerscope.probes._rrr import rrr_learning_coefficient
from layerscope.probes._sgld import LossFn, Traces, run_chains, to_device
from layerscope.probes._sgld_settings import SamplerSettings

__all__ = [
    "Calibration",
    "LLCDiagnostics",
    "LLCOptions",
    "LLCResult",
    "calibrate",
    "default_nbeta",
    "dln_learning_coefficient",
    "estimate",
    "rrr_learning_coefficient",
]

# ε·nβ that gave −3…+10 % on reduced-rank regression for B = 32…512 (docs/llc.md).
STEP_TIMES_NBETA = 0.02
MALA_OPTIMAL_ACCEPTANCE = 0.574  # Roberts & Rosenthal 1998


@dataclass(frozen=True)
class LLCOptions:
    """Validated options of :func:`estimate` (see its docstring)."""

    num_chains: int = 4
    num_draws: int = 200
    burnin: int = 200
    step_size: float | None = None
    localization: float = 1.0
    nbeta: float | None = None
    seed: int = 0
    batch_size: int | None = None
    device: str | torch.device | None = None
    keep_traces: bool = False
    baseline: str | float = "paired"
    vectorize: bool | None = None
    threads: int | None = None

    @classmethod
    def from_kwargs(cls, **options: Any) -> LLCOptions:
        """Validated options; an unknown name raises ``ValueError`` listing the known ones."""
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(options) - known)
        if unknown:
            listed = ", ".join(sorted(known))
            raise ValueError(f"unknown llc option(s): {', '.join(unknown)}; known: {listed}")
        return cls(**options)

    def __post_init__(self) -> None:
        for name in ("num_chains", "num_draws"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.burnin < 0:
            raise ValueError(f"burnin must be >= 0, got {self.burnin}")
        if self.step_size is not None and not self.step_size > 0:
            raise ValueError(f"step_size must be > 0, got {self.step_size}")
        if self.nbeta is not None and not self.nbeta > 0:
            raise ValueError(f"nbeta must be > 0, got {self.nbeta}")
        if not self.localization >= 0:
            raise ValueError(f"localization must be >= 0, got {self.localization}")
        if self.threads is not None and self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {self.threads}")
        if isinstance(self.baseline, str) and self.baseline != "paired":
            raise ValueError(f"baseline must be 'paired' or a number, got {self.baseline!r}")


def default_nbeta(batch_size: int | None) -> float:
    """nβ = B/ln B for batch size B (devinterp's ``default_nbeta``; see :func:`estimate`).

    Raises:
        ValueError: B unknown or ≤ 1 (B/ln B is undefined there): pass ``nbeta``.
    """
    if batch_size is None or batch_size <= 1:
        raise ValueError(
            f"nbeta: cannot default to B/ln B with batch size {batch_size}; pass nbeta"
        )
    return batch_size / math.log(batch_size)


def estimate(model: nn.Module, data: Any, loss_fn: LossFn, **options: Any) -> LLCResult:
    """Estimate the LLC of ``model`` at its current weights w* on ``data``.

    Args:
        model: the trained network; left unchanged (its weights and buffers are copied).
            It runs in the mode it is in: call ``model.eval()`` for a deterministic loss
            (dropout off, BatchNorm on running statistics). Only parameters with
            ``requires_grad`` are sampled.
        data: a tuple of tensors (a data set, first dimension = samples; minibatches
            are drawn shuffled, without replacement, with ``seed``), a single tensor,
            a ``DataLoader``, or any re-iterable of batches (cycled).
        loss_fn: ``loss_fn(model, batch) -> scalar tensor``, the *mean* per-sample
            negative log-likelihood of the batch (e.g. ``F.cross_entropy(model(x), y)``;
            for regression ``0.5·((model(x) − y)²).sum(1).mean()``, the unit-variance
            Gaussian NLL: ``F.mse_loss`` averages over outputs too, changing the
            temperature). ``batch`` is whatever ``data`` yields.
        **options: see :class:`LLCOptions`:

            * ``num_chains=4``, ``num_draws=200``, ``burnin=200`` (burn-in excluded
              from the average; devinterp warns when draws exceed burn-in).
            * ``nbeta=None`` → B/ln B for batch size B (devinterp 1.3.2's default). With
              the paired baseline it lands within ~15 % of the closed form on
              reduced-rank regression (rank ≥ 1; rank 0 runs 10–25 % low, mostly from
              γ = 1 confining its flat directions: docs/llc.md "Rank 0"), and within
              3x of the default step it moved the estimate −12…+13 %, where n/ln n
              (β = 1/ln n, the paper's WBIC temperature) moved it −17…+55 %: larger nβ
              amplifies minibatch gradient noise (docs/llc.md). The value used is in
              the result.
            * ``step_size=None`` → 0.02/nβ (ε·nβ measured on reduced-rank regression;
              run :func:`calibrate` for other models; a three-layer linear net needed
              0.003/nβ, where 0.02/nβ read 2x too high with an acceptance warning).
            * ``localization=1.0`` (γ; devinterp's own RRR test uses 1.0 — with
              nβ ≈ 10…80 a γ of 100, common in its notebooks, confines the chains and
              underestimates by 50 %+; at RRR rank 0 even γ = 1 reads 5–8 points
              below γ = 0.1, which the ground-truth tests use).
            * ``baseline="paired"``: L_b(w*) on each step's minibatch (one extra forward
              pass per step, shared by all chains); a number: that fixed L(w*)
              (devinterp's convention when given its ``init_loss``).
            * ``seed=0``: noise, minibatch order, dropout; the run is deterministic.
            * ``batch_size`` (tensor data; default min(n, 128)), ``device`` (default:
              the model's), ``keep_traces=False``, ``vectorize=None`` (on a CPU one chain
              at a time by autograd, as fast or faster there; on an accelerator all
              chains in one ``vmap``, falling back to the loop when vmap fails on the
              first step); ``True``/``False`` force either path.
            * ``threads=None`` → ``torch.get_num_threads()`` on a CPU (1 with dropout
              in training mode, or on an accelerator): with 2 or more, blocks of
              chains run in parallel threads, beside a thread that draws the next
              step's noise when the gradients are cheap (two extra no-grad forward
              passes on the first batch, on a copy, time that; docs/llc.md); every
              chain has its own noise generator seeded from (seed, chain), so the
              numbers do not depend on it.

    Returns:
        :class:`LLCResult`; check ``result.warnings`` before trusting ``result.mean``.

    Raises:
        ValueError: an invalid option, data that cannot be batched, a non-scalar loss,
            or nβ that cannot be defaulted (batch size unknown).
    """
    opts = LLCOptions.from_kwargs(**options)
    info = describe(data, opts.batch_size)
    nbeta = opts.nbeta if opts.nbeta is not None else default_nbeta(info.batch_size)
    step = opts.step_size if opts.step_size is not None else STEP_TIMES_NBETA / nbeta
    device = _device(model, opts.device)
    settings = SamplerSettings(
        num_chains=opts.num_chains,
        num_steps=opts.burnin + opts.num_draws,
        step_size=step,
        localization=opts.localization,
        nbeta=nbeta,
        seed=opts.seed,
        vectorize=opts.vectorize,
        threads=_threads(model, opts.threads, device),
    )
    stream = (to_device(b, device) for b in batches(data, info.batch_size, opts.seed))
    forked = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=forked, device_type=device.type):
        torch.manual_seed(opts.seed)
        traces = run_chains(model, stream, loss_fn, settings, device)
    return _summarize(traces, opts, settings, info)


def _device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    if device is not None:
        return torch.device(device)
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")


def _threads(model: nn.Module, threads: int | None, device: torch.device) -> int:
    """The thread budget: as given; by default torch's intra-op threads on a CPU, but 1
    when dropout is active (its draws from torch's global generator would interleave in
    an arbitrary order across threads) and on accelerators."""
    if threads is not None:
        return threads
    stochastic = any(
        m.training and isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules()
    )
    return torch.get_num_threads() if device.type == "cpu" and not stochastic else 1


def _summarize(traces: Traces, opts: LLCOptions, s: SamplerSettings, info: DataInfo) -> LLCResult:
    """Per-chain LLCs, diagnostics and warnings from the draws after burn-in."""
    burn = opts.burnin
    losses = traces.losses[:, burn:]
    if isinstance(opts.baseline, str):
        base = traces.baselines[burn:]
    else:
        base = np.full(losses.shape[1], float(opts.baseline))
    draws = s.nbeta * (losses - base[None, :])
    per_chain = draws.mean(axis=1)
    free_walk_sq = s.step_size * traces.num_sampled * (burn + (opts.num_draws - 1) / 2)
    diag = diagnose(draws, traces.sq_dist[:, burn:], traces.log_accept[:, burn:], free_walk_sq)
    finite = per_chain[np.isfinite(per_chain)]
    return LLCResult(
        mean=float(finite.mean()) if finite.size else float("nan"),
        std=float(finite.std(ddof=1)) if finite.size > 1 else float("nan"),
        per_chain=tuple(float(v) for v in per_chain),
        nbeta=s.nbeta,
        step_size=s.step_size,
        localization=s.localization,
        num_chains=s.num_chains,
        num_draws=opts.num_draws,
        burnin=burn,
        batch_size=info.batch_size,
        num_samples=info.num_samples,
        baseline="paired" if isinstance(opts.baseline, str) else "fixed",
        baseline_loss=float(base.mean()),
        diagnostics=diag,
        warnings=warnings_for(diag, s.num_chains, Thresholds()),
        vectorized=traces.vectorized,
        fallback_reason=traces.fallback_reason,
        threads=traces.threads,
        loss_traces=losses.copy() if opts.keep_traces else None,
        baseline_trace=base.copy() if opts.keep_traces else None,
    )


@dataclass(frozen=True)
class Calibration:
    """A suggested (step size, nβ) and the table of short runs it was chosen from.

    Attributes:
        step_size, nbeta: the suggestion (pass both to :func:`estimate`).
        rows: one dict per tried setting: step_size, nbeta, llc, llc_std, acceptance,
            drift, stationarity_z, r_hat, travel, diverged_chains, warnings (count), ok.
        reason: why this row was chosen, in words.
    """

    step_size: float
    nbeta: float
    rows: tuple[dict[str, Any], ...]
    reason: str

    def to_frame(self) -> pd.DataFrame:
        """The table of tried settings, one row each."""
        return pd.DataFrame(list(self.rows))


def calibrate(
    model: nn.Module,
    data: Any,
    loss_fn: LossFn,
    *,
    step_sizes: tuple[float, ...] | None = None,
    nbetas: tuple[float, ...] | None = None,
    num_chains: int = 2,
    num_draws: int = 100,
    burnin: int = 100,
    **options: Any,
) -> Calibration:
    """Sweep step size × nβ with short runs and suggest a setting (never prints).

    Defaults: nβ = B/ln B alone; step sizes 0.02/nβ × (1/30, 1/10, 1/3, 1, 3, 10).
    A setting is *ok* when its run raised no warning (no divergence, acceptance
    ≥ 0.45, stationary, chains agree, still moving). Among ok settings the one whose
    minibatch MALA acceptance is closest to 0.574, the optimum for MALA (Roberts &
    Rosenthal 1998), is suggested; with none ok, the one with the fewest warnings.
    ``options`` are passed to :func:`estimate` (localization, seed, batch_size...).
    """
    if step_sizes is not None and not step_sizes:
        raise ValueError("step_sizes: must not be empty")
    clash = sorted({"step_size", "nbeta"} & set(options))
    if clash:
        raise ValueError(f"calibrate sweeps {', '.join(clash)}: pass step_sizes/nbetas instead")
    if nbetas is None:
        nbetas = (default_nbeta(describe(data, options.get("batch_size")).batch_size),)
    rows = []
    for nbeta in nbetas:
        grid = step_sizes or tuple(
            STEP_TIMES_NBETA / nbeta * f for f in (1 / 30, 0.1, 1 / 3, 1, 3, 10)
        )
        for step in grid:
            res = estimate(
                model,
                data,
                loss_fn,
                step_size=step,
                nbeta=nbeta,
                num_chains=num_chains,
                num_draws=num_draws,
                burnin=burnin,
                **options,
            )
            d = res.diagnostics
            rows.append(
                {
                    "step_size": step,
                    "nbeta": nbeta,
                    "llc": res.mean,
                    "llc_std": res.std,
                    "acceptance": d.acceptance,
                    "drift": d.drift,
                    "stationarity_z": d.stationarity_z,
                    "r_hat": d.r_hat,
                    "travel": d.travel,
                    "diverged_chains": d.diverged_chains,
                    "warnings": len(res.warnings),
                    "ok": res.trustworthy,
                }
            )
    return _choose(tuple(rows))


def _choose(rows: tuple[dict[str, Any], ...]) -> Calibration:
    def distance(row: dict[str, Any]) -> float:
        acc = row["acceptance"]
        return abs(acc - MALA_OPTIMAL_ACCEPTANCE) if np.isfinite(acc) else math.inf

    ok = [r for r in rows if r["ok"]]
    if ok:
        best = min(ok, key=distance)
        reason = (
            f"{len(ok)} of {len(rows)} settings raised no warning; this one has the "
            f"acceptance ({best['acceptance']:.2f}) closest to MALA's optimum 0.574"
        )
    else:
        best = min(rows, key=lambda r: (r["warnings"], distance(r)))
        reason = (
            f"no setting passed every check; this one has the fewest warnings "
            f"({best['warnings']}): run estimate() with it and read its warnings"
        )
    return Calibration(best["step_size"], best["nbeta"], rows, reason)
