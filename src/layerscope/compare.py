"""Fine-tune audit: a tuned model against its base, or a LoRA adapter alone. Never prints.

For each matrix present in both models (matched by name) the update
ΔW = W_tuned − W_base gets the full per-layer metric set (its alpha says whether the
update carries learned structure, alpha ≲ 6, or is near-random, alpha > 6: compute
spent without learning), plus:

    rel_update     = ‖ΔW‖_F / ‖W_base‖_F
    spectral_ratio = ‖ΔW‖₂ / ‖W_base‖₂
    update_rank, update_effective_rank, stable_rank (of ΔW)
    base_alpha, tuned_alpha, delta_alpha = tuned_alpha − base_alpha

Matrices whose update is zero (or below ``untouched_tol`` relative) are ``untouched``;
identical/near-identical matrices within one model are reported as duplicated. An
update of rank r < 10 (``powerlaw.TINY_TAIL``) has too few non-zero eigenvalues for a
tail fit: its alpha and the columns derived from it are left empty and its verdict is
``low-rank`` ("rank 8: too few eigenvalues for a tail fit"), not a shaky alpha.

A PEFT LoRA directory is analysed through its r×r core (``functional.delta``), with or
without the base model. With the base, each target also gets ``base_alpha`` (the base
layer W) and ``tuned_alpha`` (the merged layer W + s·B·A, as PEFT's
``merge_and_unload`` forms it), so the table says whether the adapter made the layer
worse; ``lora_layer_alpha=False`` skips those two dense spectra.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import numpy as np
import pandas as pd
import torch

from layerscope import spectrum
from layerscope.adapters import LayerWeights, Source, open_source
from layerscope.adapters.peft import LoraFactors, is_adapter_dir, open_lora
from layerscope.analysis import Analyser, identity, relative_zero_thresh
from layerscope.compare_result import (
    DUPLICATED_COLUMNS,
    MISMATCH_COLUMNS,
    CompareResult,
    rank_worst,
    summarize_compare,
)
from layerscope.duplicates import Sketch, find_duplicates, sketch
from layerscope.functional import delta, norms
from layerscope.functional.powerlaw import TINY_TAIL, fit_power_law
from layerscope.matrices import MatrixPlan, Skipped, plan_matrices
from layerscope.metrics import BY_NAME, LayerSpectra
from layerscope.options import CompareOptions
from layerscope.scan import ProgressEvent

Row = dict[str, Any]

# Columns that rest on the power-law tail fit: empty when an update has too few eigenvalues.
TAIL_COLUMNS = (*BY_NAME["powerlaw"].columns, "alpha_weighted", "log_alpha_norm", "ERG_gap")
LOW_RANK = "low-rank"


def _alpha(evals: np.ndarray[Any, np.dtype[np.float64]]) -> float:
    try:
        return fit_power_law(evals).alpha
    except ValueError:  # fewer than two non-zero eigenvalues
        return float("nan")


def _no_tail_fit(row: Row, rank: int) -> Row:
    """The row of an update with fewer than ``TINY_TAIL`` non-zero eigenvalues: no alpha.

    A tail fit on r < 10 values gives an alpha whose error bar (α − 1)/√r is as wide as
    the HTSR bands themselves, so no alpha and no band verdict are reported.
    """
    # No fit at all (fit_quality None), so gates counting shaky fits do not count it.
    blank = {c: float("nan") for c in TAIL_COLUMNS if c in row or c == "alpha"}
    out = {**row, **blank, "fit_quality": None}
    out.update(
        status="ok",
        verdict=LOW_RANK,
        reason=f"rank {rank}: too few eigenvalues for a tail fit",
        warning="",
    )
    return out


def _update_columns(d_ev: Any, base_ev: Any, N: int, rel: float) -> Row:
    return {
        "rel_update": rel,
        "spectral_ratio": delta.spectral_ratio(d_ev, base_ev),
        "update_rank": norms.numerical_rank(d_ev, N),
        "update_effective_rank": delta.effective_rank(d_ev),
    }


class _Comparer:
    def __init__(self, opts: CompareOptions) -> None:
        self.opts = opts
        self.analyser = Analyser(opts)
        # Updates are often rank-deficient (λ_min ≈ 0), where "auto" would only waste a
        # float32 attempt before falling back: run them in float64 straight away.
        exact = "float64" if opts.precision == "auto" else opts.precision
        self.delta_analyser = Analyser(replace(opts, precision=exact))
        self.sketches: dict[str, list[Sketch]] = {"base": [], "tuned": []}

    def pair(self, plan: MatrixPlan, wb: torch.Tensor, wt: torch.Tensor) -> Row:
        """One matched matrix: layer alphas, update metrics, untouched check."""
        eig = self.analyser.eig
        base_ev, tuned_ev = eig(wb, plan.eig_scale), eig(wt, plan.eig_scale)
        base_alpha, tuned_alpha = _alpha(base_ev), _alpha(tuned_ev)
        row: Row = {
            "base_alpha": base_alpha,
            "tuned_alpha": tuned_alpha,
            "delta_alpha": tuned_alpha - base_alpha,
        }
        d = wt.to(torch.float64) - wb.to(torch.float64)
        base_norm = float(torch.linalg.vector_norm(wb.to(torch.float64)))
        rel = float(torch.linalg.vector_norm(d)) / base_norm if base_norm else float("inf")
        if rel <= self.opts.untouched_tol:
            row.update(
                status="untouched",
                rel_update=rel,
                verdict="untouched",
                reason=f"update ‖ΔW‖/‖W‖ = {rel:.1e} ≤ {self.opts.untouched_tol:g}",
            )
            return row
        metrics, d_ev = self.delta_analyser.analyse(plan, d, relative_zero=True)
        row.update(metrics)
        if d_ev is not None:
            row.update(_update_columns(d_ev, base_ev, plan.N, rel))
            if row["update_rank"] < TINY_TAIL:
                return _no_tail_fit(row, row["update_rank"])
        return row

    def tensors(
        self, base: LayerWeights, tuned: LayerWeights, plans: list[MatrixPlan]
    ) -> list[Row]:
        tb, tt = base.load(), tuned.load()
        rows = []
        for plan in plans:
            wb, wt = plan.extract(tb), plan.extract(tt)
            if self.opts.duplicates:
                self.sketches["base"].append(sketch(plan.name, wb, partial(_reload, base, plan)))
                self.sketches["tuned"].append(sketch(plan.name, wt, partial(_reload, tuned, plan)))
            try:
                row = self.pair(plan, wb, wt)
            except spectrum.NonFiniteError as exc:
                row = {"status": str(exc), "verdict": "unknown"}
            rows.append({**identity(plan, tuned.dtype), **row})
        return rows

    def lora(self, f: LoraFactors, base: LayerWeights | None) -> Row:
        """One LoRA target through the r×r core; the base (if any) for norms and alphas.

        ‖W‖_F is a sum of squares and ‖W‖₂ a power iteration; the only dense spectra
        are those of W and W + s·B·A for ``base_alpha``/``tuned_alpha``
        (``lora_layer_alpha``).
        """
        B = f.B.load().to(torch.float64)
        A = f.A.load().to(torch.float64)
        out, inp = B.shape[0], A.shape[1]
        N, M = max(out, inp), min(out, inp)
        ev = delta.lowrank_eigenvalues(B.numpy(), A.numpy(), f.scale, M)
        row: Row = {
            "name": f.base_name,
            "kind": "lora",
            "N": N,
            "M": M,
            "num_slices": 1,
            "param": f.module,
            "dtype": f.A.dtype,
            "lora_rank": f.rank,
            "lora_scale": f.scale,
        }
        base_fro2 = None
        if base is not None:
            wb = base.load()
            base_fro2 = float(torch.linalg.vector_norm(wb, dtype=torch.float64) ** 2)
            row["spectral_ratio"] = float(np.sqrt(ev[-1] / spectrum.top_eigenvalue(wb)))
            row["rel_update"] = float(np.sqrt(ev.sum() / base_fro2)) if base_fro2 else float("inf")
            if self.opts.lora_layer_alpha:
                row.update(self.merged_alphas(wb, _dense_update(f, B, A, tuple(wb.shape))))
        total = float(ev.sum())
        if total == 0.0 or (base_fro2 and np.sqrt(total / base_fro2) <= self.opts.untouched_tol):
            row.update(status="untouched", verdict="untouched", reason="LoRA update is zero")
            return row
        rank = norms.numerical_rank(ev, N)
        row.update(update_rank=rank, update_effective_rank=delta.effective_rank(ev))
        # From the factors we have the spectrum only: no shuffled copy, no eigenvectors,
        # no matrix to window.
        skip = ("needs_shuffle", "needs_vectors", "needs_matrix")
        specs = tuple(s for s in self.analyser.specs if not any(getattr(s, k) for k in skip))
        spectra = LayerSpectra(
            ev, N, M, zero_thresh=relative_zero_thresh(ev), fit_options=self.analyser.fit_options
        )
        metrics, _ = self.analyser.rate(spectra, specs)
        row.update(metrics)
        return _no_tail_fit(row, rank) if rank < TINY_TAIL else row

    def merged_alphas(self, wb: torch.Tensor, update: torch.Tensor) -> Row:
        """alpha of the base layer W and of the merged layer W + ΔW, and their change."""
        base_alpha = _alpha(self.analyser.eig(wb, 1.0))
        tuned_alpha = _alpha(self.analyser.eig(wb.to(torch.float64) + update, 1.0))
        return {
            "base_alpha": base_alpha,
            "tuned_alpha": tuned_alpha,
            "delta_alpha": tuned_alpha - base_alpha,
        }


def _dense_update(
    f: LoraFactors, B: torch.Tensor, A: torch.Tensor, shape: tuple[int, ...]
) -> torch.Tensor:
    """ΔW = s·B·A laid out like the base weight (transposed for embeddings and for
    ``fan_in_fan_out`` layers such as GPT-2's Conv1D, as PEFT's ``get_delta_weight``)."""
    update = f.scale * (B @ A)
    update = update.T if f.transposed else update
    if tuple(update.shape) != shape:
        raise ValueError(
            f"{f.base_name}: the LoRA update has shape {tuple(update.shape)}, "
            f"the base weight {shape}"
        )
    return update


def _reload(layer: LayerWeights, plan: MatrixPlan) -> torch.Tensor:
    return plan.extract(layer.load())


@dataclass
class _Matching:
    pairs: list[tuple[LayerWeights, LayerWeights, list[MatrixPlan]]]
    only_in_base: list[str]
    only_in_tuned: list[str]
    shape_mismatch: list[tuple[str, str, str]]


def _common_prefix(names: list[str]) -> str:
    """A leading ``component.`` shared by ≥ 75% of names (e.g. ``bert.``, ``model.``), or ''."""
    firsts = [n.split(".", 1)[0] + "." for n in names if "." in n]
    if not firsts:
        return ""
    top = max(set(firsts), key=firsts.count)
    return top if firsts.count(top) >= 0.75 * len(names) else ""


def _align(base_names: list[str], tuned_names: list[str]) -> tuple[str, str]:
    """Prefixes to strip from each side so that names match (task heads add ``bert.`` etc.).

    Names are used as they are when at least half of the smaller side already matches.
    """
    overlap = len(set(base_names) & set(tuned_names))
    if overlap >= 0.5 * min(len(base_names), len(tuned_names)):
        return "", ""
    best = ("", "", overlap)
    for side, prefix in (
        ("base", _common_prefix(base_names)),
        ("tuned", _common_prefix(tuned_names)),
    ):
        if not prefix:
            continue
        strip_b, strip_t = (prefix, "") if side == "base" else ("", prefix)
        keys_b = {n.removeprefix(strip_b) for n in base_names}
        keys_t = {n.removeprefix(strip_t) for n in tuned_names}
        if len(keys_b & keys_t) > best[2]:
            best = (strip_b, strip_t, len(keys_b & keys_t))
    return best[0], best[1]


def _match(base: Source, tuned: Source) -> _Matching:
    """Pair tensors by name (after stripping a wrapper prefix one side has, see :func:`_align`)."""
    base_layers, tuned_layers = list(base), list(tuned)
    strip_b, strip_t = _align([lw.name for lw in base_layers], [lw.name for lw in tuned_layers])
    by_name = {lw.name.removeprefix(strip_b): lw for lw in base_layers}
    seen: set[str] = set()
    m = _Matching([], [], [], [])
    for lw in tuned_layers:
        key = lw.name.removeprefix(strip_t)
        b = by_name.get(key)
        if b is None:
            m.only_in_tuned.append(lw.name)
            continue
        seen.add(key)
        if b.shape != lw.shape:
            m.shape_mismatch.append((lw.name, str(b.shape), str(lw.shape)))
            continue
        plans = plan_matrices(lw)
        if not isinstance(plans, Skipped):
            m.pairs.append((b, lw, plans))
    m.only_in_base = [lw.name for k, lw in by_name.items() if k not in seen]
    return m


def _progress(cb: Callable[[ProgressEvent], None] | None, done: int, total: int, name: str) -> None:
    if cb is not None:
        cb(ProgressEvent(done, total, name))


def _dense(c: _Comparer, base: Any, tuned: Any, cb: Any) -> tuple[list[Row], _Matching]:
    allow = c.opts.allow_unsafe_pickle
    m = _match(
        open_source(base, allow_unsafe_pickle=allow), open_source(tuned, allow_unsafe_pickle=allow)
    )
    rows: list[Row] = []
    for i, (b, t, plans) in enumerate(m.pairs):
        rows.extend(c.tensors(b, t, plans))
        _progress(cb, i + 1, len(m.pairs), t.name)
    return rows, m


def _lora(c: _Comparer, base: Any, adapter: Any, cb: Any) -> tuple[list[Row], _Matching]:
    factors = open_lora(adapter, allow_unsafe_pickle=c.opts.allow_unsafe_pickle)
    by_name: dict[str, LayerWeights] = {}
    if base is not None:
        by_name = {
            lw.name: lw for lw in open_source(base, allow_unsafe_pickle=c.opts.allow_unsafe_pickle)
        }
    m = _Matching([], [], [], [])
    rows = []
    for i, f in enumerate(factors):
        b = by_name.get(f.base_name)
        if base is not None and b is None:
            m.only_in_tuned.append(f.base_name)
        rows.append(c.lora(f, b))
        _progress(cb, i + 1, len(factors), f.base_name)
    return rows, m


def compare(
    base: Any,
    tuned: Any,
    *,
    progress: Callable[[ProgressEvent], None] | None = None,
    **options: Any,
) -> CompareResult:
    """Audit a fine-tune: analyse ΔW = tuned − base per matrix.

    Args:
        base: the base model (any source :func:`layerscope.scan` accepts), or ``None``
            when ``tuned`` is a PEFT LoRA adapter directory analysed on its own.
        tuned: the fine-tuned model, a fully merged model, or a PEFT adapter directory
            (``adapter_config.json``), whose updates s·B·A are analysed through the r×r core.
        progress: called after each matched tensor.
        **options: :class:`layerscope.options.CompareOptions` fields: the scan options
            (``metrics``, ``seed``, ``device``, ``precision``...) plus ``untouched_tol``
            (relative update below which a matrix is untouched, default 1e-6),
            ``duplicate_tol`` (relative distance for duplicated matrices, default 1e-4) and
            ``duplicates`` (look for them, default True) and ``lora_layer_alpha`` (with a
            base and a LoRA adapter, also fit the alpha of each base layer and of the
            merged layer W + s·B·A; default True; False skips those dense spectra).
    """
    opts = CompareOptions.from_kwargs(**options)
    started = time.perf_counter()
    comparer = _Comparer(opts)
    lora = is_adapter_dir(tuned)
    if base is None and not lora:
        raise ValueError(
            "compare needs a base model unless the tuned side is a PEFT adapter directory"
        )
    rows, matching = (_lora if lora else _dense)(comparer, base, tuned, progress)
    dups = [
        (side, a, b, d)
        for side, sk in comparer.sketches.items()
        for a, b, d in find_duplicates(sk, opts.duplicate_tol)
    ]
    layers = _frame(rows)
    meta = {
        "base": _describe(base),
        "tuned": _describe(tuned),
        "mode": "lora" if lora else "dense",
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {k: v for k, v in asdict(opts).items() if k != "allow_unsafe_pickle"},
        "elapsed_s": round(time.perf_counter() - started, 3),
    }
    duplicated = pd.DataFrame(dups, columns=list(DUPLICATED_COLUMNS))
    shape_mm = pd.DataFrame(matching.shape_mismatch, columns=list(MISMATCH_COLUMNS))
    summary = summarize_compare(
        layers, duplicated, matching.only_in_base, matching.only_in_tuned, shape_mm
    )
    summary["worst"] = rank_worst(layers)
    return CompareResult(
        layers, duplicated, matching.only_in_base, matching.only_in_tuned, shape_mm, summary, meta
    )


def _describe(source: Any) -> str | None:
    if source is None:
        return None
    return str(source) if isinstance(source, str | os.PathLike) else type(source).__name__


def _frame(rows: list[Row]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows)
    frame.insert(0, "layer_id", range(len(frame)))
    return frame
