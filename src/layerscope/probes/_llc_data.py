"""Data sources of the LLC estimator: tensors, DataLoaders and plain iterables of batches."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset, TensorDataset, default_collate

from layerscope.probes._sgld import cycle_batches

DEFAULT_TENSOR_BATCH = 128


@dataclass(frozen=True)
class DataInfo:
    """What the estimator knows about ``data``: the batch size and the data set size."""

    batch_size: int | None
    num_samples: int | None


def _tensor_batches(
    tensors: Sequence[torch.Tensor], batch_size: int, seed: int, single: bool
) -> Iterator[Any]:
    """Shuffled minibatches without replacement, reshuffled every epoch (a seeded generator)."""
    n = len(tensors[0])
    gen = torch.Generator().manual_seed(seed)
    while True:
        order = torch.randperm(n, generator=gen)
        for start in range(0, n - batch_size + 1, batch_size):
            idx = order[start : start + batch_size]
            parts = tuple(t[idx.to(t.device)] for t in tensors)
            yield parts[0] if single else parts


def _tensor_source(dataset: Any) -> tuple[TensorDataset, torch.Tensor | None] | None:
    """A plain ``TensorDataset``, or a ``Subset`` (of a Subset...) of one, as the
    tensors' owner and the map from the data set's indices to their rows (None: the
    identity); None for any other data set."""
    if type(dataset) is TensorDataset:
        return dataset, None
    if type(dataset) is Subset:
        inner = _tensor_source(dataset.dataset)
        if inner is None:
            return None
        rows = torch.as_tensor(dataset.indices, dtype=torch.long)
        return inner[0], rows if inner[1] is None else inner[1][rows]
    return None


def _gathers(loader: DataLoader[Any]) -> bool:
    """Whether ``loader`` can be read by :class:`_Gathered`: an in-process,
    auto-collating loader of a plain ``TensorDataset`` (or a ``Subset`` of one, as
    ``random_split`` makes) with the default collation."""
    return (
        _tensor_source(loader.dataset) is not None
        and loader.num_workers == 0
        and loader.batch_sampler is not None
        and loader.collate_fn is default_collate
        and not loader.pin_memory
    )


class _Gathered:
    """The epochs of ``loader`` as an iterable (for :func:`cycle_batches`), each batch
    by one gather per tensor instead of B ``__getitem__`` calls and a stack (13x less
    time per batch of 256 rows; docs/benchmarks.md, LLC section).

    Every epoch draws from torch's random number generators exactly what iterating the
    loader draws (the iterator's base seed, then the sampler's own draws), so a seed
    gives the same batches and leaves the global generator where the loader would.
    Like ``default_collate`` of a tuple sample, a batch is a list of tensors.
    """

    def __init__(self, loader: DataLoader[Any]) -> None:
        source = _tensor_source(loader.dataset)
        assert source is not None and loader.batch_sampler is not None
        self.loader, self.batch_sampler = loader, loader.batch_sampler
        self.dataset, self.index_map = source

    def __iter__(self) -> Iterator[list[torch.Tensor]]:
        indices = iter(self.batch_sampler)
        # What torch.utils.data's _BaseDataLoaderIter draws when it is created.
        torch.empty((), dtype=torch.int64).random_(generator=self.loader.generator)
        for idx in indices:
            rows = torch.as_tensor(idx, dtype=torch.long)
            if self.index_map is not None:
                rows = self.index_map[rows]
            yield [t[rows.to(t.device)] for t in self.dataset.tensors]


def describe(data: Any, batch_size: int | None) -> DataInfo:
    """Batch and data set size of ``data`` (None where they cannot be known).

    Raises:
        ValueError: tensors of different lengths, an empty data set, or a bad batch size.
    """
    if batch_size is not None and batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    if isinstance(data, torch.Tensor) or _is_tensor_tuple(data):
        tensors = [data] if isinstance(data, torch.Tensor) else list(data)
        n = len(tensors[0])
        if n == 0 or any(len(t) != n for t in tensors):
            raise ValueError(f"data: tensors must be non-empty and equally long, got {_lens(data)}")
        size = min(n, DEFAULT_TENSOR_BATCH) if batch_size is None else batch_size
        if size > n:
            raise ValueError(f"batch_size {size} is larger than the {n} samples in data")
        return DataInfo(size, n)
    if isinstance(data, DataLoader):
        if batch_size is not None and batch_size != data.batch_size:
            raise ValueError(f"batch_size {batch_size} differs from the DataLoader's")
        dataset = data.dataset
        known = len(dataset) if hasattr(dataset, "__len__") else None
        return DataInfo(data.batch_size, known)
    if isinstance(data, Iterable):
        return DataInfo(batch_size, None)
    raise ValueError(
        f"data: expected tensors, a DataLoader or an iterable of batches, got {data!r}"
    )


def batches(data: Any, batch_size: int | None, seed: int) -> Iterator[Any]:
    """An endless stream of batches from ``data`` (see :func:`describe`)."""
    if isinstance(data, torch.Tensor):
        assert batch_size is not None
        return _tensor_batches([data], batch_size, seed, single=True)
    if _is_tensor_tuple(data):
        assert batch_size is not None
        return _tensor_batches(list(data), batch_size, seed, single=False)
    if isinstance(data, DataLoader) and _gathers(data):
        return cycle_batches(_Gathered(data))
    return cycle_batches(data)


def _is_tensor_tuple(data: Any) -> bool:
    return (
        isinstance(data, tuple) and len(data) > 0 and all(isinstance(t, torch.Tensor) for t in data)
    )


def _lens(data: Any) -> list[int]:
    return [len(data)] if isinstance(data, torch.Tensor) else [len(t) for t in data]
