"""The Ray engine on a real local Ray cluster gives the local engine's table."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from layerscope.survey import survey
from layerscope.survey.tables import RUN_COLUMNS

ray = pytest.importorskip("ray")

OPTS = {"device": "cpu"}


def test_ray_table_equals_local_table(zoo: dict[str, Path], minilm: str, tmp_path: Path) -> None:
    """One real two-CPU cluster, started by the survey (no session was running) and
    shut down by it: each model is a task that reads its file; a bad file is a row."""
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"junk")
    sources = [*(str(p) for p in zoo.values()), minilm, str(junk)]
    local = survey(sources, **OPTS)
    assert not ray.is_initialized()
    remote = survey(sources, engine="ray", workers=2, store=tmp_path / "r.db", **OPTS)
    assert not ray.is_initialized()
    assert remote.models["status"].tolist() == ["ok"] * (len(zoo) + 1) + ["error"]
    assert remote.models["num_layers"].iloc[len(zoo)] >= 36  # MiniLM: 6 blocks x 6 matrices
    # A task runs one thread and this process all cores: LAPACK sums in another order, so
    # the fitted quantities agree to ~1e-5 relative, not to the last bit.
    pd.testing.assert_frame_equal(
        local.models.drop(columns=list(RUN_COLUMNS)),
        remote.models.drop(columns=list(RUN_COLUMNS)),
        rtol=1e-3,
    )
    pd.testing.assert_frame_equal(local.layers, remote.layers, rtol=1e-3)
