"""The one shared comparison helper of the reference tests (docs/design.md, rule 8).

``compare_tables`` lines up two per-layer tables by a key (our ``name`` against the
reference's ``longname``, say) and applies a list of :class:`Check` s, one per column.
A check states, for one column, what "agrees" means for a single layer
(``|ours − ref| ≤ atol + rtol·|ref|``) and which statistics over all layers must hold:
the fraction of layers that agree, the median absolute difference, the correlation.
On failure it raises ``AssertionError`` with a readable table: one summary line per
check, then the worst layers of each failing check side by side.

``assert_close`` is the array version used by the functional tests (ours against a
closed form, scipy, WeightWatcher's own function or a naive loop written in the test).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

_WORST_SHOWN = 15


@dataclass(frozen=True)
class Check:
    """What agreement means for one column.

    Attributes:
        column: our column name.
        atol, rtol: per-layer tolerance ``|ours − ref| ≤ atol + rtol·|ref|`` (0, 0 = equal).
        min_fraction: fraction of layers that must be within the per-layer tolerance.
        max_median: bound on the median of ``|ours − ref|`` over layers (None: unchecked).
        min_corr: bound on the Pearson correlation over layers (None: unchecked).
        ref_column: the reference's name for the column, if different.
    """

    column: str
    atol: float = 0.0
    rtol: float = 0.0
    min_fraction: float = 1.0
    max_median: float | None = None
    min_corr: float | None = None
    ref_column: str | None = None

    @property
    def ref(self) -> str:
        return self.ref_column or self.column


@dataclass(frozen=True)
class CheckResult:
    """Statistics of one :class:`Check` over the aligned layers."""

    check: Check
    n: int
    median_abs: float
    max_abs: float
    fraction_within: float
    corr: float
    problems: tuple[str, ...]
    worst: pd.DataFrame

    @property
    def ok(self) -> bool:
        return not self.problems

    def line(self) -> str:
        c = self.check
        tol = "equal" if c.atol == 0 and c.rtol == 0 else f"atol={c.atol:g} rtol={c.rtol:g}"
        verdict = "ok" if self.ok else "FAIL: " + "; ".join(self.problems)
        return (
            f"{c.column:<18} n={self.n:<4} within({tol})={self.fraction_within:6.1%} "
            f"median|d|={self.median_abs:<10.3g} max|d|={self.max_abs:<10.3g} "
            f"corr={self.corr:6.4f}  {verdict}"
        )


def _corr(a: np.ndarray, b: np.ndarray) -> float:
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    if a.size < 2:
        return float("nan")
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return 1.0 if np.array_equal(a, b) else 0.0
    return float(np.corrcoef(a, b)[0, 1])


def _run_check(check: Check, merged: pd.DataFrame, key: str) -> CheckResult:
    ours = pd.to_numeric(merged[f"{check.column}__ours"], errors="coerce").to_numpy(float)
    ref = pd.to_numeric(merged[f"{check.ref}__ref"], errors="coerce").to_numpy(float)
    both_nan = np.isnan(ours) & np.isnan(ref)
    diff = np.where(both_nan, 0.0, np.abs(ours - ref))
    diff = np.where(np.isnan(diff), np.inf, diff)
    within = diff <= check.atol + check.rtol * np.abs(np.nan_to_num(ref))
    n = int(ours.size)
    frac = float(np.mean(within)) if n else 1.0
    median = float(np.median(diff)) if n else 0.0
    corr = _corr(ours, ref)
    problems = []
    if frac < check.min_fraction:
        problems.append(f"{frac:.1%} within tolerance < {check.min_fraction:.0%}")
    if check.max_median is not None and median > check.max_median:
        problems.append(f"median |d| {median:.3g} > {check.max_median:g}")
    if check.min_corr is not None and not corr >= check.min_corr:
        problems.append(f"corr {corr:.4f} < {check.min_corr:g}")
    order = np.argsort(-diff, kind="stable")[:_WORST_SHOWN]
    worst = pd.DataFrame(
        {key: merged[key].to_numpy()[order], "ours": ours[order], "ref": ref[order]}
    ).assign(diff=lambda f: f["ours"] - f["ref"], within=within[order])
    return CheckResult(
        check,
        n,
        median,
        float(np.max(diff)) if n else 0.0,
        frac,
        corr,
        tuple(problems),
        worst,
    )


def align(
    ours: pd.DataFrame, ref: pd.DataFrame, *, ours_key: str = "name", ref_key: str = "name"
) -> pd.DataFrame:
    """Inner-join two per-layer tables on their keys; both must hold the same layers.

    Our columns get the suffix ``__ours``, the reference's ``__ref``; the key column is
    called ``layer``.
    """
    a = ours.rename(columns=lambda c: f"{c}__ours").assign(layer=ours[ours_key].to_numpy())
    b = ref.rename(columns=lambda c: f"{c}__ref").assign(layer=ref[ref_key].to_numpy())
    only_ours = sorted(set(a["layer"]) - set(b["layer"]))
    only_ref = sorted(set(b["layer"]) - set(a["layer"]))
    assert not only_ours and not only_ref, (
        f"layer sets differ: only ours {only_ours}; only reference {only_ref}"
    )
    assert a["layer"].is_unique and b["layer"].is_unique, "duplicate layer keys"
    return a.merge(b, on="layer", how="inner")


def compare_tables(
    ours: pd.DataFrame,
    ref: pd.DataFrame,
    checks: Sequence[Check],
    *,
    ours_key: str = "name",
    ref_key: str = "name",
    label: str = "",
) -> dict[str, CheckResult]:
    """Apply ``checks`` to two per-layer tables aligned by key; raise with a diff table.

    Returns the statistics of every check (for reporting), when all pass.
    """
    merged = align(ours, ref, ours_key=ours_key, ref_key=ref_key)
    results = {c.column: _run_check(c, merged, "layer") for c in checks}
    failed = [r for r in results.values() if not r.ok]
    if failed:
        lines = [f"{label}: {len(failed)} of {len(results)} checks failed", ""]
        lines += [r.line() for r in results.values()]
        for r in failed:
            lines += ["", f"worst layers for {r.check.column}:"]
            lines.append(r.worst.to_string(index=False, float_format=lambda v: f"{v:.6g}"))
        raise AssertionError("\n".join(lines))
    return results


def report(results: dict[str, CheckResult], label: str = "") -> str:
    """One line per check (what the parity numbers were), for ``print`` in a test."""
    return "\n".join([f"== {label}", *(r.line() for r in results.values())])


def assert_close(
    actual: ArrayLike,
    expected: ArrayLike,
    *,
    rtol: float = 0.0,
    atol: float = 0.0,
    what: str = "",
) -> None:
    """``|actual − expected| ≤ atol + rtol·|expected|`` elementwise, same shape.

    On failure lists the worst elements (index, actual, expected, difference).
    """
    a = np.asarray(actual, dtype=np.float64)
    e = np.asarray(expected, dtype=np.float64)
    assert a.shape == e.shape, f"{what}: shape {a.shape} != {e.shape}"
    same_inf = np.isinf(a) & (a == e)
    diff = np.where(same_inf, 0.0, np.abs(a - e))
    diff = np.where(np.isnan(diff), np.inf, diff)
    bad = diff > atol + rtol * np.abs(np.where(np.isfinite(e), e, 0.0))
    if bad.any():
        flat = np.flatnonzero(bad.ravel())
        worst = flat[np.argsort(-diff.ravel()[flat], kind="stable")][:_WORST_SHOWN]
        table = pd.DataFrame(
            {
                "index": worst,
                "actual": a.ravel()[worst],
                "expected": e.ravel()[worst],
                "diff": a.ravel()[worst] - e.ravel()[worst],
            }
        ).to_string(index=False, float_format=lambda v: f"{v:.17g}")
        raise AssertionError(
            f"{what}: {int(bad.sum())} of {bad.size} elements differ by more than "
            f"atol={atol:g} + rtol={rtol:g}·|expected|\n{table}"
        )
