"""The zoo's correlation study: which summary metric tracks test accuracy, per family and
per axis (hyper-parameters vs label noise).

    python -m experiments.zoo.study zoo.parquet --zoo zoo/ -o study.csv --same-as zoo-ray.parquet

``zoo.parquet`` is ``layerscope survey zoo/manifest.csv -o zoo.parquet``; ``--zoo`` is the
folder of ``experiments.zoo.train`` (its ``configs.csv`` gives each model's label-noise
fraction). Groups: every model (``(all)``), each family (``mlp-hparam``, ``mlp-noise``...)
and each axis pooled over architectures (``axis:hparam``, ``axis:noise``), because a 2026
study (arXiv:2603.27885) reports that the tail exponent tracks label-noise quality but
only weakly follows pure hyper-parameter variation. Scores: ``test_acc`` and, on the
noise axis, ``label_noise`` (the fraction of training labels replaced). Statistics are
those of :func:`layerscope.survey.correlate.correlate` (Kendall τ_b, Spearman ρ, R²,
percentile-bootstrap intervals). Martin, Peng & Mahoney (Nat. Commun. 12, 4122, 2021;
arXiv:2002.06716) expect alpha-weighted and log alpha-norm to fall as quality rises: a
negative τ with test accuracy.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from layerscope.survey.correlate import POOLED, correlate
from layerscope.survey.tables import RUN_COLUMNS, SurveyResult

# The paper's metrics first, then the other per-layer summaries.
METRICS = (
    "alpha_weighted_mean",
    "log_alpha_norm_mean",
    "alpha_mean",
    "log_spectral_norm_mean",
    "log_norm_mean",
    "stable_rank_mean",
    "entropy_mean",
    "mp_softrank_mean",
    "num_spikes_mean",
)
AXIS = "axis:"
NOISE_SCORE = "score_label_noise"


def with_noise(models: pd.DataFrame, configs: pd.DataFrame) -> pd.DataFrame:
    """Add ``score_label_noise`` (noise-axis models only; NaN on the hyper-parameter axis,
    where it is always 0 and no correlation is defined)."""
    noise = configs.set_index("name")["noise"].where(configs.set_index("name")["axis"] == "noise")
    return models.assign(**{NOISE_SCORE: models["model"].map(noise)})


def study(models: pd.DataFrame, resamples: int = 1000, seed: int = 0) -> pd.DataFrame:
    """Correlations of every summary metric with every score: pooled, per family, per axis.

    The family of a zoo model is ``<arch>-<axis>``; an axis group pools the families that
    share the axis."""
    families = correlate(models, resamples=resamples, seed=seed).table
    axis = AXIS + models["family"].astype(str).str.rsplit("-", n=1).str[-1]
    axes = correlate(models.assign(family=axis), resamples=resamples, seed=seed).table
    return pd.concat([families, axes[axes["family"] != POOLED]], ignore_index=True)


def cell(row: pd.Series) -> str:
    """``τ [low, high]`` with signs, two decimals; ``n/a`` where τ is undefined."""
    if not math.isfinite(row["kendall"]):
        return "n/a"
    return f"{row['kendall']:+.2f} [{row['kendall_low']:+.2f}, {row['kendall_high']:+.2f}]"


def markdown(table: pd.DataFrame, score: str, metrics: Sequence[str] = METRICS) -> str:
    """One row per group, one column per metric: Kendall τ with its interval."""
    part = table[(table["score"] == score) & table["metric"].isin(metrics)]
    groups = list(dict.fromkeys(part["family"]))
    short = [m.removesuffix("_mean") for m in metrics]
    lines = [f"| group | n | {' | '.join(short)} |", "|---" * (len(metrics) + 2) + "|"]
    for group in groups:
        rows = part[part["family"] == group].set_index("metric")
        if rows["n"].max() == 0:
            continue  # e.g. label noise on the hyper-parameter axis: always 0
        cells = [cell(rows.loc[m]) if m in rows.index else "" for m in metrics]
        lines.append(f"| {group} | {int(rows['n'].max())} | {' | '.join(cells)} |")
    return "\n".join(lines)


def best(table: pd.DataFrame, score: str, top: int = 3) -> str:
    """Per group, the ``top`` metrics by |τ| whose interval excludes 0."""
    part = table[table["score"] == score]
    sure = part[(part["kendall_low"] > 0) | (part["kendall_high"] < 0)]
    lines = []
    for group, rows in sure.groupby("family", sort=False):
        picks = rows.reindex(rows["kendall"].abs().sort_values(ascending=False).index)[:top]
        text = ", ".join(f"{r.metric} {r.kendall:+.2f}" for r in picks.itertuples())
        lines.append(f"* {group}: {text}")
    return "\n".join(lines)


def same_tables(one: SurveyResult, other: SurveyResult) -> str:
    """Check that two surveys of the same models (e.g. the local and the Ray engine) hold
    equal tables, run-dependent columns (``scan_s``, ``peak_rss_mb``) left out.

    Raises:
        AssertionError: the first difference (pandas' message).
    """
    drop = list(RUN_COLUMNS)
    pd.testing.assert_frame_equal(one.models.drop(columns=drop), other.models.drop(columns=drop))
    pd.testing.assert_frame_equal(one.layers, other.layers)
    return f"equal tables: {len(one.models)} models, {len(one.layers)} layer rows"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("survey", type=Path, help="the zoo's survey table (.parquet/.csv)")
    parser.add_argument("--zoo", type=Path, required=True, help="the zoo folder (configs.csv)")
    parser.add_argument("--bootstrap", type=int, default=1000, help="bootstrap resamples")
    parser.add_argument("-o", "--out", type=Path, help="write the full table to FILE (.csv)")
    parser.add_argument(
        "--same-as", type=Path, help="first check that this survey's tables equal SURVEY's"
    )
    args = parser.parse_args(argv)
    result = SurveyResult.read(args.survey)
    if args.same_as:
        print(same_tables(result, SurveyResult.read(args.same_as)))
    models = result.models
    models = with_noise(models, pd.read_csv(args.zoo / "configs.csv"))
    table = study(models, args.bootstrap)
    if args.out:
        tmp = args.out.with_suffix(".tmp")
        table.to_csv(tmp, index=False)
        tmp.replace(args.out)
    for score in ("score_test_acc", NOISE_SCORE):
        print(f"\n### Kendall τ with {score.removeprefix('score_')}\n")
        print(markdown(table, score))
        print(f"\nStrongest (interval excludes 0), {score.removeprefix('score_')}:\n")
        print(best(table, score))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
