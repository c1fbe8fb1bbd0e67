"""The metric registry: one :class:`MetricSpec` per group of columns.

Adding a metric = one pure function in ``functional/`` + one entry here + one test
against a reference (docs/metrics.md). Each spec's ``compute`` receives the layer's
spectra and the columns computed so far (specs run in registry order, so a spec may
read the columns of the specs it ``needs``) and returns its own columns.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from layerscope.functional import erg, farms, fingers, norms, powerlaw, rmt, vectors

FloatArray = NDArray[np.float64]
Row = dict[str, Any]

# HTSR bands (Martin & Mahoney 2021): alpha in [2, 6] is well trained.
ALPHA_OVER = 2.0
ALPHA_UNDER = 6.0
# WeightWatcher's count of eigenvalues at or below this is ``weak_rank_loss``.
WEAK_RANK_TOL = 1e-6


@dataclass(frozen=True)
class LayerSpectra:
    """Everything a metric may read about one analysed matrix.

    Attributes:
        evals: pooled eigenvalues of WᵀW, sorted ascending, conv scaling applied.
        N, M: matrix dimensions (N ≥ M) of one slice.
        shuffled: pooled eigenvalues of element-shuffled copies (``None`` unless a
            metric needs them); several replicas for small matrices.
        shuffled_single: eigenvalues of one shuffled copy (same length as ``evals``).
        zero_thresh: eigenvalues at or below it are zero for the power-law fit:
            WeightWatcher's absolute 1e-5 for layers; relative to λ_max for weight
            updates, whose scale is arbitrary (see ``compare``).
        fit_options: how the ``powerlaw`` group fits the tail (``fit``/``fix_fingers``
            of :class:`layerscope.functional.fingers.FitOptions`).
        vector_evals, vectors: eigenvalues (conv scaling applied) and unit eigenvectors
            (columns) of every slice's WᵀW, for metrics with ``needs_vectors``.
        matrix: the analysed slices themselves, (slices, rows, cols) as stored
            (``None`` unless a metric needs them, e.g. FARMS windows).
        eig_scale: factor the scan applies to the eigenvalues of ``matrix``.
    """

    evals: FloatArray
    N: int
    M: int
    shuffled: FloatArray | None = None
    shuffled_single: FloatArray | None = None
    zero_thresh: float = powerlaw.EVALS_THRESH
    fit_options: fingers.FitOptions = fingers.DEFAULT_FIT
    vector_evals: FloatArray | None = None
    vectors: FloatArray | None = None
    matrix: NDArray[Any] | None = None
    eig_scale: float = 1.0

    @property
    def Q(self) -> float:
        """Aspect ratio Q = N/M ≥ 1."""
        return self.N / self.M


@dataclass(frozen=True)
class MetricSpec:
    """A group of result columns computed together.

    Attributes:
        name: group name used in ``metrics=[...]``.
        columns: the columns it writes, in order.
        compute: (spectra, row so far) -> {column: value}.
        default: part of the default (fast) metric set.
        needs: groups that must run before it.
        needs_shuffle: requires the ESD of the element-shuffled matrix (a second
            eigendecomposition per layer).
        needs_vectors: requires the eigenvectors of WᵀW (an eigendecomposition with vectors).
        explicit: computed only when named, not by ``"all"`` (costly, rarely wanted).
        needs_matrix: reads the matrix itself (``LayerSpectra.matrix``), not only its
            eigenvalues.
    """

    name: str
    columns: tuple[str, ...]
    compute: Callable[[LayerSpectra, Mapping[str, Any]], Row]
    default: bool = True
    needs: tuple[str, ...] = ()
    needs_shuffle: bool = False
    needs_vectors: bool = False
    explicit: bool = False
    needs_matrix: bool = False


def _esd(s: LayerSpectra, row: Mapping[str, Any]) -> Row:
    rank = norms.numerical_rank(s.evals, s.N)
    return {
        "num_evals": int(s.evals.size),
        "rank_loss": int(s.evals.size - rank),
        "weak_rank_loss": int(np.count_nonzero(s.evals < WEAK_RANK_TOL)),
        "lambda_max": float(s.evals[-1]),
    }


def _powerlaw(s: LayerSpectra, row: Mapping[str, Any]) -> Row:
    if not s.fit_options.is_default:
        return _tail_fit(s)
    fit = powerlaw.fit_power_law(s.evals, s.zero_thresh)
    return _fit_row(fit, fit.fit_quality, fit.alpha_spread)


def _fit_row(fit: powerlaw.PowerLawFit | fingers.TailFit, quality: str, spread: float) -> Row:
    """The ``powerlaw`` group's columns from either kind of tail fit."""
    return {
        "alpha": fit.alpha,
        "xmin": fit.xmin,
        "xmax": fit.xmax,
        "D": fit.D,
        "sigma": fit.sigma,
        "num_pl_spikes": fit.num_pl_spikes,
        "fit_quality": quality,
        "alpha_spread": spread,
    }


def _tail_fit(s: LayerSpectra) -> Row:
    """The ``powerlaw`` columns (and the FIT_EXTRAS ones) under non-default fit options."""
    try:
        fit = fingers.fit_tail(s.evals, s.zero_thresh, s.fit_options)
    except ValueError as exc:
        # WeightWatcher reports such a layer as status "failed"; we keep its other metrics.
        return {c: float("nan") for c in _powerlaw_columns()} | {"fit_quality": f"no fit: {exc}"}
    if not fit.valid:
        quality = "no-valid-fit"
    elif fit.num_pl_spikes < powerlaw.TINY_TAIL:
        quality = "tiny-tail"
    else:
        quality = "good"
    return _fit_row(fit, quality, float("nan")) | {
        "Lambda": fit.Lambda,
        "num_fingers": fit.num_fingers,
        "raw_alpha": fit.raw_alpha,
    }


def _powerlaw_columns() -> tuple[str, ...]:
    return (*BY_NAME["powerlaw"].columns, *FIT_EXTRAS.columns)


def _fit_extras(s: LayerSpectra, row: Mapping[str, Any]) -> Row:
    return {c: row[c] for c in FIT_EXTRAS.columns}


def _norms(s: LayerSpectra, row: Mapping[str, Any]) -> Row:
    nm = norms.norm_metrics(s.evals, s.N)
    alpha = float(row["alpha"])
    return {
        "norm": nm.norm,
        "log_norm": nm.log_norm,
        "spectral_norm": nm.spectral_norm,
        "log_spectral_norm": nm.log_spectral_norm,
        "stable_rank": nm.stable_rank,
        "matrix_rank": nm.matrix_rank,
        "entropy": nm.entropy,
        "alpha_weighted": norms.alpha_weighted(alpha, nm.spectral_norm),
        "log_alpha_norm": norms.log_alpha_norm(s.evals, alpha),
    }


def _mp(s: LayerSpectra, row: Mapping[str, Any]) -> Row:
    fit = rmt.fit_mp(s.evals, s.Q, s.M)
    return {
        "num_spikes": fit.num_spikes,
        "sigma_mp": fit.sigma_mp,
        "mp_softrank": fit.mp_softrank,
        "bulk_min": fit.bulk_min,
        "bulk_max": fit.bulk_max,
    }


def _erg(s: LayerSpectra, row: Mapping[str, Any]) -> Row:
    d = erg.detx(s.evals)
    return {
        "detX_num": d.detX_num,
        "detX_val": d.detX_val,
        # NaN when an optional tail fit (fit="TPL", fix_fingers) found no fit.
        "ERG_gap": d.detX_num - int(row["num_pl_spikes"])
        if np.isfinite(row["num_pl_spikes"])
        else float("nan"),
    }


def _vectors(s: LayerSpectra, row: Mapping[str, Any]) -> Row:
    assert s.vectors is not None and s.vector_evals is not None  # guaranteed by needs_vectors
    n_tail = row["num_pl_spikes"]
    if not np.isfinite(n_tail):  # no tail fit under the chosen fit options
        return dict.fromkeys(vectors.columns(), float("nan"))
    return vectors.localization(s.vector_evals, s.vectors, int(n_tail)).stats


def _traps(s: LayerSpectra, row: Mapping[str, Any]) -> Row:
    assert s.shuffled is not None and s.shuffled_single is not None  # guaranteed by needs_shuffle
    fit = rmt.fit_mp(s.shuffled, s.Q, s.M)
    top = float(s.shuffled[-1]) * fit.scale
    bulk = fit.bulk_max * fit.scale
    return {
        "num_traps": fit.num_spikes,
        "rand_sigma_mp": fit.sigma_mp,
        "rand_bulk_max": fit.bulk_max,
        "trap_scale": max(0.0, (top - bulk) / bulk),
        "rand_distance": rmt.rand_distance(s.evals, s.shuffled_single),
    }


def _farms(s: LayerSpectra, row: Mapping[str, Any]) -> Row:
    """FARMS alpha and, for comparison, plain alpha with the same (median-xmin) tail.

    The median tail is the released FARMS default (``fix_fingers='xmin_mid'``); on random
    matrices the minimum-KS fit scatters too much (alpha 4 to 25) to show the bias.
    """
    assert s.matrix is not None  # guaranteed by needs_matrix
    median = powerlaw.fit_power_law_median
    fit = farms.farms_alpha(s.matrix, fit=median, eig_scale=s.eig_scale)
    return {
        "alpha_farms": fit.alpha,
        # same zero rule as the windows (numerical zeros only), so the two are like for like
        "alpha_median": median(s.evals, farms.RELATIVE_ZERO * float(s.evals[-1])).alpha,
        "farms_D": fit.D,
        "farms_windows": fit.num_windows,
        "farms_window": f"{fit.window[0]}x{fit.window[1]}",
    }


REGISTRY: tuple[MetricSpec, ...] = (
    MetricSpec(
        "esd",
        ("num_evals", "rank_loss", "weak_rank_loss", "lambda_max"),
        _esd,
    ),
    MetricSpec(
        "powerlaw",
        ("alpha", "xmin", "xmax", "D", "sigma", "num_pl_spikes", "fit_quality", "alpha_spread"),
        _powerlaw,
    ),
    MetricSpec(
        "norms",
        (
            "norm",
            "log_norm",
            "spectral_norm",
            "log_spectral_norm",
            "stable_rank",
            "matrix_rank",
            "entropy",
            "alpha_weighted",
            "log_alpha_norm",
        ),
        _norms,
        needs=("powerlaw",),
    ),
    MetricSpec(
        "mp",
        ("num_spikes", "sigma_mp", "mp_softrank", "bulk_min", "bulk_max"),
        _mp,
    ),
    MetricSpec(
        "erg",
        ("detX_num", "detX_val", "ERG_gap"),
        _erg,
        needs=("powerlaw",),
    ),
    MetricSpec(
        "traps",
        ("num_traps", "rand_sigma_mp", "rand_bulk_max", "trap_scale", "rand_distance"),
        _traps,
        default=False,
        needs_shuffle=True,
    ),
    MetricSpec(
        "vectors",
        vectors.columns(),
        _vectors,
        default=False,
        needs=("powerlaw",),
        needs_vectors=True,
        explicit=True,
    ),
    MetricSpec(
        "alpha_farms",
        ("alpha_farms", "alpha_median", "farms_D", "farms_windows", "farms_window"),
        _farms,
        default=False,
        needs=("powerlaw",),
        needs_matrix=True,
        explicit=True,
    ),
)

BY_NAME: Mapping[str, MetricSpec] = {m.name: m for m in REGISTRY}

# Columns of the non-default tail fits (``fit="TPL"``, ``fix_fingers``): not a group of
# its own (the values come from the ``powerlaw`` fit); scan adds it when those options are set.
FIT_EXTRAS = MetricSpec(
    "fit_extras",
    ("Lambda", "num_fingers", "raw_alpha"),
    _fit_extras,
    default=False,
    needs=("powerlaw",),
)


def resolve(metrics: str | tuple[str, ...] | list[str]) -> tuple[MetricSpec, ...]:
    """``"default"``, ``"all"`` or a list of group names -> specs in registry order.

    ``"all"`` is every group but the ``explicit`` ones, which are costly and run only when
    named (``vectors`` needs eigenvectors, ``alpha_farms`` re-reads the matrix). A list may
    contain ``"default"``/``"all"`` next to group names (``("default", "alpha_farms")``).
    Dependencies are added; unknown names raise ``ValueError`` listing the valid ones.
    """
    names = [metrics] if isinstance(metrics, str) else list(metrics)
    unknown = [n for n in names if n not in BY_NAME and n not in ("default", "all")]
    if unknown:
        valid = ", ".join(["default", "all", *BY_NAME])
        raise ValueError(f"unknown metric group(s) {', '.join(unknown)}; choose from {valid}")
    wanted = {n for n in names if n in BY_NAME}
    if "default" in names:
        wanted |= {m.name for m in REGISTRY if m.default}
    if "all" in names:
        wanted |= {m.name for m in REGISTRY if not m.explicit}
    changed = True
    while changed:
        extra = {d for n in wanted for d in BY_NAME[n].needs} - wanted
        changed = bool(extra)
        wanted |= extra
    return tuple(m for m in REGISTRY if m.name in wanted or m.name == "esd")


def compute_row(spectra: LayerSpectra, specs: tuple[MetricSpec, ...]) -> Row:
    """Run ``specs`` in order on one layer's spectra."""
    row: Row = {}
    for spec in specs:
        row.update(spec.compute(spectra, row))
    return row


def verdict(row: Mapping[str, Any]) -> tuple[str, str]:
    """(verdict, one-line reason) from HTSR bands, the MP bulk and trap counts.

    ``over-trained`` if α < 2; ``under-trained`` if α > 6, or if no eigenvalue rises
    above the MP bulk edge + Tracy-Widom margin (``num_spikes == 0``): such a spectrum
    is indistinguishable from a random matrix however the fragile tail fit comes out
    (i.i.d. Gaussian matrices gave α from 4 to 12 but never a spike; docs/metrics.md);
    ``traps`` if the shuffled matrix has eigenvalues beyond the MP edge; else ``ok``.
    A fit flagged by ``fit_quality`` keeps its verdict but the reason says it is shaky.
    """
    alpha = row.get("alpha")
    if alpha is None or not np.isfinite(alpha):
        return "unknown", "no power-law fit"
    traps = row.get("num_traps")
    trap_note = f"; {int(traps)} correlation trap(s)" if traps else ""
    if alpha < ALPHA_OVER:
        v, why = "over-trained", f"alpha {alpha:.2f} < {ALPHA_OVER:g}: very heavy tail{trap_note}"
    elif alpha > ALPHA_UNDER:
        v, why = "under-trained", f"alpha {alpha:.2f} > {ALPHA_UNDER:g}: near-random spectrum"
    elif row.get("num_spikes") == 0:
        v, why = (
            "under-trained",
            f"no eigenvalue above the MP bulk edge: random-like (alpha {alpha:.2f})",
        )
    elif traps:
        v, why = "traps", f"{int(traps)} shuffled eigenvalue(s) above the MP edge"
    else:
        v, why = "ok", f"alpha {alpha:.2f} in [{ALPHA_OVER:g}, {ALPHA_UNDER:g}]"
    quality = row.get("fit_quality", "good")
    if quality != "good" and not why.startswith("no eigenvalue"):
        why += f" (shaky fit: {quality}, tail n={row.get('num_pl_spikes')})"
    return v, why


def warning(alpha: float) -> str:
    """WeightWatcher's ``warning`` column: ``over-trained``/``under-trained``/empty."""
    if alpha < ALPHA_OVER:
        return "over-trained"
    if alpha > ALPHA_UNDER:
        return "under-trained"
    return ""
