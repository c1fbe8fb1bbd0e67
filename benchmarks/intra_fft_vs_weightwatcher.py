"""``conv2d_fft`` and ``intra`` vs WeightWatcher 0.7.7, side by side in one process.

    cd benchmarks && PYTHONPATH=../src:. OMP_NUM_THREADS=1 python intra_fft_vs_weightwatcher.py

* conv2d_fft: the small EfficientNet-Lite-like CNN of the parity tests (trained 30 steps),
  every layer; WeightWatcher ``analyze(conv2d_fft=True)`` against layerscope
  ``scan(conv2d_fft="weightwatcher")`` (same numbers) and, for the cost of the exact
  reading, ``scan(conv2d_fft="operator", fft_size=16)``.
* intra: the real all-MiniLM-L6-v2 module, all six encoder blocks in module order
  (WeightWatcher ids 12-92, no embeddings); ``analyze(intra=True, sparsify=False)`` against
  ``scan(intra=True)``.

Prints the time of each and the ratio, and the largest |alpha difference| where both
compute the same thing.
"""

from __future__ import annotations

import argparse
from typing import Any

import numpy as np
import torch

import _models
import _ww_options
import layerscope
from _models import import_weightwatcher, quiet


def _ww(ww: Any, model: torch.nn.Module, **options: Any) -> tuple[float, Any]:
    with quiet():
        return _models.clock(lambda: ww.WeightWatcher(model=model).analyze(**options))


def _ls(model: torch.nn.Module, **options: Any) -> tuple[float, Any]:
    return _models.clock(lambda: layerscope.scan(model, **options))


def _line(label: str, t_ww: float, t_ls: float, diff: float | None) -> None:
    alpha = "" if diff is None else f"  max|d alpha| {diff:.1e}"
    print(f"{label:<34} {t_ww:>9.2f} s {t_ls:>9.2f} s {t_ww / t_ls:>6.1f}x{alpha}")


def _encoder_ids(ww: Any, module: torch.nn.Module) -> list[int]:
    with quiet():
        described = ww.WeightWatcher(model=module).describe()
    encoder = described["longname"].str.startswith("encoder.")
    return [int(i) for i in described.loc[encoder, "layer_id"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ww = import_weightwatcher()
    print(f"{'':<34} {'WeightWatcher':>11} {'layerscope':>11} {'ratio':>7}")
    cnn = _ww_options.trained_cnn()
    t_ww, ref = _ww(ww, cnn, conv2d_fft=True)
    t_ls, res = _ls(cnn, conv2d_fft="weightwatcher")
    diff = float(np.max(np.abs(ref["alpha"].to_numpy() - res.layers["alpha"].to_numpy())))
    _line("CNN conv2d_fft (WW reading)", t_ww, t_ls, diff)
    t_op, _ = _ls(cnn, conv2d_fft="operator", fft_size=16)
    _line("CNN conv2d_fft (operator, n=16)", t_ww, t_op, None)
    module = _models.load_minilm_module()
    ids = _encoder_ids(ww, module)
    t_ww, ref = _ww(ww, module, layers=ids, intra=True, sparsify=False)
    t_ls, res = _ls(module, include=("encoder.",), intra=True)
    diff = float(np.max(np.abs(ref["alpha"].to_numpy() - res.layers["alpha"].to_numpy())))
    _line(f"MiniLM intra, {len(res.layers)} pairs", t_ww, t_ls, diff)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
