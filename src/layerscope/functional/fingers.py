"""Tail-fit options of WeightWatcher: ``fit="TPL"`` and the ``fix_fingers`` modes.

"Fingers" are a few outlying top eigenvalues that drag a power-law fit (Martin &
Mahoney, JMLR 22(165) 2021, §5; WeightWatcher 0.7.7 ``fit_powerlaw``). Modes:

* ``clip_xmax`` (WeightWatcher ``RMT_Util.fit_clipped_powerlaw``): fit the standard
  power law (:func:`layerscope.functional.powerlaw.fit_power_law`) to all values,
  then to the values without the top k = 2, 3, …, 9; stop at the first k whose α is
  more than 1.0 below the first fit's α (take it, ``num_fingers = k − 1`` as
  WeightWatcher reports it, although k values were clipped), or when α ≤ 2 (keep the
  first fit). ``raw_alpha`` is the first fit's α; ``xmax`` the largest value kept.
* ``xmin_peak`` (WeightWatcher-compatible): xmin is searched only near the peak of
  the ESD. peak = 10^(left edge of the tallest of 100 bins of log10 λ). WeightWatcher
  passes the range (log10(0.95·peak), 1.5·peak) to the ``powerlaw`` package, which
  compares both ends with linear λ: the lower bound log10(0.95·peak) is a log value
  (a bug, copied into AlphaPruning and FARMS), so in practice the search runs from
  min(log10(0.95·peak), 1.5·peak) up to 1.5·peak; for λ ≲ 1 that is every value below
  1.5·peak.
* ``xmin_peak_intended``: the same fit with the bound that was meant,
  xmin ∈ [0.95·peak, 1.5·peak).

Both peak modes fit with the ``powerlaw`` package's conventions (WeightWatcher
requires ``pl_package="powerlaw"`` for them): candidates are the values in the range
except its largest; at each, α is the continuous MLE 1 + n/Σ ln(λ/xmin) when it lies
in (1.5, 3], else the bounded Nelder-Mead fit of powerlaw 2.0.0; a fit is valid when
0 < α < 3 and not within 0.01 of that box (so a tail with α > 3 is never chosen while a
valid one exists); xmin minimises the KS distance among valid fits. σ = (α − 1)/√n.
With ``fit="TPL"`` the same candidates are fitted by the truncated power law
(:mod:`layerscope.functional.tpl`; WeightWatcher's ``E_TPL`` is TPL + xmin_peak).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from layerscope.functional import powerlaw, tpl

FloatArray = NDArray[np.float64]

FITS = ("PL", "TPL")
FIX_FINGERS = ("clip_xmax", "xmin_peak", "xmin_peak_intended")
# WeightWatcher DEFAULT_MAX_FINGERS, DEFAULT_FINGER_THRESH and fit_clipped_powerlaw's min_alpha.
MAX_FINGERS = 10
FINGER_THRESH = 1.0
CLIP_MIN_ALPHA = 2.0
# xmin_peak: 100 histogram bins of log10 λ; xmin in [0.95, 1.5)·peak.
PEAK_BINS = 100
PEAK_LOW = 0.95
PEAK_HIGH = 1.5
# powerlaw 2.0.0 Power_Law: analytic MLE used as is inside (1.5, 3], else optimised.
_ANALYTIC_ALPHA = (1.5, 3.0)


@dataclass(frozen=True)
class FitOptions:
    """How the tail is fitted: ``fit`` (PL|TPL) and ``fix_fingers`` (None or a mode)."""

    fit: str = "PL"
    fix_fingers: str | None = None

    def __post_init__(self) -> None:
        if self.fit not in FITS:
            raise ValueError(f"fit must be one of {', '.join(FITS)}, got {self.fit!r}")
        if self.fix_fingers is not None and self.fix_fingers not in FIX_FINGERS:
            raise ValueError(
                f"fix_fingers must be one of {', '.join(FIX_FINGERS)}, got {self.fix_fingers!r}"
            )
        if self.fit == "TPL" and self.fix_fingers == "clip_xmax":
            raise ValueError("fit='TPL' cannot be combined with fix_fingers='clip_xmax'")

    @property
    def is_default(self) -> bool:
        """Whether these are WeightWatcher's default fit options (plain PL, no fix)."""
        return self.fit == "PL" and self.fix_fingers is None


DEFAULT_FIT = FitOptions()


@dataclass(frozen=True)
class TailFit:
    """A tail fit under :class:`FitOptions` (the ``powerlaw`` columns plus three more).

    ``Lambda`` is the TPL cutoff (``nan`` for PL); ``num_fingers``/``raw_alpha`` are
    set by ``clip_xmax`` (0 / ``nan`` otherwise); ``sigma`` is ``nan`` for TPL, as in
    WeightWatcher.
    """

    alpha: float
    xmin: float
    xmax: float
    D: float
    sigma: float
    num_pl_spikes: int
    Lambda: float = float("nan")
    num_fingers: int = 0
    raw_alpha: float = float("nan")
    valid: bool = True


def esd_peak(x: FloatArray) -> float:
    """10^(left edge of the tallest of 100 equal bins of log10 x) (WeightWatcher xmin_peak)."""
    counts, edges = np.histogram(np.log10(x), bins=PEAK_BINS)
    return float(10 ** edges[int(np.argmax(counts))])


def peak_range(peak: float, intended: bool) -> tuple[float, float]:
    """xmin search range: (0.95·peak, 1.5·peak) or WeightWatcher's (log10(0.95·peak), 1.5·peak)."""
    low = PEAK_LOW * peak if intended else float(np.log10(PEAK_LOW * peak))
    return low, PEAK_HIGH * peak


def _pl_nll(params: FloatArray, tail: FloatArray, xmin: float) -> float:
    """powerlaw 2.0.0 Power_Law likelihood without xmax (normaliser (α−1)·xmin^(α−1))."""
    alpha = float(params[0])
    if not 0.0 < alpha < 3.0:
        return -tail.size * float(np.log(tpl.TINY_LIKELIHOOD))
    with np.errstate(all="ignore"):
        like = tail ** (-alpha) * ((alpha - 1.0) * xmin ** (alpha - 1.0))
        like[like == 0] = tpl.TINY_LIKELIHOOD
        return float(-np.sum(np.log(like)))


def _pl_candidate(tail: FloatArray, xmin: float, alpha0: float) -> tpl.CandidateFit:
    """Power law at one xmin with powerlaw 2.0.0's optimiser and validity rules."""
    x, converged = tpl.nelder_mead(
        lambda p: _pl_nll(p, tail, xmin), [max(alpha0, 1.0)], [(0.0, 3.0)]
    )
    alpha = float(x[0])
    in_box = 0.0 < alpha < 3.0
    valid = in_box and converged and not tpl.near_boundary((alpha,), (0.0,), (3.0,))
    with np.errstate(all="ignore"):
        cdf = 1.0 - (tail / xmin) ** (1.0 - alpha) if in_box else np.full(tail.size, 1e-307)
    return tpl.CandidateFit(alpha, float("nan"), tpl.ks_distance(cdf), valid)


def _pl_candidates(x: FloatArray, idx: NDArray[np.intp]) -> list[tpl.CandidateFit]:
    """Power-law fits at candidates ``idx``: analytic where powerlaw uses it, else optimised."""
    log_x = np.log(x)
    alphas = powerlaw.candidate_alphas(log_x, bias_corrected=False)
    order = np.argsort(idx, kind="stable")
    D = np.empty(idx.size)
    D[order] = powerlaw.ks_at(log_x, alphas, np.asarray(idx)[order])  # only the candidates
    fits = []
    for k, d in zip(idx, D, strict=True):
        a = float(alphas[k])
        if _ANALYTIC_ALPHA[0] < a <= _ANALYTIC_ALPHA[1]:
            fits.append(tpl.CandidateFit(a, float("nan"), float(d), a < 3.0))
        else:
            fits.append(_pl_candidate(x[k:], float(x[k]), a))
    return fits


def fit_peak(x: FloatArray, options: FitOptions) -> TailFit:
    """PL or TPL with xmin near the ESD peak (``xmin_peak`` / ``xmin_peak_intended``)."""
    rng = peak_range(esd_peak(x), options.fix_fingers == "xmin_peak_intended")
    if options.fit == "TPL":
        t = tpl.fit_truncated_power_law(x, rng)
        n = t.num_pl_spikes
        nan = float("nan")
        return TailFit(t.alpha, t.xmin, float(x[-1]), t.D, nan, n, Lambda=t.Lambda, valid=t.valid)
    idx = tpl.candidate_indices(x, rng)
    if idx.size < 1:
        raise ValueError(f"no xmin candidate in the peak range [{rng[0]:.4g}, {rng[1]:.4g})")
    fits = _pl_candidates(x, idx)
    best = tpl.select(fits)
    k, f = int(idx[best]), fits[best]
    n = int(x.size - k)
    sigma = (f.alpha - 1.0) / np.sqrt(n)
    return TailFit(f.alpha, float(x[k]), float(x[-1]), f.D, sigma, n, valid=f.valid)


def fit_clip_xmax(x: FloatArray) -> TailFit:
    """``clip_xmax``: drop top values until α falls by more than 1 (see the module docstring)."""
    first = powerlaw.fit_power_law(x, thresh=0.0)
    best, fingers = first, 0
    for k in range(2, MAX_FINGERS):
        fit = powerlaw.fit_power_law(x[:-k], thresh=0.0)
        if fit.alpha + FINGER_THRESH < first.alpha:
            best, fingers = fit, k - 1
            break
        if fit.alpha <= CLIP_MIN_ALPHA:
            break
    # WeightWatcher counts the tail on the unclipped values.
    n = int(np.count_nonzero(x >= best.xmin))
    return TailFit(
        best.alpha,
        best.xmin,
        best.xmax,
        best.D,
        best.sigma,
        n,
        num_fingers=fingers,
        raw_alpha=first.alpha,
    )


def fit_tail(evals: FloatArray, thresh: float, options: FitOptions) -> TailFit:
    """The tail fit chosen by ``options`` on eigenvalues above ``thresh``.

    Raises:
        ValueError: too few values for the chosen fit.
    """
    x = np.sort(np.asarray(evals, dtype=np.float64))
    x = x[x > thresh]
    if x.size < 3:
        raise ValueError(f"tail fit needs at least 3 eigenvalues above {thresh}, got {x.size}")
    if options.fix_fingers == "clip_xmax":
        return fit_clip_xmax(x)
    if options.fix_fingers is not None:
        return fit_peak(x, options)
    if options.fit == "PL":
        p = powerlaw.fit_power_law(x, thresh=0.0)
        return TailFit(p.alpha, p.xmin, p.xmax, p.D, p.sigma, p.num_pl_spikes)
    t = tpl.fit_truncated_power_law(x)
    nan = float("nan")
    return TailFit(
        t.alpha, t.xmin, float(x[-1]), t.D, nan, t.num_pl_spikes, Lambda=t.Lambda, valid=t.valid
    )
