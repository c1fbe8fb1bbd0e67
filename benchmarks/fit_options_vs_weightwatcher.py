"""Tail-fit options (``fit="TPL"``, ``fix_fingers``) vs WeightWatcher 0.7.7, side by side.

    python benchmarks/fit_options_vs_weightwatcher.py [--layers 1] [--threads 1]

On the first ``--layers`` 384×384 attention matrices of the real all-MiniLM-L6-v2, each
option is timed in WeightWatcher (``analyze(layers=[...], ...)`` on the module, with
``pl_package="powerlaw"`` where it requires it and the powerlaw-2.0 keyword shim of
benchmarks/_ww_options.py) and in layerscope (``scan(..., include=[...])`` on the
same module), and the fitted alpha of both is printed with the ratio of the times.
"""

from __future__ import annotations

import argparse
from typing import Any

import torch

import _models
import _ww_options
import layerscope
from _models import import_weightwatcher, quiet

OPTIONS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "clip_xmax": ({"fix_fingers": "clip_xmax"}, {"fix_fingers": "clip_xmax"}),
    "xmin_peak": (
        {"fix_fingers": "xmin_peak", "pl_package": "powerlaw"},
        {"fix_fingers": "xmin_peak"},
    ),
    "TPL": ({"fit": "TPL", "pl_package": "powerlaw"}, {"fit": "TPL"}),
}
# WeightWatcher ids of MiniLM's first attention matrices (query, key, value, output).
WW_IDS = [12, 13, 14, 17]
NAMES = [
    "encoder.layer.0.attention.self.query.weight",
    "encoder.layer.0.attention.self.key.weight",
    "encoder.layer.0.attention.self.value.weight",
    "encoder.layer.0.attention.output.dense.weight",
]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=1, help="attention matrices (1-4)")
    parser.add_argument("--threads", type=int, default=1, help="torch/BLAS threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    ww = import_weightwatcher()
    module = _models.load_minilm_module()
    ids, names = WW_IDS[: args.layers], NAMES[: args.layers]
    print(f"MiniLM, {len(ids)} layer(s) of 384 eigenvalues, {args.threads} thread(s)")
    print(f"{'option':<10} {'WeightWatcher':>14} {'layerscope':>11} {'ratio':>7}  alpha ww / ours")
    for label, (ww_opts, ls_opts) in OPTIONS.items():
        with quiet(), _ww_options.ww_powerlaw_package():
            t_ww, ref = _models.clock(
                lambda o=ww_opts: ww.WeightWatcher(model=module).analyze(layers=ids, **o)
            )
        t_ls, res = _models.clock(
            lambda o=ls_opts: layerscope.scan(module, include=names, precision="float64", **o)
        )
        alphas = ", ".join(
            f"{a:.4f}/{b:.4f}" for a, b in zip(ref["alpha"], res.layers["alpha"], strict=True)
        )
        print(f"{label:<10} {t_ww:>12.2f} s {t_ls:>9.2f} s {t_ww / t_ls:>6.1f}x  {alphas}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
