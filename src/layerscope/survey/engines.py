"""Survey engines: run :func:`scan_one` over jobs and yield records as they finish.

``local``: worker processes on this machine (forked from a clean server process),
at most ``workers`` models in flight, so memory is bounded by the models being
scanned. ``ray``: one Ray task per model (``ray`` 2.x, the optional extra
``layerscope[ray]``); the workers read each model from its path, only the small
result travels back. Both yield in completion order; the survey sorts afterwards.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
from collections.abc import Generator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any

from layerscope.survey.sources import Job
from layerscope.survey.worker import ModelRecord, error_record, reason, scan_one

Task = tuple[Job, str]
DIED = "worker process died while scanning (killed or out of memory)"
RAY_MISSING = "the ray engine needs ray 2.x: pip install 'layerscope[ray]'"


def run_local(
    tasks: Sequence[Task], options: dict[str, Any], workers: int
) -> Generator[ModelRecord, None, None]:
    """Scan ``tasks`` in this process (``workers == 1``) or in a pool of processes.

    When a worker dies, the pool breaks and every model in flight fails with it; those
    are then rerun one at a time in a one-process pool, so only the model that kills
    its process becomes an error row, and the rest of the queue goes on in a fresh pool.
    """
    if workers == 1:
        for job, key in tasks:
            yield scan_one(job, key, options)
        return
    queue = list(reversed(tasks))
    while queue:
        suspects = yield from _pool_pass(queue, options, workers)
        suspects.reverse()  # queues pop from the end
        while suspects:  # one at a time: a death now names its model
            dead = yield from _pool_pass(suspects, options, 1)
            yield from (error_record(job, key, DIED) for job, key in dead)


def _init_worker(threads: int) -> None:
    # Ctrl-C is the parent's to handle (it stops submitting and keeps what finished);
    # workers x threads = cores, since oversubscribed OpenMP pools spin.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch

    torch.set_num_threads(threads)


def _context() -> multiprocessing.context.BaseContext:
    """``forkserver`` with torch and the scan preloaded: each worker (and each fresh one
    after a crash) forks from a server that imported them once, instead of importing
    torch again (seconds; measured 19 s -> 6 s for the crash test); nothing of this
    process's torch state is forked. ``spawn`` where there is no forkserver (Windows)."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["torch", "layerscope.survey.worker"])
    return ctx


def _pool_pass(
    queue: list[Task], options: dict[str, Any], workers: int
) -> Generator[ModelRecord, None, list[Task]]:
    """Run tasks popped from ``queue`` until it is empty or a worker dies; returns the
    tasks that were in flight when the pool broke."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    pool = ProcessPoolExecutor(
        workers,
        mp_context=_context(),
        initializer=_init_worker,
        initargs=(threads,),
    )
    inflight: dict[Future[ModelRecord], Task] = {}
    finished = False
    try:
        while queue or inflight:
            while queue and len(inflight) < workers:
                job, key = task = queue.pop()
                inflight[pool.submit(scan_one, job, key, options)] = task
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            for fut in done:
                if isinstance(fut.exception(), BrokenProcessPool):
                    finished = True
                    return list(inflight.values())
                inflight.pop(fut)
                yield fut.result()
        finished = True
        return []
    finally:
        pool.shutdown(wait=finished, cancel_futures=True)


def import_ray() -> Any:
    """The ``ray`` module, or a one-line ValueError naming the extra."""
    try:
        import ray
    except ImportError as exc:
        raise ValueError(RAY_MISSING) from exc
    return ray


def run_ray(
    tasks: Sequence[Task],
    options: dict[str, Any],
    workers: int,
    address: str | None,
    gpus: float,
) -> Generator[ModelRecord, None, None]:
    """One Ray task per model, up to twice the cluster's CPUs submitted at a time.

    Uses the running Ray session when there is one; else connects to ``address``
    (``"auto"`` or ``HOST:PORT``), or starts a local cluster of ``workers`` CPUs, and
    disconnects at the end.
    """
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        if address is None:
            ray.init(
                address="local", num_cpus=workers, include_dashboard=False, log_to_driver=False
            )
        else:
            try:
                ray.init(address=address, log_to_driver=False)
            except (ConnectionError, RuntimeError) as exc:
                raise ValueError(f"cannot join the Ray cluster at {address}: {exc}") from exc
    try:
        yield from _ray_loop(ray, tasks, options, gpus)
    finally:
        if started:
            ray.shutdown()


def _ray_loop(
    ray: Any, tasks: Sequence[Task], options: dict[str, Any], gpus: float
) -> Generator[ModelRecord, None, None]:
    remote = ray.remote(num_cpus=1, num_gpus=gpus, max_retries=0)(scan_one)
    limit = 2 * max(1, int(ray.cluster_resources().get("CPU", 1)))
    queue = list(reversed(tasks))
    inflight: dict[Any, Task] = {}
    finished = False
    try:
        while queue or inflight:
            while queue and len(inflight) < limit:
                job, key = task = queue.pop()
                inflight[remote.remote(job, key, options)] = task
            ready, _ = ray.wait(list(inflight), num_returns=1)
            job, key = inflight.pop(ready[0])
            try:
                record: ModelRecord = ray.get(ready[0])
            except ray.exceptions.RayError as exc:
                record = error_record(job, key, reason(exc))
            yield record
        finished = True
    finally:
        if not finished:
            for ref in inflight:
                ray.cancel(ref, force=True)
