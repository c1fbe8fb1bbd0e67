"""Survey many models: one summary row per model, the per-layer table, correlations.

>>> from layerscope.survey import survey
>>> result = survey(["zoo/manifest.csv"], workers=2, store="zoo.db")  # doctest: +SKIP
>>> result.models[["model", "family", "alpha_mean", "score_test_acc"]]  # doctest: +SKIP

Engines: ``local`` (worker processes, the default) and ``ray`` (``layerscope[ray]``).
See docs/survey.md.
"""

from layerscope.survey.run import SurveyEvent, SurveyOptions, collect, survey
from layerscope.survey.sources import Job, expand_sources
from layerscope.survey.tables import SurveyResult

__all__ = [
    "Job",
    "SurveyEvent",
    "SurveyOptions",
    "SurveyResult",
    "collect",
    "expand_sources",
    "survey",
]
