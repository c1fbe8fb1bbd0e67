"""The per-matrix pipeline shared by scan and compare: slices -> spectra -> metric row."""

from __future__ import annotations

import dataclasses
import zlib
from typing import Any, cast

import numpy as np
import torch

from layerscope import fast_traps, spectrum
from layerscope import metrics as registry
from layerscope.adapters import LayerWeights
from layerscope.matrices import MIN_EVALS, MatrixPlan
from layerscope.options import ScanOptions

RowAndSpectrum = tuple[dict[str, Any], Any]
# WeightWatcher pools this many shuffles when a layer has fewer than 100 eigenvalues.
SMALL_LAYER_EVALS = 100
SMALL_LAYER_REPLICAS = 5


def _seed_for(seed: int, name: str) -> int:
    """Per-matrix seed: independent of scan order and of ``jobs``."""
    return int(np.random.SeedSequence([seed, zlib.crc32(name.encode())]).generate_state(1)[0])


# Eigenvalues of a weight update below λ_max·this are numerical zeros (a float64 Gram
# carries round-off ≈ M·eps·λ_max ≈ 1e-12·λ_max for M up to ~10⁴).
RELATIVE_ZERO = 1e-12


def relative_zero_thresh(evals: Any) -> float:
    """Zero threshold for an update's spectrum: λ_max·1e-12."""
    return float(np.max(evals)) * RELATIVE_ZERO


def _numpy(slices: torch.Tensor) -> np.ndarray[Any, np.dtype[Any]]:
    """The slices as a CPU numpy array (float32 unless stored in float64)."""
    dtype = torch.float64 if slices.dtype == torch.float64 else torch.float32
    return slices.detach().to(device="cpu", dtype=dtype).numpy()


def _too_small(plan: MatrixPlan) -> str | None:
    if plan.M * plan.num_slices < MIN_EVALS:
        return f"too small: {plan.M * plan.num_slices} eigenvalues < {MIN_EVALS}"
    return None


def identity(plan: MatrixPlan, dtype: str) -> dict[str, Any]:
    """The identifier and provenance columns of a result row."""
    return {
        "name": plan.name,
        "kind": plan.kind,
        "N": plan.N,
        "M": plan.M,
        "num_slices": plan.num_slices,
        "param": plan.param,
        "dtype": dtype,
    }


class Analyser:
    """Runs the per-matrix pipeline (options and metric specs fixed for a scan or compare)."""

    def __init__(self, opts: ScanOptions) -> None:
        self.opts = opts
        self.specs = registry.resolve(opts.metrics)
        self.fit_options = opts.fit_options
        if not self.fit_options.is_default and any(s.name == "powerlaw" for s in self.specs):
            self.specs = (*self.specs, registry.FIT_EXTRAS)
        self.shuffle = any(s.needs_shuffle for s in self.specs)
        self.vectors = any(s.needs_vectors for s in self.specs)
        self.needs_matrix = any(s.needs_matrix for s in self.specs)
        self.device = spectrum.resolve_device(opts.device)
        self.precision = cast(spectrum.Precision, opts.precision)
        self.permutations = fast_traps.SharedPermutations(opts.seed)

    def eig(
        self, slices: torch.Tensor, scale: float, precision: str | None = None
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """Pooled eigenvalues of the slices' WᵀW, times ``scale`` (conv normalisation)."""
        prec = cast(spectrum.Precision, precision or self.precision)
        return spectrum.eigenvalues(slices, prec, self.device) * scale

    def plan_eig(
        self, plan: MatrixPlan, slices: torch.Tensor, precision: str | None = None
    ) -> np.ndarray[Any, np.dtype[np.float64]]:
        """A plan's eigenvalues: its own ``reading`` (conv2d_fft) or the Gram route."""
        if plan.reading is None:
            return self.eig(slices, plan.eig_scale, precision)
        array = slices.detach().to(device="cpu", dtype=torch.float64).numpy()
        if not np.isfinite(array).all():
            raise spectrum.NonFiniteError("non-finite values (NaN/Inf)")
        return plan.reading(array) * plan.eig_scale

    def spectra(self, plan: MatrixPlan, slices: torch.Tensor) -> registry.LayerSpectra:
        """Everything the metrics read about one matrix (shuffled copies when needed)."""
        evals = self.plan_eig(plan, slices)
        matrix = _numpy(slices) if self.needs_matrix else None
        if not self.shuffle:
            return registry.LayerSpectra(
                evals,
                plan.N,
                plan.M,
                fit_options=self.fit_options,
                matrix=matrix,
                eig_scale=plan.eig_scale,
            )
        shuffled = self.shuffled(plan, slices, evals.size)
        pooled = np.sort(np.concatenate(shuffled))
        return registry.LayerSpectra(
            evals,
            plan.N,
            plan.M,
            pooled,
            shuffled[0],
            fit_options=self.fit_options,
            matrix=matrix,
            eig_scale=plan.eig_scale,
        )

    def shuffled(self, plan: MatrixPlan, slices: torch.Tensor, num_evals: int) -> list[Any]:
        """Eigenvalues of element-shuffled copies of the slices (several for small layers).

        ``traps="fast"`` estimates them (:mod:`layerscope.fast_traps`) for a single matrix
        with M ≥ ``fast_traps.MIN_SIZE``; smaller ones cost little and stay exact.
        """
        seed = _seed_for(self.opts.seed, plan.name)
        single = plan.reading is None and slices.shape[0] == 1
        if self.opts.traps == "fast" and single and plan.M >= fast_traps.MIN_SIZE:
            shuffled = self.permutations.shuffle(slices[0], seed).to(self.device)
            fast = fast_traps.fast_spectrum(shuffled, torch.Generator().manual_seed(seed))
            return [fast.evals * plan.eig_scale]
        gen = torch.Generator().manual_seed(seed)
        replicas = SMALL_LAYER_REPLICAS if num_evals < SMALL_LAYER_EVALS else 1
        # The shuffled spectrum only feeds an MP fit, a count above its edge and a JS
        # distance: float32 Gram and solver are ample and halve the second decomposition.
        return [
            self.plan_eig(plan, spectrum.shuffle_entries(slices, gen), "float32")
            for _ in range(replicas)
        ]

    def analyse(
        self, plan: MatrixPlan, slices: torch.Tensor, relative_zero: bool = False
    ) -> RowAndSpectrum:
        """Metrics row (with status and verdict) and eigenvalues of one plan's slices.

        ``relative_zero``: treat eigenvalues below λ_max·1e-12 (not the absolute 1e-5) as
        zero, for weight updates whose overall scale carries no meaning.
        """
        row, spectra = self.analyse_spectra(plan, slices, relative_zero)
        return row, None if spectra is None else spectra.evals

    def analyse_spectra(
        self, plan: MatrixPlan, slices: torch.Tensor, relative_zero: bool = False
    ) -> tuple[dict[str, Any], registry.LayerSpectra | None]:
        """As :meth:`analyse`, returning the spectra (incl. the shuffled ones) themselves."""
        bad = _too_small(plan)
        if bad is not None:
            return {"status": bad}, None
        try:
            spectra = self.spectra(plan, slices)
        except spectrum.NonFiniteError as exc:
            return {"status": str(exc)}, None
        if not spectra.evals.any():
            return {"status": "all zeros"}, None
        if self.vectors:
            vec_evals, vecs = spectrum.eigenvectors(slices, self.device)
            spectra = dataclasses.replace(
                spectra, vector_evals=vec_evals * plan.eig_scale, vectors=vecs
            )
        if relative_zero:
            spectra = dataclasses.replace(spectra, zero_thresh=relative_zero_thresh(spectra.evals))
        row, _ = self.rate(spectra, self.specs)
        return row, spectra

    def rate(
        self, spectra: registry.LayerSpectra, specs: tuple[registry.MetricSpec, ...]
    ) -> RowAndSpectrum:
        """Run ``specs`` on a spectrum and add status, verdict, reason and warning."""
        if np.count_nonzero(spectra.evals > spectra.zero_thresh) < 2:
            # No power law to fit, but the eigenvalues are valid (e.g. a rank-1 update).
            status = (
                f"degenerate spectrum: fewer than 2 eigenvalues above {spectra.zero_thresh:.0e}"
            )
            return {"status": status}, spectra.evals
        row = registry.compute_row(spectra, specs)
        verdict, reason = registry.verdict(row)
        row.update(
            status="ok", verdict=verdict, reason=reason, warning=registry.warning(row["alpha"])
        )
        return row, spectra.evals

    def layer(
        self, layer: LayerWeights, plans: list[MatrixPlan]
    ) -> list[tuple[dict[str, Any], registry.LayerSpectra | None]]:
        """Load one tensor and analyse every matrix planned from it (rows and spectra)."""
        try:
            tensor = layer.load()
        except (ValueError, RuntimeError, OSError) as exc:
            msg = f"corrupt tensor: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            return [({"status": msg}, None) for _ in plans]
        out = []
        for plan in plans:
            row, spectra = self.analyse_spectra(plan, plan.extract(tensor))
            ident = identity(plan, layer.dtype)
            out.append(({**ident, **row}, spectra))
        return out
