"""Per-layer agreement of ``traps="fast"`` with the exact trap path and WeightWatcher.

Used by ``vs_weightwatcher.py`` for its ``fast-traps+mp+erg`` row: the fast scan's
``num_traps``, ``rand_distance``, ``rand_sigma_mp`` and ``trap_scale`` next to those of
the exact scan (same seed, different shuffle) and WeightWatcher's ``num_traps`` and
``rand_distance`` (its own unseeded shuffle).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

import layerscope

COLUMNS = ("num_traps", "rand_distance", "rand_sigma_mp", "trap_scale")
DEFAULT_COLUMNS = ("alpha", "entropy", "rank_loss")  # moved by precision="float32"?


def agreement(
    fast: layerscope.ScanResult, exact: layerscope.ScanResult | None, ww: pd.DataFrame
) -> dict[str, Any]:
    """Rows per layer and summary counts (equal trap counts, largest differences)."""
    ww_t = ww.assign(name=ww["longname"] + ".weight").set_index("name")
    f = fast.layers[fast.layers["status"] == "ok"].set_index("name")
    e = None if exact is None else exact.layers.set_index("name")
    rows = []
    for name in f.index:
        row: dict[str, Any] = {"name": name, "N": int(f.at[name, "N"]), "M": int(f.at[name, "M"])}
        row |= {f"{c}_fast": float(f.at[name, c]) for c in COLUMNS + DEFAULT_COLUMNS}
        if e is not None and name in e.index:
            row |= {f"{c}_exact": float(e.at[name, c]) for c in COLUMNS + DEFAULT_COLUMNS}
        if name in ww_t.index:
            row |= {f"{c}_ww": float(ww_t.at[name, c]) for c in ("num_traps", "rand_distance")}
        rows.append(row)
    frame = pd.DataFrame(rows)
    out: dict[str, Any] = {"rows": rows, "layers": len(rows)}
    for ref in ("exact", "ww"):
        if f"num_traps_{ref}" not in frame:
            continue
        both = frame.dropna(subset=[f"num_traps_{ref}"])
        out[f"traps_equal_{ref}"] = int((both["num_traps_fast"] == both[f"num_traps_{ref}"]).sum())
        out[f"compared_{ref}"] = len(both)
        diff = (both["rand_distance_fast"] - both[f"rand_distance_{ref}"]).abs()
        out[f"rand_distance_max_abs_diff_{ref}"] = float(diff.max()) if len(diff) else np.nan
    if "rand_sigma_mp_exact" in frame:
        rel = (frame["rand_sigma_mp_fast"] / frame["rand_sigma_mp_exact"] - 1).abs()
        out["rand_sigma_max_rel_diff_exact"] = float(rel.max())
        for col in DEFAULT_COLUMNS:
            out[f"{col}_max_abs_diff_exact"] = float(
                (frame[f"{col}_fast"] - frame[f"{col}_exact"]).abs().max()
            )
    return out


def print_agreement(console: Console, label: str, agr: dict[str, Any]) -> None:
    """The per-layer table and a one-line summary."""
    table = Table(title=f"{label}: traps='fast' vs exact (same seed) and WeightWatcher")
    cols = ("layer", "traps fast", "exact", "ww", "rand_dist fast", "exact", "ww")
    for col in (*cols, "sigma fast", "exact"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for r in agr["rows"]:
        table.add_row(
            r["name"].removesuffix(".weight"),
            *(_fmt(r.get(f"num_traps_{k}"), "{:.0f}") for k in ("fast", "exact", "ww")),
            *(_fmt(r.get(f"rand_distance_{k}"), "{:.4f}") for k in ("fast", "exact", "ww")),
            *(_fmt(r.get(f"rand_sigma_mp_{k}"), "{:.4f}") for k in ("fast", "exact")),
        )
    console.print(table)
    parts = [
        f"num_traps equal to {ref} on {agr[f'traps_equal_{ref}']}/{agr[f'compared_{ref}']}, "
        f"max |Δ rand_distance| {agr[f'rand_distance_max_abs_diff_{ref}']:.4f}"
        for ref in ("exact", "ww")
        if f"compared_{ref}" in agr
    ]
    if "rand_sigma_max_rel_diff_exact" in agr:
        parts.append(f"max |Δσ|/σ vs exact {agr['rand_sigma_max_rel_diff_exact']:.4f}")
        parts.append(
            "max |Δ| vs exact: alpha {:.2e}, entropy {:.2e}, rank_loss {:.0f}".format(
                agr["alpha_max_abs_diff_exact"],
                agr["entropy_max_abs_diff_exact"],
                agr["rank_loss_max_abs_diff_exact"],
            )
        )
    console.print("  " + "; ".join(parts))


def _fmt(value: Any, spec: str) -> str:
    return "—" if value is None or not np.isfinite(value) else spec.format(value)
