"""SmolLM2 study helpers on a tiny random Llama: perplexity against transformers' own loss,
calibration windows, the work split, and the grid end to end."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from experiments.smollm2 import study
from experiments.smollm2.data import split_works, works

from _hf_models import tiny_config


@pytest.fixture(scope="module")
def tiny() -> torch.nn.Module:
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    cfg = tiny_config("llama", vocab_size=97, intermediate_size=160, max_position_embeddings=64)
    return LlamaForCausalLM(cfg).eval()


def test_perplexity_matches_transformers_loss(tiny: torch.nn.Module) -> None:
    ids = torch.randint(0, 97, (3 * 16 + 5,), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():  # transformers averages over the 15 predicted tokens per window
        losses = [float(tiny(w, labels=w).loss) for w in ids[:48].view(3, 16).split(1)]
    assert study.perplexity(tiny, ids, 16) == pytest.approx(math.exp(np.mean(losses)), rel=1e-5)


def test_windows_are_seeded_slices() -> None:
    ids = torch.arange(1000)
    a, b = study.windows(ids, 5, 32, seed=3), study.windows(ids, 5, 32, seed=3)
    assert all(torch.equal(x, y) for x, y in zip(a, b, strict=True))
    for w in a:  # consecutive positions of the token stream
        assert w.shape == (1, 32) and torch.equal(w[0], torch.arange(w[0, 0], w[0, 0] + 32))
    assert not torch.equal(a[0], study.windows(ids, 5, 32, seed=4)[0])


def test_works_use_one_edition_and_split_disjointly(tmp_path: Path) -> None:
    for name in ("lear", "tempest", "hamlet", "othello", "macbeth"):
        (tmp_path / f"{name}_gut.txt").write_text(name)
        (tmp_path / f"{name}_gut_f.txt").write_text(name + " folio")
    found = works(tmp_path)
    assert list(found) == ["hamlet", "lear", "macbeth", "othello", "tempest"]
    calib, held = split_works(list(found), every=4)
    assert held == ["hamlet", "tempest"] and calib == ["lear", "macbeth", "othello"]
    with pytest.raises(ValueError, match=r"no \*_gut\.txt"):
        works(tmp_path / "missing")


def test_grid_end_to_end(tiny: torch.nn.Module) -> None:
    gen = torch.Generator().manual_seed(2)
    eval_ids, calib_ids = torch.randint(0, 97, (64,), generator=gen), torch.randint(0, 97, (200,))
    args = argparse.Namespace(
        sparsities=[0.5],
        allocations=["uniform", "alpha"],
        methods=["magnitude", "wanda-layer"],
        seeds=[0, 1],
        seqlen=16,
        nsamples=2,
    )
    layers = study.plans(tiny, [0.5], ["uniform"])["uniform", 0.5]
    assert len(layers) == 2 * 7 and set(layers.values()) == {0.5}  # q k v o gate up down
    rows = study.grid(tiny, eval_ids, calib_ids, args)
    assert [r["method"] for r in rows] == ["dense"] + ["magnitude"] * 2 + ["wanda-layer"] * 4
    assert all(np.isfinite(r["ppl"]) and r["ppl"] != rows[0]["ppl"] for r in rows[1:])
    dense = dict(tiny.named_parameters())
    assert not any(bool((dense[n] == 0).any()) for n in layers)  # the grid prunes copies


def test_held_out_takes_equal_whole_windows_per_work(tmp_path: Path) -> None:
    def chars(text: str, add_special_tokens: bool = False) -> dict[str, list[int]]:
        return {"input_ids": [ord(c) for c in text]}

    files = []
    for name, length in (("a", 50), ("b", 80)):
        files.append(tmp_path / f"{name}.txt")
        files[-1].write_text(name * length)
    ids = study.held_out(chars, files, total=70, seqlen=8)  # 35 per work -> 4 windows of 8
    assert ids.tolist() == [ord("a")] * 32 + [ord("b")] * 32
    with pytest.raises(ValueError, match="less than one window"):
        study.held_out(chars, files, total=10, seqlen=8)


def test_oneshot_from_cached_norms_equals_prune_module(tiny: torch.nn.Module) -> None:
    calib_ids = torch.randint(0, 97, (200,), generator=torch.Generator().manual_seed(3))
    args = argparse.Namespace(nsamples=3, seqlen=16)
    layers = study.plans(tiny, [0.6], ["alpha_peak"])["alpha_peak", 0.6]
    calib = study.windows(calib_ids, 3, 16, seed=5)
    norms = study.oneshot_norms(tiny, sorted(layers), calib_ids, args, seed=5)
    cached = dict(study.pruned_copy(tiny, layers, "wanda", calib, norms).named_parameters())
    direct = dict(study.pruned_copy(tiny, layers, "wanda", calib, None).named_parameters())
    assert all(torch.equal(cached[n], direct[n]) for n in layers)
    assert len(set(layers.values())) > 1  # the near-peak alpha plan is not uniform


def test_table_from_results_and_log(tmp_path: Path) -> None:
    from experiments.smollm2 import table

    rows = [{"method": "dense", "ppl": 30.0}]
    for seed, (u, a) in enumerate([(100.0, 80.0), (110.0, 120.0), (90.0, 70.0)]):
        rows += [
            {"method": "wanda", "allocation": "uniform", "sparsity": 0.7, "seed": seed, "ppl": u},
            {"method": "wanda", "allocation": "alpha", "sparsity": 0.7, "seed": seed, "ppl": a},
        ]
    (tmp_path / "r.json").write_text(json.dumps({"rows": rows[:5]}))
    (tmp_path / "r.log").write_text("noise\n" + "\n".join(json.dumps(r) for r in rows[3:]))
    frame = table.read_rows([tmp_path / "r.json", tmp_path / "r.log"])
    assert len(frame) == 6  # dense dropped, the overlapping row counted once
    text = table.markdown(frame)
    alpha = np.array([80.0, 120.0, 70.0])
    assert f"**{alpha.mean():,.1f} ± {alpha.std(ddof=1):,.1f} (3)**" in text
    assert text.rstrip().endswith("| alpha: 2/3 |")
