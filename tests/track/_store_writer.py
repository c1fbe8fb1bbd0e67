"""A training process stand-in for the concurrency tests: logs steps into a run store.

Usage: ``python _store_writer.py DB RUN STEPS LAYERS SLEEP`` (Python puts this file's
directory on ``sys.path``, so ``conftest`` imports). Prints ``committed STEP`` after each
step's transaction commits (flushed), so the parent knows what must be on disk.
"""

from __future__ import annotations

import sys
import time

from conftest import fake_scan
from layerscope.track import RunStore


def main() -> None:
    db, run, steps, layers, sleep = sys.argv[1:6]
    with RunStore(db) as store:
        run_id = store.start_run(run)
        for step in range(int(steps)):
            store.log_scan(run_id, step, fake_scan(step, num_layers=int(layers)))
            store.log_scalars(run_id, step, loss=1.0 / (step + 1))
            print(f"committed {step}", flush=True)
            time.sleep(float(sleep))


if __name__ == "__main__":
    main()
