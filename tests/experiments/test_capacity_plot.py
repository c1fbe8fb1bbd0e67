"""The capacity plateau table and the slope fitted across sizes, against numpy."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from experiments.capacity import plot


def _rows() -> pd.DataFrame:
    rows = []
    # Size 100: N = 10 holds 300 and 340 bits (mean 320), N = 20 holds 400 and 380 (390).
    for n, bits in [(10, (300.0, 340.0)), (20, (400.0, 380.0))]:
        for seed, b in enumerate(bits):
            rows.append({"layers": 1, "width": 8, "vocab": 16, "seq_len": 32,
                         "dtype": "float32", "params": 100, "samples": n, "seed": seed,
                         "memorized_bits": b, "steps": 50, "data_bits": 40.0 * n})  # fmt: skip
    for seed, b in enumerate((900.0, 1100.0)):  # size 300: one N, mean 1000
        rows.append({"layers": 1, "width": 16, "vocab": 16, "seq_len": 32,
                     "dtype": "float32", "params": 300, "samples": 40, "seed": seed,
                     "memorized_bits": b, "steps": 70, "data_bits": 2000.0})  # fmt: skip
    return pd.DataFrame(rows)


def test_the_plateau_is_the_best_mean_over_n_with_its_seed_range() -> None:
    table = plot.plateaus(_rows()).set_index("width")
    assert table.loc[8, "plateau_N"] == 20 and table.loc[8, "plateau_bits"] == 390.0
    assert (table.loc[8, "bits_low"], table.loc[8, "bits_high"]) == (380.0, 400.0)
    assert table.loc[8, "bits_per_param"] == pytest.approx(3.9)
    assert table.loc[8, "of_data"] == pytest.approx(390 / 800) and table.loc[16, "of_data"] == 0.5
    assert table.loc[16, "bpp_low"] == pytest.approx(3.0) and table.loc[16, "steps"] == 70
    assert table.loc[8, "sizes"] == "10,20" and table.loc[8, "seeds"] == 2


def test_slope_through_the_origin_is_least_squares() -> None:
    rng = np.random.default_rng(3)
    params = np.array([1e3, 2e3, 5e3, 1e4, 2e4])
    bits = 2.5 * params * (1 + 0.05 * rng.standard_normal(5))
    fit, lo, hi = plot.slope(params, bits)
    ref = np.linalg.lstsq(params[:, None], bits, rcond=None)[0][0]
    assert fit == pytest.approx(ref) and lo <= fit <= hi
    assert plot.slope(params, 3.6 * params)[0] == pytest.approx(3.6)


def test_main_prints_the_table_and_writes_the_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")
    csv = tmp_path / "rows.csv"
    _rows().to_csv(csv, index=False)
    assert plot.main([str(csv), "--out", str(tmp_path / "fig.png")]) == 0
    assert "slope through the origin" in capsys.readouterr().out
    assert (tmp_path / "fig.png").read_bytes()[:4] == b"\x89PNG"


def _budget_rows() -> pd.DataFrame:
    # One size (100 params) at 1,000 steps (N = 10: 200 bits; N = 20: 150) and 4,000
    # steps (N = 20: 240 and 260 bits, mean 250; the plateau moves to N = 20).
    rows = [(1000, 10, 0, 200.0), (1000, 20, 0, 150.0), (4000, 20, 0, 240.0), (4000, 20, 1, 260.0)]
    return pd.DataFrame(
        [{"layers": 1, "width": 8, "vocab": 16, "seq_len": 32, "dtype": "float32", "params": 100,
          "samples": n, "seed": seed, "memorized_bits": b, "steps": steps, "data_bits": 40.0 * n}
         for steps, n, seed, b in rows]
    )  # fmt: skip


def test_budgets_give_each_n_and_its_change_per_doubling() -> None:
    table = plot.budgets(_budget_rows()).set_index(["samples", "steps"])
    assert table.loc[(10, 1000), "bits_per_param"] == 2.0
    assert table.loc[(20, 1000), "bits_per_param"] == 1.5
    assert table.loc[(20, 4000), "bits_per_param"] == 2.5 and table.loc[(20, 4000), "seeds"] == 2
    assert (table.loc[(20, 4000), "bpp_low"], table.loc[(20, 4000), "bpp_high"]) == (2.4, 2.6)
    assert np.isnan(table.loc[(10, 1000), "change_per_doubling"])  # first budget of N = 10
    assert np.isnan(table.loc[(20, 1000), "change_per_doubling"])
    # N = 20 from 1.5 to 2.5 over two doublings; never compared with N = 10's 2.0.
    assert table.loc[(20, 4000), "change_per_doubling"] == pytest.approx((2.5 / 1.5 - 1) / 2)


def test_the_largest_budget_keeps_each_sizes_longest_runs() -> None:
    rows = pd.concat([_rows(), _budget_rows().assign(width=32)], ignore_index=True)
    kept = plot.largest_budget(rows)
    assert sorted(kept.groupby("width")["steps"].unique().map(list).sum()) == [50, 70, 4000]
    assert len(kept[kept["width"] == 32]) == 2


def test_the_best_budget_keeps_each_sizes_highest_plateau() -> None:
    # Width 32 peaks at 4,000 steps (250 bits); a longer run of a larger N holds less.
    longer = _budget_rows().iloc[:2].assign(steps=8000, samples=40, memorized_bits=[230.0, 220.0])
    rows = pd.concat([_rows(), _budget_rows(), longer], ignore_index=True).assign(width=32)
    rows.loc[: len(_rows()) - 1, "width"] = _rows()["width"]  # sizes 8 and 16 as before
    kept = plot.best_budget(rows)
    assert sorted(kept[kept["width"] == 32]["steps"].unique()) == [4000]
    assert plot.plateaus(kept).set_index("width").loc[32, "plateau_bits"] == 250.0
    assert sorted(plot.largest_budget(rows).query("width == 32")["steps"].unique()) == [8000]
    assert len(kept[kept["width"] != 32]) == len(_rows())  # one budget each: all kept


def test_a_width_at_another_vocabulary_is_another_size() -> None:
    other = _rows().assign(vocab=64, params=lambda f: f["params"] + 50)
    table = plot.plateaus(pd.concat([_rows(), other], ignore_index=True))
    assert len(table) == 4 and sorted(table["params"]) == [100, 150, 300, 350]
    assert table.set_index(["width", "vocab"]).loc[(8, 64), "plateau_bits"] == 390.0
    table = plot.budgets(pd.concat([_budget_rows(), _budget_rows().assign(vocab=64)]))
    assert len(table) == 6 and table["seeds"].max() == 2  # no seeds merged across V


def test_runs_at_another_learning_rate_are_not_averaged_as_seeds() -> None:
    rows = pd.concat([_rows().assign(lr=0.03), _rows().assign(lr=0.01, memorized_bits=0.0)])
    table = plot.plateaus(rows).set_index(["width", "lr"])
    assert len(table) == 4 and table.loc[(8, 0.03), "plateau_bits"] == 390.0
    assert table.loc[(8, 0.01), "plateau_bits"] == 0.0 and table.loc[(8, 0.03), "seeds"] == 2
    assert len(plot.largest_budget(rows)) == len(rows)  # one budget per (size, lr)


def test_rows_from_before_clipping_count_as_unclipped(tmp_path: Path) -> None:
    old, new = tmp_path / "old.csv", tmp_path / "new.csv"
    _rows().to_csv(old, index=False)  # no clip column: those runs never clipped
    later = _rows().assign(clip=0.0, seed=lambda f: f["seed"] + 2)  # seeds 2, 3 unclipped
    pd.concat([later, _rows().assign(clip=1.0)]).to_csv(new, index=False)
    rows = plot.read([old, new])
    assert set(rows["clip"]) == {0.0, 1.0} and len(rows) == 3 * len(_rows())
    table = plot.plateaus(rows).set_index(["width", "clip"])
    assert len(table) == 4  # old and clip = 0 are one recipe; clip = 1 another
    assert table.loc[(8, 0.0), "seeds"] == 4 and table.loc[(8, 0.0), "plateau_bits"] == 390.0
    assert table.loc[(8, 1.0), "seeds"] == 2


def test_main_reads_the_best_or_the_largest_budget_not_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = tmp_path / "rows.csv"
    _budget_rows().to_csv(csv, index=False)
    assert plot.main([str(csv), "--best-budget"]) == 0
    assert "change_per_doubling" in capsys.readouterr().out  # the per-budget table first
    with pytest.raises(SystemExit):
        plot.main([str(csv), "--best-budget", "--largest-budget"])
