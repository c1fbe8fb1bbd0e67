"""LoRA audit: layerscope's r×r-core path vs the dense alternatives, in one run.

    python benchmarks/lora_audit.py [--quick] [--blocks N] [--repeat K] [--threads T]
                                    [--profile] [--no-ww] [--no-rss] [--out f.json]

Synthetic Llama-shaped rank-16 LoRA adapter (``benchmarks/_lora_models.py``; hidden
4096 / intermediate 11008, 1 block = 7 targets by default, or 1024 / 2816 with
``--quick``), written as a real PEFT adapter directory next to a safetensors file of
the base weights. With ``--quick`` the directory is also loaded by the real ``peft``
into a tiny LlamaForCausalLM of the same shapes (keys, factors and PEFT's own ΔW checked).

Paths, each timed ``--repeat`` times (min reported):

* (a) ``layerscope.compare(None, adapter_dir)``: ΔW = s·B·A analysed through the r×r core;
* (b) ``layerscope.compare(base_file, adapter_dir, lora_layer_alpha=False)``: (a) plus the
  base norms (rel_update, spectral_ratio by power iteration); (b2) the default
  ``compare(base_file, adapter_dir)``, which also takes two dense eigendecompositions per
  target, of the base matrix W and the merged W + s·B·A (base_alpha, tuned_alpha);
* (c) dense: materialise every ΔW = s·B·A, then ``layerscope.scan({name: ΔW})``;
* (d) WeightWatcher 0.7.7 delta analysis, ``WeightWatcher(model=tuned, base_model=base)
  .analyze()`` on nn.Modules (tuned = base + ΔW merged): a full SVD of every dense ΔW
  (``….analyze(base_model=base)`` would silently analyse the tuned weights: see
  ``_lora_models.ww_delta``);
* (e) WeightWatcher 0.7.7 ``analyze(peft=True)`` on a module with PEFT's layout
  (``base_layer`` / ``lora_A.default`` / ``lora_B.default``): WW's own LoRA route, which
  forms BA densely and takes its top-r singular values (truncated SVD).

Checks: alpha of (a) vs (c) per target (same 16 non-zero eigenvalues), the top-16
eigenvalues themselves, update_rank == 16, and rel_update of (b) vs ‖ΔW‖_F/‖W‖_F.

``--threads T`` limits torch and numpy/scipy BLAS/OpenMP threads (both tools, and the
peak-RSS subprocesses). On a small machine shared with another CPU-bound process, use
it: with as many threads as cores, a LAPACK eigensolver whose threads get descheduled
spins at its barriers (a 1024×1024 ``eigvalsh`` measured 0.1 s alone, up to 12 s
so contended), and min-of-runs does not hide it.
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import io
import json
import os
import platform
import pstats
import resource
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import numpy as np
import pandas as pd
import torch
from rich.console import Console
from rich.table import Table

import _lora_models as lm
import _models
import layerscope
from layerscope.functional import delta

console = Console(width=150)
THREADS = [0]  # --threads, also passed to the subprocesses
_CLK_TCK = os.sysconf("SC_CLK_TCK")
CONTENDED_CORES = 0.3  # other processes using more cores than this on average: "contended"
PATHS = {
    "a": "compare(None, adapter)  [r×r core]",
    "b": "compare(base, adapter, lora_layer_alpha=False)  [core + base norms]",
    "b2": "compare(base, adapter)  [+ base and merged eig]",
    "c": "dense ΔW + scan",
    "d": "WW delta (base_model=)  [full SVD of ΔW]",
    "e": "WW analyze(peft=True)   [dense BA, top-r SVD]",
}


# --------------------------------------------------------------------------- helpers
def _snapshot() -> tuple[float, float, float]:
    """(wall, machine busy CPU-seconds from /proc/stat, this process's CPU-seconds)."""
    fields = Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]
    ticks = [int(v) for v in fields]
    t = os.times()
    busy = (sum(ticks) - ticks[3] - ticks[4]) / _CLK_TCK
    return time.perf_counter(), busy, t.user + t.system


def timed(fn: Callable[[], Any], repeat: int) -> dict[str, Any]:
    """Min wall time of ``repeat`` runs, the cores other processes used during that run,
    and the result of the last run."""
    runs: list[tuple[float, float]] = []
    result = None
    for _ in range(repeat):
        w0, b0, c0 = _snapshot()
        result = fn()
        w1, b1, c1 = _snapshot()
        wall = w1 - w0
        runs.append((wall, max(0.0, ((b1 - b0) - (c1 - c0)) / max(wall, 1e-9))))
    best = min(runs)
    return {"s": best[0], "others_cores": best[1], "all_s": [r[0] for r in runs], "result": result}


def fmt_s(x: float) -> str:
    return f"{x:.2f} s" if x >= 0.1 else f"{x * 1000:.1f} ms"


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


# --------------------------------------------------------------------------- paths
def dense_scan(lora: lm.LoraSet) -> layerscope.ScanResult:
    """(c): materialise every ΔW (float32, as PEFT merges), scan them densely."""
    deltas = {m + ".weight": lora.delta(m) for m in lora.target_modules}
    return layerscope.scan(deltas, keep_spectra=True)


def try_ww(name: str, fn: Callable[[], Any], repeat: int) -> dict[str, Any]:
    """Time a WeightWatcher route; on failure keep the exact error text and skip it."""
    try:
        return timed(fn, repeat)
    except Exception as exc:  # an external tool: report whatever it raised
        msg = f"{type(exc).__name__}: {exc}".splitlines()[0]
        console.print(f"  {name} failed, skipped: {msg}", markup=False)
        return {"error": msg}


_RSS_CODE = """
import json, sys
import layerscope
def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
before = hwm()
base = None if sys.argv[1] == "-" else sys.argv[1]
layerscope.compare(base, sys.argv[2], lora_layer_alpha=False)
print(json.dumps({"import_kib": before, "peak_kib": hwm()}))
"""


def rss(base: Path | None, adapter: Path) -> dict[str, Any]:
    """Peak RSS (VmHWM, KiB) of one compare in a fresh interpreter, and after import only."""
    args = [str(base) if base else "-", str(adapter)]
    return _models.json_subprocess(_RSS_CODE, args, THREADS[0])


def profile(fn: Callable[[], Any], label: str, top: int = 12) -> str:
    """cProfile one call; the ``top`` functions by own time."""
    prof = cProfile.Profile()
    prof.runcall(fn)
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).sort_stats("tottime").print_stats(top)
    text = buf.getvalue()
    start = text.find("   ncalls")
    console.print(f"[bold]cProfile {label}[/] (by own time)")
    console.print(text[start:] if start >= 0 else text, markup=False, highlight=False)
    return text


# --------------------------------------------------------------------------- checks
def _ww_column(details: pd.DataFrame | None, strip: str, col: str) -> dict[str, float]:
    if details is None or col not in details:
        return {}
    names = details["longname"].str.replace(strip, "", regex=False) + ".weight"
    return dict(zip(names, details[col].astype(float), strict=True))


def _ratio(a: pd.Series, b: pd.Series) -> list[float]:
    """[min, max] of a / b (NaN when the WeightWatcher route did not run)."""
    r = a / b
    return [round(float(r.min()), 6), round(float(r.max()), 6)]


def agreement(
    lora: lm.LoraSet, results: dict[str, dict[str, Any]]
) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Per target: alpha of every path, top-16 eigenvalue error, update_rank, rel_update."""
    fast = results["a"]["result"].layers.set_index("name")
    with_base = results["b"]["result"].layers.set_index("name")
    dense = results["c"]["result"]
    dl = dense.layers.set_index("name")
    ww_d, ww_p = results["d"].get("result"), results["e"].get("result")
    strip = ".lora_BA.default"
    ww = {
        "alpha_ww_delta": _ww_column(ww_d, "", "alpha"),
        "alpha_ww_peft": _ww_column(ww_p, strip, "alpha"),
        "lmax_ww_delta": _ww_column(ww_d, "", "lambda_max"),
        "lmax_ww_peft": _ww_column(ww_p, strip, "lambda_max"),
    }
    rows = []
    for module in lora.target_modules:
        name = module + ".weight"
        A, B = lora.factors[module]
        core = delta.lowrank_eigenvalues(
            B.double().numpy(), A.double().numpy(), lm.SCALE, min(B.shape[0], A.shape[1])
        )
        ev_dense = dense.spectra[name]
        top = slice(-lm.RANK, None)
        ev_err = float(np.max(np.abs(core[top] - ev_dense[top]) / ev_dense[top]))
        d = lora.delta(module).double()
        true_rel = float(d.norm() / lora.base[name].double().norm())
        rows.append(
            {
                "name": name.removeprefix("model.layers.").removesuffix(".weight"),
                "shape": f"{B.shape[0]}×{A.shape[1]}",
                "alpha_fast": float(fast.at[name, "alpha"]),
                "alpha_dense": float(dl.at[name, "alpha"]),
                "alpha_fast_base": float(with_base.at[name, "alpha"]),
                **{k: v.get(name, float("nan")) for k, v in ww.items()},
                "lambda_max": float(core[-1]),
                "top16_ev_rel_err": ev_err,
                "update_rank": int(fast.at[name, "update_rank"]),
                "dense_matrix_rank": int(dl.at[name, "matrix_rank"]),
                "rel_update": float(with_base.at[name, "rel_update"]),
                "rel_update_err": abs(float(with_base.at[name, "rel_update"]) - true_rel)
                / true_rel,
                "base_alpha": float(
                    results["b2"]["result"].layers.set_index("name").at[name, "base_alpha"]
                ),
            }
        )
    frame = pd.DataFrame(rows)
    diff = (frame["alpha_fast"] - frame["alpha_dense"]).abs()
    summary = {
        "max_abs_alpha_diff_fast_vs_dense": float(diff.max()),
        "max_abs_alpha_diff_fast_vs_fast_with_base": float(
            (frame["alpha_fast"] - frame["alpha_fast_base"]).abs().max()
        ),
        "max_top16_ev_rel_err": float(frame["top16_ev_rel_err"].max()),
        "update_rank_all_16": bool((frame["update_rank"] == lm.RANK).all()),
        "dense_rank_all_16": bool((frame["dense_matrix_rank"] == lm.RANK).all()),
        "max_rel_update_err": float(frame["rel_update_err"].max()),
        # WW's λ_max over the true one: 1 when WW analysed ΔW = s·B·A itself
        "ww_delta_lambda_max_ratio": _ratio(frame["lmax_ww_delta"], frame["lambda_max"]),
        "ww_peft_lambda_max_ratio": _ratio(frame["lmax_ww_peft"], frame["lambda_max"]),
    }
    return frame, summary


# --------------------------------------------------------------------------- output
def timing_table(results: dict[str, dict[str, Any]], repeat: int) -> Table:
    table = Table(title=f"LoRA audit: wall time, min of {repeat} runs")
    for col in ("path", "min", "runs", "others' cores", "ratio / (a)", "ratio / (b)"):
        table.add_column(col, justify="left" if col == "path" else "right")
    fa, fb = results["a"].get("s"), results["b"].get("s")
    for key, label in PATHS.items():
        r = results[key]
        if "s" not in r:
            table.add_row(f"({key}) {label}", "skipped", "", "", r.get("error", "")[:40], "")
            continue
        mark = " !" if r["others_cores"] > CONTENDED_CORES else ""
        table.add_row(
            f"({key}) {label}",
            fmt_s(r["s"]),
            ", ".join(fmt_s(x) for x in r["all_s"]),
            f"{r['others_cores']:.2f}{mark}",
            f"{r['s'] / fa:.1f}x" if fa else "",
            f"{r['s'] / fb:.2f}x" if fb else "",
        )
    return table


# Per-target table: column -> header.
ALPHA_COLUMNS = {
    "name": "target",
    "shape": "out×in",
    "alpha_fast": "α (a)",
    "alpha_fast_base": "α (b)",
    "alpha_dense": "α (c)",
    "alpha_ww_delta": "α WW (d)",
    "alpha_ww_peft": "α WW (e)",
    "top16_ev_rel_err": "top-16 λ err",
    "update_rank": "rank (a)",
    "dense_matrix_rank": "rank (c)",
    "rel_update": "rel_update",
    "base_alpha": "base α",
}


def alpha_table(frame: pd.DataFrame) -> Table:
    table = Table(title="Per target: alpha by path, (a)-vs-(c) eigenvalue error, ranks")
    for col, header in ALPHA_COLUMNS.items():
        table.add_column(header, justify="left" if col in ("name", "shape") else "right")
    for _, row in frame.iterrows():
        cells = []
        for col in ALPHA_COLUMNS:
            v = row[col]
            if col == "name":
                block, *_, target = str(v).split(".")
                cells.append(f"{block}.{target}")
            elif isinstance(v, float):
                cells.append(f"{v:.1e}" if col.endswith("err") else f"{v:.3f}")
            else:
                cells.append(str(v))
        table.add_row(*cells)
    return table


# --------------------------------------------------------------------------- main
def limit_threads(n: int) -> None:
    """Same thread budget for every path: torch (OpenMP) and numpy/scipy BLAS."""
    from threadpoolctl import threadpool_limits

    THREADS[0] = n
    torch.set_num_threads(n)
    threadpool_limits(n)


def build(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    shape = _models.LLAMA_QUICK if args.quick else _models.LLAMA_FULL
    shape = dataclasses.replace(shape, blocks=args.blocks or 1)
    t0 = time.perf_counter()
    lora = lm.make_lora(shape, seed=0)
    base_file = lm.write_base(lora, workdir / "base.safetensors")
    adapter = lm.write_adapter(lora, workdir / "adapter", base_model=str(base_file))
    console.print(
        f"built {len(lora.factors)} targets ({shape.blocks} block(s), hidden {shape.hidden}, "
        f"intermediate {shape.intermediate}, r={lm.RANK}, s={lm.SCALE:g}) in "
        f"{time.perf_counter() - t0:.1f} s; adapter "
        f"{(adapter / 'adapter_model.safetensors').stat().st_size / 2**20:.1f} MiB, base "
        f"{base_file.stat().st_size / 2**20:.0f} MiB"
    )
    return {"shape": shape, "lora": lora, "base_file": base_file, "adapter": adapter}


def run_paths(env: dict[str, Any], args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    lora, base_file, adapter, k = env["lora"], env["base_file"], env["adapter"], args.repeat
    ww = _models.import_weightwatcher()
    res: dict[str, dict[str, Any]] = {}
    console.print("[dim](a) compare(None, adapter) ...[/]")
    res["a"] = timed(lambda: layerscope.compare(None, adapter), k)
    console.print("[dim](b) compare(base, adapter, lora_layer_alpha=False) ...[/]")
    res["b"] = timed(lambda: layerscope.compare(base_file, adapter, lora_layer_alpha=False), k)
    console.print("[dim](b2) compare(base, adapter) ...[/]")
    res["b2"] = timed(lambda: layerscope.compare(base_file, adapter), k)
    console.print("[dim](c) dense ΔW + scan ...[/]")
    res["c"] = timed(lambda: dense_scan(lora), k)
    if args.no_ww:
        res["d"] = res["e"] = {"error": "--no-ww"}
        return res
    base_mod = _models.module_from_tensors(lora.base)
    tuned_mod = _models.module_from_tensors(lm.merged_tensors(lora))
    console.print("[dim](d) WeightWatcher delta ...[/]")
    res["d"] = try_ww("WW delta", lambda: lm.ww_delta(ww, tuned_mod, base_mod), k)
    peft_mod = _models.module_from_tensors(lm.peft_layout_tensors(lora))
    console.print("[dim](e) WeightWatcher peft=True ...[/]")
    res["e"] = try_ww("WW peft", lambda: lm.ww_peft(ww, peft_mod), k)
    return res


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="hidden 1024 / inter 2816")
    parser.add_argument("--blocks", type=int, default=0, help="blocks, 7 targets each (default 1)")
    parser.add_argument("--repeat", type=int, default=2, help="runs per path (min reported)")
    parser.add_argument("--threads", type=int, default=0, help="thread limit (0: as is)")
    parser.add_argument("--profile", action="store_true", help="cProfile paths (a) and (b)")
    parser.add_argument("--no-ww", action="store_true", help="skip WeightWatcher (d, e)")
    parser.add_argument("--no-rss", action="store_true", help="skip peak-RSS subprocesses")
    parser.add_argument("--out", type=Path, help="write the figures as JSON")
    args = parser.parse_args(argv)
    if args.threads:
        limit_threads(args.threads)
    console.print(
        f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch {torch.__version__} "
        f"({torch.get_num_threads()} threads), python {platform.python_version()}"
    )
    with tempfile.TemporaryDirectory(prefix="lora_audit_") as tmp:
        env = build(args, Path(tmp))
        report: dict[str, Any] = {
            "cpu": cpu_model(),
            "torch_threads": torch.get_num_threads(),
            "shape": dataclasses.asdict(env["shape"]),
        }
        if args.quick:
            report["peft_check"] = lm.verify_with_peft(env["lora"], env["adapter"])
            console.print(f"real peft load check: {report['peft_check']}", markup=False)
        results = run_paths(env, args)
        frame, checks = agreement(env["lora"], results)
        console.print(timing_table(results, args.repeat))
        console.print(alpha_table(frame))
        console.print(f"checks: {checks}", markup=False)
        report["checks"] = checks
        if not args.no_rss:
            report["rss_kib"] = {
                "a": rss(None, env["adapter"]),
                "b": rss(env["base_file"], env["adapter"]),
            }
            console.print(f"peak RSS (fresh process, VmHWM KiB): {report['rss_kib']}", markup=False)
        if args.profile:
            profile(lambda: layerscope.compare(None, env["adapter"]), "(a)")
            profile(
                lambda: layerscope.compare(
                    env["base_file"], env["adapter"], lora_layer_alpha=False
                ),
                "(b)",
            )
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    console.print(f"this process ru_maxrss: {maxrss / 2**20:.2f} GiB (all paths)")
    report["ru_maxrss_kib"] = maxrss
    report["timings"] = {
        k: {kk: vv for kk, vv in r.items() if kk != "result"} for k, r in results.items()
    }
    report["per_target"] = frame.to_dict(orient="records")
    if args.out:
        args.out.write_text(json.dumps(report, indent=2, default=str))
    return 0 if checks["update_rank_all_16"] and checks["max_top16_ev_rel_err"] < 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
