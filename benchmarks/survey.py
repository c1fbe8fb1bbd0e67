"""Survey engines against a loop of ``layerscope scan`` processes, and Ray against local.

    OMP_NUM_THREADS=1 python benchmarks/survey.py ZOO/manifest.csv --loop-limit 24 --workers 2

Prints, in one run:
  * a loop of ``layerscope scan MODEL -o x.json`` processes (today's way) vs the local
    engine (``--workers`` processes) on the first ``--loop-limit`` models: wall times and
    their ratio (the loop costs seconds per model, so it runs on a prefix);
  * the Ray engine on a local cluster of ``--workers`` CPUs vs the local engine on all
    the models, with and without the cluster's start-up, and Ray's extra wall time per
    model;
  * Ray's per-task overhead (round trip of an empty task) and the bytes that travel
    per model (the pickled job going out, the pickled result coming back; mean over up
    to 8 models spread over the list);
  * the peak resident memory of the largest worker process of each engine;
  * from those, the estimated wall time of a 10,000-model survey on 1, 8 and 64 workers;
  * the machine's load average before and after (the figures are only as quiet as it).
"""

from __future__ import annotations

import argparse
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

from layerscope import ScanOptions
from layerscope.survey import expand_sources, survey
from layerscope.survey.run import scan_kwargs
from layerscope.survey.store import SurveyStore
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


def timed_survey(paths: list[str], **kwargs: object) -> tuple[float, pd.DataFrame]:
    started = time.perf_counter()
    result = survey(paths, **OPTS, **kwargs)  # type: ignore[arg-type]
    elapsed = time.perf_counter() - started
    failed = int((result.models["status"] != "ok").sum())
    if failed:
        raise SystemExit(f"{failed} models failed: {result.models['error'].dropna().iloc[0]}")
    return elapsed, result.models


def ray_figures(paths: list[str], workers: int) -> dict[str, float]:
    """Start a local cluster, time an empty task's round trip, then survey ``paths``
    twice: cold (each Ray worker imports torch on its first task) and warm."""
    import ray

    started = time.perf_counter()
    ray.init(address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False)
    startup = time.perf_counter() - started

    @ray.remote(num_cpus=1)
    def empty() -> None:
        return None

    ray.get([empty.remote() for _ in range(2 * workers)])  # start the worker processes
    n = 200
    t0 = time.perf_counter()
    ray.get([empty.remote() for _ in range(n)])
    overhead = (time.perf_counter() - t0) / n * workers  # per task, per worker slot
    cold, _ = timed_survey(paths, engine="ray", workers=workers)
    warm, models = timed_survey(paths, engine="ray", workers=workers)
    ray.shutdown()
    peak = float(models["peak_rss_mb"].max())
    return {
        "startup_s": startup,
        "task_overhead_s": overhead,
        "cold_s": cold,
        "warm_s": warm,
        "peak_mb": peak,
    }


def per_model_costs(paths: list[str], sample: int = 8) -> tuple[float, float, float]:
    """Mean pickled size of a job (driver -> worker) and of its result (back), and the
    driver's time to commit one result to the store (the serial part of any survey)."""
    step = max(1, len(paths) // sample)
    options = scan_kwargs(ScanOptions(device="cpu"))
    out, back, records = [], [], []
    for i, job in enumerate(expand_sources(paths[::step][:sample])):
        records.append(scan_one(job, f"{i:040d}", options))
        out.append(len(pickle.dumps((job, records[-1].key, options))))
        back.append(len(pickle.dumps(records[-1])))
    with tempfile.TemporaryDirectory() as tmp, SurveyStore(Path(tmp) / "s.db") as db:
        started = time.perf_counter()
        for record in records:
            db.put(record)
        commit = (time.perf_counter() - started) / len(records)
    return statistics.mean(out), statistics.mean(back), commit


def load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sources", nargs="+", help="models, globs or a manifest")
    parser.add_argument("--limit", type=int, default=0, help="first N models only")
    parser.add_argument("--workers", type=int, default=2, help="worker processes / Ray CPUs")
    parser.add_argument(
        "--loop-limit", type=int, default=24, help="models in the scan-process loop (0: skip)"
    )
    parser.add_argument("--no-ray", action="store_true", help="skip the Ray figures")
    args = parser.parse_args()
    paths = [job.path for job in expand_sources(args.sources)]
    paths = paths[: args.limit] if args.limit else paths
    print(f"{len(paths)} models, {args.workers} workers, load average {load()}")
    # Cold: the first survey in this process also starts the forkserver (imports torch).
    cold, _ = timed_survey(paths, workers=args.workers)
    warm, models = timed_survey(paths, workers=args.workers)
    print(f"local engine, {len(paths)} models  cold {cold:6.1f} s, warm {warm:6.1f} s")
    print(f"mean scan time/model   {statistics.mean(models['scan_s']):8.3f} s", end="")
    print(f"   peak RSS of a local worker {models['peak_rss_mb'].max():.0f} MB")
    if args.loop_limit:
        head = paths[: args.loop_limit]
        loop = scan_loop(head)
        local_head, _ = timed_survey(head, workers=args.workers)
        print(f"scan loop (processes), {len(head)} models  {loop:8.1f} s")
        print(f"local engine (warm), same {len(head)} models {local_head:8.1f} s", end="")
        print(f"   speed-up x{loop / local_head:.2f}, x{loop / cold * len(paths) / len(head):.2f}")
        print("  (the second figure: against the cold local rate over all the models)")
    out, back, commit = per_model_costs(paths)
    print(f"bytes per model: {out:.0f} out, {back:.0f} back (pickled, mean)")
    print(f"driver commit/model    {commit * 1e3:8.2f} ms to a file store (serial)")
    if not args.no_ray:
        ray_report(paths, args.workers, (cold, warm), commit)
    print(f"load average at the end {load()}")
    return 0


def ray_report(paths: list[str], workers: int, local: tuple[float, float], commit: float) -> None:
    fig = ray_figures(paths, workers)
    n = len(paths)
    print(f"ray cluster start-up   {fig['startup_s']:8.1f} s (in no wall time below)")
    pairs = (("cold", fig["cold_s"], local[0]), ("warm", fig["warm_s"], local[1]))
    for name, ray_s, local_s in pairs:
        extra = (ray_s - local_s) * workers / n
        print(
            f"ray engine, {name}       {ray_s:8.1f} s   ratio to local x{ray_s / local_s:.2f}",
            end="",
        )
        print(f"   extra {extra * 1e3:.1f} ms per model and worker")
    print(f"ray overhead per task  {fig['task_overhead_s'] * 1e3:8.2f} ms (empty task)")
    print(f"peak RSS of a ray worker {fig['peak_mb']:.0f} MB")
    busy = fig["warm_s"] * workers / n  # a worker's seconds per model, all overheads in
    print(f"ray worker time/model  {busy:8.3f} s (warm wall x workers / models)")
    for w in (1, 8, 64):
        est = 10_000 * max(busy / w, commit)
        print(f"10,000 models on {w:2d} workers: ~{est / 60:.1f} min (+ start-up)")


if __name__ == "__main__":
    raise SystemExit(main())
