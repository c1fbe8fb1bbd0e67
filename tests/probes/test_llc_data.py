"""The LLC estimator's data sources: a DataLoader of a TensorDataset is read by gathers
that must give exactly the loader's own batches and random number draws."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import torch
from torch.utils.data import DataLoader, RandomSampler, Subset, TensorDataset, random_split

from layerscope.probes._llc_data import _gathers, batches


def _loader_stream(loader: DataLoader[Any]) -> Any:
    while True:
        yield from loader


def _dataset() -> TensorDataset:
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(50, 3, generator=gen)
    y = torch.randint(0, 5, (50,), generator=gen)
    return TensorDataset(x, y)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"batch_size": 8, "shuffle": True},
        {"batch_size": 8, "shuffle": True, "drop_last": True},
        {"batch_size": 7, "shuffle": False},
        {"batch_size": 8, "shuffle": True, "generator": 5},
    ],
)
def test_gathered_batches_equal_the_loaders_batches_and_draws(kwargs: dict[str, Any]) -> None:
    def loader() -> DataLoader[Any]:
        seed = kwargs.get("generator")
        gen = None if seed is None else torch.Generator().manual_seed(seed)
        return DataLoader(_dataset(), **{**kwargs, "generator": gen})

    assert _gathers(loader())
    torch.manual_seed(11)
    expected = list(itertools.islice(_loader_stream(loader()), 20))  # over 2+ epochs
    after_loader = torch.rand(3)
    torch.manual_seed(11)
    got = list(itertools.islice(batches(loader(), None, seed=0), 20))
    after_gathers = torch.rand(3)
    assert len(got) == len(expected)
    for a, b in zip(got, expected, strict=True):
        assert isinstance(a, list) and isinstance(b, list)
        for ta, tb in zip(a, b, strict=True):
            assert ta.dtype == tb.dtype and ta.shape == tb.shape
            assert torch.equal(ta, tb)
    # The global generator is left where iterating the loader leaves it.
    assert torch.equal(after_loader, after_gathers)


def test_subsets_of_a_tensor_dataset_are_gathered_too() -> None:
    dataset = _dataset()
    train, _ = random_split(dataset, [0.8, 0.2], generator=torch.Generator().manual_seed(1))
    nested = Subset(train, [*range(5, 30), -1])
    for data in (train, nested):
        loader = DataLoader(data, batch_size=6, shuffle=True)
        assert _gathers(loader)
        torch.manual_seed(4)
        expected = list(itertools.islice(_loader_stream(loader), 12))
        torch.manual_seed(4)
        got = list(itertools.islice(batches(loader, None, seed=0), 12))
        for a, b in zip(got, expected, strict=True):
            assert all(torch.equal(ta, tb) for ta, tb in zip(a, b, strict=True))
    assert not _gathers(DataLoader(Subset(list(range(10)), [1, 2]), batch_size=2))


def test_other_loaders_are_iterated_as_they_are() -> None:
    dataset = _dataset()
    assert not _gathers(DataLoader(dataset, batch_size=4, collate_fn=lambda b: b))
    assert not _gathers(DataLoader(dataset, batch_size=None))
    assert not _gathers(DataLoader(list(zip(*dataset.tensors, strict=True)), batch_size=4))
    sampler = RandomSampler(dataset, replacement=True, num_samples=12)
    loader = DataLoader(dataset, batch_size=4, sampler=sampler)
    assert _gathers(loader)  # any sampler: its draws are replayed in the same order
    torch.manual_seed(2)
    expected = list(itertools.islice(_loader_stream(loader), 6))
    torch.manual_seed(2)
    got = list(itertools.islice(batches(loader, None, seed=0), 6))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(got, expected, strict=True))


def test_an_empty_loader_is_a_clear_error() -> None:
    x = torch.randn(3, 2)
    loader = DataLoader(TensorDataset(x), batch_size=4, drop_last=True)
    with pytest.raises(ValueError, match="yielded no batches"):
        next(batches(loader, None, seed=0))
