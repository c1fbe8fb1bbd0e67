"""A small offline sentence-classification task: which standard-library module documents a text.

Texts are the docstrings of the public API of seven Python standard-library modules (the
names in ``__all__``, or the public names without it: functions, the classes the module
defines and the public methods and properties defined in those classes), each cut to its
first paragraph and whitespace-normalised. A text documented under more than one module
(re-exports, shared inherited docs) or shorter than three words is dropped, so labels are
unambiguous. The texts come from the running interpreter, so the task is fixed for a given
Python version (3.11 for the numbers in docs/control.md).

Splits: a fixed validation set (``VAL_PER_CLASS`` per module) and a fixed test set
(``TEST_PER_CLASS``) drawn once with ``SPLIT_SEED``; each run draws ``per_class`` training
texts per module from the rest with its own seed (a low-data, paired design: the seed fixes
the training subset for every arm).
"""

from __future__ import annotations

import importlib
import inspect
from collections import Counter
from dataclasses import dataclass
from functools import cache

import numpy as np
from numpy.typing import NDArray

from experiments.grokking.data import stratified

MODULES = ("asyncio", "os", "decimal", "logging", "unittest", "inspect", "pathlib")
VAL_PER_CLASS = 12
TEST_PER_CLASS = 30
SPLIT_SEED = 2024
MIN_WORDS = 3


@dataclass(frozen=True)
class TextData:
    """Texts and integer labels (index into ``MODULES``) of one run's three splits."""

    train: list[str]
    y_train: NDArray[np.int64]
    val: list[str]
    y_val: NDArray[np.int64]
    test: list[str]
    y_test: NDArray[np.int64]


def _first_paragraph(doc: str) -> str:
    return " ".join(inspect.cleandoc(doc).split("\n\n")[0].split())


def _documented(obj: object) -> list[str]:
    """The docstring of ``obj`` and, for a class, of its own public methods and properties."""
    docs = [obj.__doc__] if isinstance(obj.__doc__, str) else []
    if inspect.isclass(obj):
        for name, raw in sorted(vars(obj).items()):
            if name.startswith("_"):
                continue
            member = raw.__func__ if isinstance(raw, staticmethod | classmethod) else raw
            if inspect.isroutine(member) or isinstance(member, property):
                doc = member.__doc__
                docs += [doc] if isinstance(doc, str) else []
    return docs


def module_texts(name: str) -> list[str]:
    """First paragraphs of the docstrings of one module's public API (sorted, unique)."""
    module = importlib.import_module(name)
    names = getattr(module, "__all__", None) or [a for a in dir(module) if a[0] != "_"]
    texts: set[str] = set()
    for attr in sorted(set(names)):
        obj = getattr(module, attr, None)
        # a class counts only where it is defined (typing.Text is str: not typing's docs)
        home = str(getattr(obj, "__module__", ""))
        own = home == name or home.startswith(name + ".")
        if inspect.isroutine(obj) or (inspect.isclass(obj) and own):
            texts.update(_first_paragraph(d) for d in _documented(obj))
    return sorted(t for t in texts if len(t.split()) >= MIN_WORDS)


@cache
def corpus(modules: tuple[str, ...] = MODULES) -> tuple[tuple[str, ...], tuple[int, ...]]:
    """All texts and their module labels; texts found under two modules are dropped."""
    per_module = [module_texts(m) for m in modules]
    counts = Counter(t for texts in per_module for t in texts)
    pairs = [(t, k) for k, texts in enumerate(per_module) for t in texts if counts[t] == 1]
    return tuple(t for t, _ in pairs), tuple(k for _, k in pairs)


def split(per_class: int, seed: int, modules: tuple[str, ...] = MODULES) -> TextData:
    """Fixed validation and test sets; ``per_class`` training texts per module (seeded)."""
    texts, labels = corpus(modules)
    y = np.asarray(labels, dtype=np.int64)
    test = stratified(y, TEST_PER_CLASS, SPLIT_SEED)
    rest = np.setdiff1d(np.arange(y.size), test)
    val = rest[stratified(y[rest], VAL_PER_CLASS, SPLIT_SEED + 1)]
    pool = np.setdiff1d(rest, val)
    train = pool[stratified(y[pool], per_class, seed)]

    def pick(idx: NDArray[np.int64]) -> tuple[list[str], NDArray[np.int64]]:
        return [texts[i] for i in idx], y[idx]

    return TextData(*pick(train), *pick(val), *pick(test))
