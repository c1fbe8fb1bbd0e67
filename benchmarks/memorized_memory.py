"""Peak memory of ``memorized_bits``: the cross-entropy over the whole batch at once
against chunks of at most ``CHUNK_ELEMENTS`` logits (what the probe does).

    PYTHONPATH=src python benchmarks/memorized_memory.py [--batch 4] [--length 512] [--vocab 50257]

A stand-in model returns seeded random logits of (batch, length, vocab), so the logits
are the only large tensor; each side runs in its own child process (peak resident
memory is per process), one after the other. The whole-batch side sets the chunk to
cover the batch, which is the probe's computation before chunking. Prints the peak
resident memory above the start, the ratio whole / chunked, and that the bits agree.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

_CHILD = """
import json, resource, sys, torch
from torch import nn
from layerscope.probes import memorization
batch, length, vocab, whole = (int(a) for a in sys.argv[1:5])
if whole:
    memorization.CHUNK_ELEMENTS = batch * length * vocab
class Logits(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.zeros(1))
    def forward(self, ids):
        g = torch.Generator().manual_seed(0)
        return torch.randn(ids.shape[0], ids.shape[1], vocab, generator=g)
ids = torch.randint(0, vocab, (batch, length), generator=torch.Generator().manual_seed(1))
start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
result = memorization.memorized_bits(Logits(), ids, batch_size=batch)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_gb": (peak - start) * 1024 / 1e9, "bits": result.model_bits.tolist()}))
"""


def measure(batch: int, length: int, vocab: int, whole: bool) -> dict[str, object]:
    """One child's peak resident memory above its start (GB) and its bits."""
    root = Path(__file__).resolve().parents[1]
    env = {"OMP_NUM_THREADS": "1", "PYTHONPATH": str(root / "src")}
    args = [str(batch), str(length), str(vocab), str(int(whole))]
    out = subprocess.run(
        [sys.executable, "-c", _CHILD, *args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    result: dict[str, object] = json.loads(out.stdout)
    return result


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--length", type=int, default=512)
    p.add_argument("--vocab", type=int, default=50257)
    a = p.parse_args()
    logits_gb = a.batch * a.length * a.vocab * 4 / 1e9
    whole = measure(a.batch, a.length, a.vocab, whole=True)
    chunked = measure(a.batch, a.length, a.vocab, whole=False)
    same = whole["bits"] == chunked["bits"]
    print(f"logits: {a.batch} x {a.length} x {a.vocab} float32 = {logits_gb:.2f} GB")
    big, small = float(whole["peak_gb"]), float(chunked["peak_gb"])  # type: ignore[arg-type]
    print(f"peak above start: whole batch {big:.2f} GB, chunked {small:.2f} GB, "
          f"ratio {big / small:.2f}x")  # fmt: skip
    print(f"bits identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
