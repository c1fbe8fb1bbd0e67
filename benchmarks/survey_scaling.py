"""How the local survey engine's wall time scales with its worker count.

    OMP_NUM_THREADS=1 python benchmarks/survey_scaling.py ZOO/manifest.csv --copies 3 \\
        --workers 1 2 4 8 16

The models of the sources are copied ``--copies`` times into a temporary folder (distinct
files, so no result is shared), then surveyed once per worker count with the local engine
(a fresh pool each time, its start-up included; one worker scans in this process, as the
API does). The pools' forkserver, which imports torch once, is started before the timing
by a two-model warm-up survey. Prints, per worker count, the wall time,
the models per second, the speed-up over one worker and the parallel efficiency, and from
the largest run's rate the wall time of a 10,000-model survey. ``--device cuda`` scans on
the GPU instead (each worker process opens its own CUDA context).
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from layerscope.survey import expand_sources, survey


def copies(paths: list[str], folder: Path, n: int) -> list[str]:
    """``n`` distinct copies of every file of ``paths`` in ``folder``."""
    out = []
    for i in range(n):
        for path in paths:
            target = folder / f"c{i}-{Path(path).name}"
            shutil.copyfile(path, target)
            out.append(str(target))
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="models, globs or a manifest")
    parser.add_argument("--copies", type=int, default=1, help="copies of every model")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts")
    parser.add_argument("--device", default="cpu", help="scan device (cpu, cuda, auto)")
    args = parser.parse_args()
    cores = os.cpu_count()
    print(f"{cores} cores, load average {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory() as tmp:
        paths = copies([j.path for j in expand_sources(args.sources)], Path(tmp), args.copies)
        print(f"{len(paths)} models, device {args.device}")
        survey(paths[:2], workers=2, device=args.device)  # start the forkserver
        base = rate = 0.0
        for workers in args.workers:
            started = time.perf_counter()
            result = survey(paths, workers=workers, device=args.device)
            wall = time.perf_counter() - started
            failed = int((result.models["status"] != "ok").sum())
            rate = len(paths) / wall
            base = base or rate * args.workers[0]  # models/s of one worker
            peak = result.models["peak_rss_mb"].max()
            print(
                f"{workers:3d} workers: {wall:7.1f} s  {rate:7.1f} models/s  "
                f"x{rate / base:5.2f} of one worker  efficiency {rate / base / workers:4.2f}  "
                f"peak RSS/worker {peak:.0f} MB  failed {failed}"
            )
    print(f"10,000 models at the last rate: {10_000 / rate / 60:.1f} min")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
