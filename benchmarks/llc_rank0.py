"""Why the LLC of reduced-rank regression at true rank 0 reads low: burn-in vs localization.

    OMP_NUM_THREADS=1 python benchmarks/llc_rank0.py            # both tables (~2 min)
    OMP_NUM_THREADS=1 python benchmarks/llc_rank0.py --windows  # burn-in table only

``--windows``: one 3000-step run per case, data seed and γ (4 chains, library defaults
otherwise, ``keep_traces=True``), the relative error of the draws averaged over windows
of steps, so a trend with burn-in shows. Default: the tests' settings (γ = 0.1,
ε·nβ = 0.01, 4 chains × 1000 draws after 2000 burn-in) against the same with γ = 1, over
three sampler seeds. Closed forms: Aoyagi & Watanabe (2005); results in docs/llc.md.
"""

from __future__ import annotations

import argparse

from _rrr import gaussian_nll, rrr_problem
from layerscope.probes import llc

CASES = ((6, 4, 6, 0), (5, 4, 5, 0), (6, 4, 6, 2), (5, 3, 5, 1), (3, 4, 10, 1), (10, 4, 3, 1))
CASES += ((3, 10, 4, 2),)
WINDOWS = ((300, 600), (1000, 1300), (2000, 2300), (2700, 3000))  # steps, burn-in included


def windows(case: tuple[int, int, int, int], data_seed: int, gamma: float) -> list[float]:
    """Relative error of the draws averaged over each window of ``WINDOWS``."""
    model, x, y = rrr_problem(*case, seed=data_seed, train_steps=1500)
    res = llc.estimate(
        model, (x, y), gaussian_nll, num_chains=4, num_draws=2700, burnin=300,
        localization=gamma, keep_traces=True, seed=data_seed,
    )  # fmt: skip
    assert res.loss_traces is not None and res.baseline_trace is not None
    draws = res.nbeta * (res.loss_traces - res.baseline_trace[None, :])
    truth = llc.rrr_learning_coefficient(*case)
    return [float(draws[:, a - 300 : b - 300].mean()) / truth - 1 for a, b in WINDOWS]


def seeds(case: tuple[int, int, int, int], gamma: float) -> list[float]:
    """Relative error at the tests' settings (γ given) for sampler seeds 0, 1, 2."""
    model, x, y = rrr_problem(*case, seed=0, train_steps=1500)
    step = 0.01 / llc.default_nbeta(128)
    kw = {"num_chains": 4, "num_draws": 1000, "burnin": 2000, "step_size": step}
    truth = llc.rrr_learning_coefficient(*case)
    return [
        llc.estimate(model, (x, y), gaussian_nll, localization=gamma, seed=s, **kw).mean / truth - 1
        for s in (0, 1, 2)
    ]


def _pct(values: list[float]) -> str:
    return " ".join(f"{100 * v:+.0f}%" for v in values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--windows", action="store_true", help="the burn-in table only")
    args = parser.parse_args()
    print("| M×H×N×r | data seed | γ | " + " | ".join(f"steps {a}-{b}" for a, b in WINDOWS))
    for case in CASES[:3]:
        for data_seed in (0, 1):
            for gamma in (1.0, 0.1):
                row = " | ".join(f"{100 * v:+.0f}%" for v in windows(case, data_seed, gamma))
                print(f"| {'×'.join(map(str, case))} | {data_seed} | {gamma} | {row} |")
    if args.windows:
        return
    print("\n| M×H×N×r | λ | γ = 0.1 (3 seeds) | same with γ = 1 |")
    for case in CASES:
        truth = llc.rrr_learning_coefficient(*case)
        low, one = _pct(seeds(case, 0.1)), _pct(seeds(case, 1.0))
        print(f"| {'×'.join(map(str, case))} | {truth:g} | {low} | {one} |")


if __name__ == "__main__":
    main()
