"""Which summary metric tracks model quality: rank correlations over a survey table.

For every summary metric (``<metric>_mean``/``_median``/``_std``, ``num_params``) and
every score (``score_<name>`` columns, from the manifest or joined from a scores file),
per family and pooled over all models: Spearman ρ, Kendall τ_b and R² of a linear fit,
each with a percentile-bootstrap interval (:mod:`layerscope.functional.correlation`).
Rows are sorted so the strongest predictors (largest |τ|) come first. As in Martin,
Peng & Mahoney (Nat. Commun. 12, 4122, 2021), a good HTSR metric correlates
*negatively* with accuracy (lower alpha-weighted / log alpha-norm = better model).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from layerscope.functional import correlation as fc
from layerscope.survey.sources import SCORE_PREFIX
from layerscope.survey.tables import family_labels

POOLED = "(all)"
STAT_SUFFIXES = ("_mean", "_median", "_std")
COLUMNS = (
    "family",
    "score",
    "metric",
    "n",
    "kendall",
    "kendall_low",
    "kendall_high",
    "spearman",
    "spearman_low",
    "spearman_high",
    "r2",
    "r2_low",
    "r2_high",
)
_STATS = (("kendall", fc.kendall_rows), ("spearman", fc.spearman_rows), ("r2", fc.r_squared_rows))


@dataclass(frozen=True)
class CorrelationResult:
    """``table``: one row per (family, score, metric); ``excluded``: models left out."""

    table: pd.DataFrame
    excluded: pd.DataFrame


def join_scores(
    models: pd.DataFrame, scores: pd.DataFrame, base: Path | None = None
) -> pd.DataFrame:
    """Add ``scores``'s numeric columns as ``score_<name>``, matched on ``path`` or ``model``.

    Relative paths in ``scores`` are read from ``base`` (the scores file's folder).

    Raises:
        ValueError: ``scores`` has neither a ``path`` nor a ``model`` column, or no
            numeric column.
    """
    on = next((c for c in ("path", "model") if c in scores.columns), None)
    if on is None:
        raise ValueError("scores need a 'path' or 'model' column to match the survey's models")
    values = [c for c in scores.columns if c != on and pd.api.types.is_numeric_dtype(scores[c])]
    if not values:
        raise ValueError("scores have no numeric column")
    right = scores[[on, *values]].rename(columns={c: SCORE_PREFIX + str(c) for c in values})
    if on == "path":
        right[on] = [os.path.abspath((base or Path()) / str(p)) for p in right[on]]
    left = models.drop(columns=[c for c in right.columns if c != on and c in models])
    return left.merge(right.drop_duplicates(on), on=on, how="left")


def metric_columns(models: pd.DataFrame) -> list[str]:
    """The summary metrics to correlate: per-layer statistics and ``num_params``."""
    cols = [c for c in models.columns if str(c).endswith(STAT_SUFFIXES)]
    return [*cols, "num_params"] if "num_params" in models else cols


def correlate(
    models: pd.DataFrame,
    *,
    metrics: list[str] | None = None,
    resamples: int = fc.BOOTSTRAP,
    level: float = fc.LEVEL,
    seed: int = 0,
) -> CorrelationResult:
    """Correlate every metric with every ``score_*`` column, per family and pooled.

    Args:
        models: a survey's ``models`` table with ``score_<name>`` columns (see
            :func:`join_scores`).
        metrics: columns to test (default :func:`metric_columns`).
        resamples: bootstrap resamples (0: no intervals).
        level: the intervals' confidence level.
        seed: the bootstrap's seed.

    Raises:
        ValueError: no ``score_*`` column, or an unknown metric.
    """
    scores = [c for c in models.columns if str(c).startswith(SCORE_PREFIX)]
    if not scores:
        raise ValueError("no scores: give --scores FILE or a manifest with numeric columns")
    wanted = metric_columns(models) if metrics is None else list(metrics)
    unknown = [m for m in wanted if m not in models.columns]
    if unknown:
        raise ValueError(f"unknown metric column(s): {', '.join(unknown)}")
    ok = models[models["status"] == "ok"]
    rows = []
    for family, group in _groups(ok):
        for score in scores:
            for metric in wanted:
                rows.append(_row(group, family, score, metric, resamples, level, seed))
    table = pd.DataFrame.from_records(rows, columns=list(COLUMNS))
    return CorrelationResult(_sorted(table), _excluded(models, scores))


def _groups(ok: pd.DataFrame) -> list[tuple[str, pd.DataFrame]]:
    family = family_labels(ok["family"])
    families = sorted(family.unique())
    groups = [(POOLED, ok)]
    if len(families) > 1:
        groups += [(f, ok[family == f]) for f in families]
    return groups


def _row(
    group: pd.DataFrame,
    family: str,
    score: str,
    metric: str,
    resamples: int,
    level: float,
    seed: int,
) -> dict[str, object]:
    # na_value: nullable integer columns (num_params, counts) hold <NA>, not NaN.
    x = pd.to_numeric(group[metric], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    y = pd.to_numeric(group[score], errors="coerce").to_numpy(np.float64, na_value=np.nan)
    keep = np.isfinite(x) & np.isfinite(y)
    x, y = x[keep], y[keep]
    row: dict[str, object] = {"family": family, "score": score, "metric": metric, "n": x.size}
    for name, stat in _STATS:
        est = fc.bootstrap(stat, x, y, resamples=resamples, level=level, seed=seed)
        row.update({name: est.value, f"{name}_low": est.low, f"{name}_high": est.high})
    return row


def _sorted(table: pd.DataFrame) -> pd.DataFrame:
    order = table.assign(
        _pooled=table["family"] != POOLED, _strength=-table["kendall"].abs().fillna(-1.0)
    )
    order = order.sort_values(["_pooled", "family", "score", "_strength"], kind="stable")
    return order.drop(columns=["_pooled", "_strength"]).reset_index(drop=True)


def _excluded(models: pd.DataFrame, scores: list[str]) -> pd.DataFrame:
    """Models that fell out of every correlation, and why."""
    rows = []
    for rec in models.to_dict(orient="records"):
        if rec.get("status") != "ok":
            rows.append((rec.get("model"), rec.get("family"), f"scan failed: {rec.get('error')}"))
            continue
        missing = [s for s in scores if not np.isfinite(_float(rec.get(s)))]
        if missing:
            names = ", ".join(m.removeprefix(SCORE_PREFIX) for m in missing)
            rows.append((rec.get("model"), rec.get("family"), f"no score: {names}"))
    return pd.DataFrame.from_records(rows, columns=["model", "family", "reason"])


def _float(value: object) -> float:
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return float("nan")
