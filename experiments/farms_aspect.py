"""FARMS vs plain alpha on Gaussian random matrices of aspect ratio 1 to 1/16.

A random matrix has no learned structure, so a fit that measures training quality should
give one value whatever its shape. Prints mean ± std over seeds of plain alpha and FARMS
alpha (Hu et al., ICML 2025, arXiv 2506.06280), each with the median-xmin tail (the
released FARMS default) and with the minimum-KS tail (layerscope's ``alpha``).

    PYTHONPATH=src python experiments/farms_aspect.py [--rows 256] [--seeds 5]
"""

from __future__ import annotations

import argparse

import numpy as np

from layerscope.functional import farms, powerlaw

FITS = {"median": powerlaw.fit_power_law_median, "KS": powerlaw.fit_power_law}


def _cell(values: list[float]) -> str:
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=256, help="rows M of the M × qM matrices")
    parser.add_argument("--seeds", type=int, default=5, help="matrices per aspect ratio")
    args = parser.parse_args()
    header = ["shape", "Q"] + [f"{k} ({t})" for t in FITS for k in ("alpha", "alpha_farms")]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for q in (1, 2, 4, 8, 16):
        cells: dict[str, list[float]] = {h: [] for h in header[2:]}
        for seed in range(args.seeds):
            W = np.random.default_rng([seed, q]).standard_normal((args.rows, q * args.rows))
            ev = farms.squared_singular_values(W)
            for t, fit in FITS.items():
                cells[f"alpha ({t})"].append(fit(ev, powerlaw.EVALS_THRESH).alpha)
                cells[f"alpha_farms ({t})"].append(farms.farms_alpha(W, fit=fit).alpha)
        row = [f"{args.rows}×{q * args.rows}", str(q)] + [_cell(v) for v in cells.values()]
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
