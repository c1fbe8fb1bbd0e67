"""The correlation page: a scatter per top metric with one dot per usable model."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from layerscope.report.html.survey_view import correlation_html
from layerscope.survey.correlate import correlate


def _models() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 12
    acc = rng.uniform(0.5, 1.0, n)
    return pd.DataFrame(
        {
            "key": [f"k{i}" for i in range(n)],
            "model": [f"<b>m{i}</b>" for i in range(n)],
            "family": ["a", "b", "c"] * 4,
            "status": ["ok"] * (n - 1) + ["error"],
            "error": [""] * (n - 1) + ["SourceError: unreadable"],
            "alpha_mean": 6 - 3 * acc,
            "log_norm_mean": np.r_[rng.standard_normal(n - 2), np.nan, 0.0],
            "score_acc": acc,
        }
    )


def test_page_has_one_dot_per_usable_model_and_the_fallouts() -> None:
    models = _models()
    result = correlate(models, resamples=20)
    page = correlation_html(models, result, "zoo <survey>", top=2)
    figures = re.findall(r"<figure>.*?</figure>", page)
    assert len(figures) == 2  # the two metrics, best first
    assert "alpha_mean: Kendall τ -1.00" in figures[0]
    assert figures[0].count("<circle") == 11  # every ok model
    assert figures[1].count("<circle") == 10  # log_norm_mean is NaN for one of them
    assert "SourceError: unreadable" in page and "&lt;b&gt;m11&lt;/b&gt;" in page
    assert "<b>m" not in page and "zoo &lt;survey&gt;" in page
    assert "http://" not in page.replace("http://www.w3.org", "")
    for family in ("a", "b", "c"):
        assert f"</span> {family}</span>" in page
