"""End-to-end scan of a 7B-shaped model on one GPU (issue goal: under 60 s on an H100-class GPU).

The model: 32 Llama blocks (q/k/v/o 4096×4096; gate/up 11008×4096, down 4096×11008) and a
32,000×4096 embedding, random bf16 weights (std 0.02, as a Llama init) written with
safetensors in one shard per 4 blocks, read back by ``layerscope.scan`` as a user's
checkpoint directory would be. Each timed row is a fresh ``scan`` call, file reading
included; the first call also pays CUDA's start-up and is reported apart.

    python benchmarks/gpu_7b.py --out /tmp/llama7b            # the full model
    python benchmarks/gpu_7b.py --out /tmp/tiny --blocks 1 --hidden 256 --ffn 688 \
        --vocab 1000 --device cpu
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

import layerscope
from _models import llama_block_dims


def write_model(out: Path, blocks: int, hidden: int, ffn: int, vocab: int, dev: str) -> float:
    """Random bf16 weights in safetensors shards of 4 blocks with the shard index
    (``model.safetensors.index.json``) that ``save_pretrained`` writes; returns seconds."""
    from safetensors.torch import save_file

    t0 = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    gen = torch.Generator(device=dev).manual_seed(0)

    def rand(rows: int, cols: int) -> torch.Tensor:
        w = torch.randn(rows, cols, generator=gen, device=dev, dtype=torch.float32) * 0.02
        return w.to(torch.bfloat16).cpu()

    num = (blocks + 3) // 4
    weight_map: dict[str, str] = {}
    first = {"model.embed_tokens.weight": rand(vocab, hidden)}
    for shard, start in enumerate(range(0, blocks, 4)):
        tensors = first if start == 0 else {}
        for i in range(start, min(blocks, start + 4)):
            for name, (rows, cols) in llama_block_dims(hidden, ffn).items():
                tensors[f"model.layers.{i}.{name}.weight"] = rand(rows, cols)
        file = f"model-{shard + 1:05d}-of-{num:05d}.safetensors"
        save_file(tensors, str(out / file), metadata={"format": "pt"})
        weight_map.update(dict.fromkeys(tensors, file))
        first = {}
    index = {"metadata": {}, "weight_map": weight_map}
    (out / "model.safetensors.index.json").write_text(json.dumps(index))
    return time.perf_counter() - t0


def timed_scan(path: Path, **options: object) -> tuple[float, int, float]:
    """Seconds of one full scan, the number of layers and their median alpha."""
    t0 = time.perf_counter()
    result = layerscope.scan(str(path), **options)  # type: ignore[arg-type]
    secs = time.perf_counter() - t0
    alpha = result.layers["alpha"].median()
    return secs, len(result.layers), float(alpha)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="folder for the weights")
    p.add_argument("--blocks", type=int, default=32)
    p.add_argument("--hidden", type=int, default=4096)
    p.add_argument("--ffn", type=int, default=11008)
    p.add_argument("--vocab", type=int, default=32000)
    p.add_argument("--device", default="cuda")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--jobs", type=int, nargs="+", default=[1], help="scan threads to time")
    p.add_argument("--budget", type=float, default=240.0, help="start no scan after this many s")
    args = p.parse_args()
    dev = args.device
    write_s = write_model(args.out, args.blocks, args.hidden, args.ffn, args.vocab, dev)
    params = args.blocks * sum(r * c for r, c in llama_block_dims(args.hidden, args.ffn).values())
    params += args.vocab * args.hidden
    print(f"wrote {params / 1e9:.2f}B parameters (bf16) in {write_s:.1f} s", flush=True)
    if dev == "cuda":  # CUDA's context, cuBLAS and cuSOLVER start outside the timed scans
        torch.linalg.eigvalsh(torch.eye(64, device=dev, dtype=torch.float64))
    rows = []
    # `jobs` threads overlap file reading, the GPU's eigensolves and the CPU's tail fits
    runs: list[tuple[str, dict[str, object]]] = [
        (f"default metrics, jobs {j}", {"device": dev, "jobs": j}) for j in args.jobs
    ]
    runs.append(("default metrics, float32", {"device": dev, "precision": "float32"}))
    top = max(args.jobs)
    runs.append(
        (f"all metrics (traps), jobs {top}", {"device": dev, "metrics": "all", "jobs": top})
    )
    spent = 0.0
    for label, options in runs:
        if spent > args.budget:
            print(f"{label:36s} skipped: {spent:.0f} s spent, budget {args.budget:.0f} s")
            continue
        secs, layers, alpha = timed_scan(args.out, **options)
        spent += secs
        rows.append({"run": label, "seconds": secs, "layers": layers, "median_alpha": alpha})
        print(f"{label:36s} {secs:7.1f} s  {layers} layers  median alpha {alpha:.3f}", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"params": params, "write_s": write_s, "rows": rows}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
