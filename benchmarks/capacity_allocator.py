"""The capacity trainer with glibc's default allocator against ``keep_freed_memory``.

    PYTHONPATH=src:. python benchmarks/capacity_allocator.py [--vocab 16 256] [--steps 100]

K = 8 width-8 models stacked (``benchmarks/capacity_stacked.py``'s step), one thread, at
each vocabulary: one child process with the default allocator and one that first calls
``experiments.capacity.run.keep_freed_memory`` (the setting is process-wide, so each
side gets its own process, run one after the other). Prints milliseconds per step and
the child's system and user CPU seconds; the ratio is default / kept. The results are
bit-identical either way (the test for the setting counts page faults).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

_CHILD = """
import json, resource, sys
sys.path.insert(0, "benchmarks")
from experiments.capacity import run
from capacity_stacked import stacked_ms
if sys.argv[1] == "kept":
    assert run.keep_freed_memory()
ms = stacked_ms(8, 8, int(sys.argv[3]), vocab=int(sys.argv[2]))
use = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"ms": ms, "sys": use.ru_stime, "user": use.ru_utime}))
"""


def measure(mode: str, vocab: int, steps: int) -> dict[str, float]:
    """One child's milliseconds per step and its CPU seconds (system, user)."""
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": f"{root / 'src'}:{root}"}
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, mode, str(vocab), str(steps)],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out.splitlines()[-1])
    return result


def main() -> None:
    """Print one line per vocabulary."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--vocab", type=int, nargs="+", default=[16, 256])
    p.add_argument("--steps", type=int, default=100)
    args = p.parse_args()
    for vocab in args.vocab:
        base, kept = measure("default", vocab, args.steps), measure("kept", vocab, args.steps)
        print(
            f"V={vocab}: default {base['ms']:.1f} ms/step (sys {base['sys']:.1f} s, "
            f"user {base['user']:.1f} s); kept {kept['ms']:.1f} ms/step (sys {kept['sys']:.1f} s, "
            f"user {kept['user']:.1f} s); {base['ms'] / kept['ms']:.2f}x"
        )


if __name__ == "__main__":
    main()
