"""Survey engines against a loop of ``layerscope scan`` processes, and Ray against local.

    OMP_NUM_THREADS=1 python benchmarks/survey.py ZOO/manifest.csv --limit 24 --workers 2

Prints, in one run on the same models:
  * a loop of ``layerscope scan MODEL -o x.json`` processes (today's way) vs the local
    engine (``--workers`` processes): wall times and their ratio;
  * the Ray engine on a local cluster of ``--workers`` CPUs vs the local engine, with
    and without the cluster's start-up;
  * Ray's per-task overhead (round trip of an empty task) and the bytes that travel
    per model (the pickled job going out, the pickled result coming back);
  * the peak resident memory of the largest local worker process;
  * from those, the estimated wall time of a 10,000-model survey on 1, 8 and 64 workers.
"""

from __future__ import annotations

import argparse
import math
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from layerscope import ScanOptions
from layerscope.survey import expand_sources, survey
from layerscope.survey.run import scan_kwargs
from layerscope.survey.worker import scan_one

OPTS = {"device": "cpu"}


def scan_loop(paths: list[str]) -> float:
    """Wall time of one ``layerscope scan`` process per model, one after another."""
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for i, path in enumerate(paths):
            out = Path(tmp) / f"{i}.json"
            cmd = [sys.executable, "-m", "layerscope", "scan", path, "-o", str(out), "-q"]
            subprocess.run([*cmd, "--device", "cpu", "-j", "1"], check=True)
    return time.perf_counter() - started


def timed_survey(paths: list[str], **kwargs: object) -> tuple[float, object]:
    started = time.perf_counter()
    result = survey(paths, **OPTS, **kwargs)  # type: ignore[arg-type]
    return time.perf_counter() - started, result


def ray_figures(paths: list[str], workers: int) -> dict[str, float]:
    import ray

    started = time.perf_counter()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - started

    @ray.remote(num_cpus=1)
    def empty() -> None:
        return None

    ray.get([empty.remote() for _ in range(2 * workers)])  # warm the worker processes
    n = 200
    t0 = time.perf_counter()
    ray.get([empty.remote() for _ in range(n)])
    overhead = (time.perf_counter() - t0) / n * workers  # per task, per worker slot
    wall, _ = timed_survey(paths, engine="ray", workers=workers)
    ray.shutdown()
    return {"startup_s": startup, "task_overhead_s": overhead, "wall_s": wall}


def bytes_per_model(paths: list[str]) -> tuple[float, float]:
    job = expand_sources(paths[:1])[0]
    options = scan_kwargs(ScanOptions(**OPTS))
    out = len(pickle.dumps((job, "k" * 40, options)))
    back = len(pickle.dumps(scan_one(job, "k" * 40, options)))
    return out, back


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="models, globs or a manifest")
    parser.add_argument("--limit", type=int, default=0, help="first N models only")
    parser.add_argument("--workers", type=int, default=2, help="worker processes / Ray CPUs")
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray figures")
    parser.add_argument("--no-loop", action="store_true", help="skip the scan-process loop")
    args = parser.parse_args()
    paths = [job.path for job in expand_sources(args.sources)]
    paths = paths[: args.limit] if args.limit else paths
    print(f"{len(paths)} models, {args.workers} workers")
    local, result = timed_survey(paths, workers=args.workers)
    loop = math.nan if args.no_loop else scan_loop(paths)
    scan_s = statistics.mean(result.models["scan_s"])  # type: ignore[attr-defined]
    peak_mb = result.models["peak_rss_mb"].max()  # type: ignore[attr-defined]
    print(f"scan loop (processes)  {loop:8.1f} s")
    print(f"local engine           {local:8.1f} s   speed-up x{loop / local:.2f}")
    print(f"mean scan time/model   {scan_s:8.3f} s   peak RSS of a worker {peak_mb:.0f} MB")
    out, back = bytes_per_model(paths)
    print(f"bytes per model: {out} out, {back} back (pickled)")
    if args.no_ray:
        return 0
    ray_fig = ray_figures(paths, args.workers)
    ratio = ray_fig["wall_s"] / local
    print(f"ray engine             {ray_fig['wall_s']:8.1f} s   ratio to local x{ratio:.2f}")
    print(f"ray cluster start-up   {ray_fig['startup_s']:8.1f} s (not in the ray wall time)")
    cold = (ray_fig["wall_s"] + ray_fig["startup_s"]) / local
    print(f"ray with start-up      ratio to local x{cold:.2f} (local includes its workers' start)")
    print(f"ray overhead per task  {ray_fig['task_overhead_s'] * 1e3:8.2f} ms")
    for w in (1, 8, 64):
        est = 10_000 * (scan_s + ray_fig["task_overhead_s"]) / w
        print(f"10,000 models on {w:2d} workers: ~{est / 60:.1f} min (+ start-up)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
