"""``layerscope plan prune`` (AlphaPruning ratios) and ``layerscope prune`` (apply them).

Library side: :mod:`layerscope.control` (plan.py: the allocation; prune.py: magnitude and
Wanda; apply.py: model files in and out). Docs: docs/control.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from rich.table import Table

from layerscope.cli._io import UserError, existing_path, import_object, stdout


def _fraction(text: str) -> float:
    try:
        return float(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from exc


def add_control_parsers(sub: Any) -> None:
    """The ``plan`` (with ``plan prune``) and ``prune`` sub-commands."""
    _add_plan_parser(sub)
    _add_prune_parser(sub)


def _add_plan_parser(sub: Any) -> None:
    plan = sub.add_parser("plan", help="plan an action from the diagnosis (pruning ratios)")
    actions = plan.add_subparsers(dest="action", required=True)
    p = actions.add_parser("prune", help="layer-wise sparsities from alpha (AlphaPruning)")
    p.add_argument("source", help="model file or directory (.safetensors, .pt, .bin, HF dir)")
    p.add_argument(
        "--sparsity", type=_fraction, required=True, help="target mean sparsity S in (0, 1)"
    )
    p.add_argument(
        "--metric",
        default="alpha",
        help="scan column ordering the layers, larger = pruned more (alpha, alpha_farms, ...)",
    )
    p.add_argument(
        "--eps", type=_fraction, default=0.2, help="ratios span [1-eps, 1+eps] (default 0.2)"
    )
    p.add_argument(
        "--mapping",
        choices=("block", "layer"),
        default="block",
        help="one value per repeated block (mean over its matrices; default) or per layer",
    )
    p.add_argument(
        "--fix-fingers",
        choices=("xmin_peak", "xmin_peak_intended", "clip_xmax"),
        help="tail fit behind alpha: default minimum-KS xmin; xmin_peak = xmin near the ESD "
        "peak as the AlphaPruning code fits it (WeightWatcher's bound); xmin_peak_intended "
        "= xmin in [0.95, 1.5)*peak; clip_xmax drops outlying top eigenvalues",
    )
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    p.add_argument("--out", "-o", metavar="FILE", help="write the plan (JSON) to FILE")
    p.add_argument("--quiet", "-q", action="store_true", help="no table")
    p.set_defaults(func=cmd_plan_prune)


def _add_prune_parser(sub: Any) -> None:
    p = sub.add_parser("prune", help="prune a model by a plan or a uniform sparsity")
    p.add_argument("source", help="HF model directory, .safetensors or .pt/.bin state dict")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--plan", metavar="PLAN.json", help="plan written by 'plan prune -o'")
    which.add_argument("--sparsity", type=_fraction, help="uniform sparsity (plan with eps 0)")
    p.add_argument(
        "--method", choices=("magnitude", "wanda"), default="magnitude", help="pruning score"
    )
    p.add_argument(
        "--out", "-o", required=True, metavar="FILE", help="output directory (HF) or file"
    )
    p.add_argument(
        "--calib-text", metavar="FILE", help="Wanda: text file tokenized into calibration windows"
    )
    p.add_argument(
        "--calib-data",
        metavar="PKG.MOD:MAKE",
        help="Wanda: returns an iterable of batches (dicts are passed as model(**batch))",
    )
    p.add_argument(
        "--sequential",
        nargs="?",
        const="block",
        choices=("block", "layer"),
        help="Wanda step by step, each step calibrated after the earlier ones are pruned: "
        "'block' (the default with the bare flag) or 'layer' (every linear layer in order)",
    )
    p.add_argument("--nsamples", type=int, default=32, help="Wanda text windows (default 32)")
    p.add_argument("--seqlen", type=int, default=128, help="tokens per window (default 128)")
    p.add_argument("--seed", type=int, default=0, help="seed of the window positions")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary")
    p.set_defaults(func=cmd_prune)


def cmd_plan_prune(args: argparse.Namespace) -> int:
    """Scan the model, allocate sparsities, print them and write the plan."""
    from layerscope.control.plan import prune_plan

    existing_path(args.source)
    plan = prune_plan(
        args.source,
        sparsity=args.sparsity,
        metric=args.metric,
        eps=args.eps,
        mapping=args.mapping,
        device=args.device,
        fix_fingers=args.fix_fingers,
    )
    if args.out:
        plan.to_json(args.out)
    if not args.quiet:
        key = "block" if args.mapping == "block" else "param"
        rows = plan.table.groupby(key, sort=False).agg(
            score=("score", "mean"), params=("params", "sum"), sparsity=("sparsity", "mean")
        )
        table = Table(title=f"plan: mean sparsity {plan.mean_sparsity:.4f} ({args.metric})")
        for column in (key, args.metric, "params", "sparsity"):
            table.add_column(column)
        for name, r in rows.iterrows():
            table.add_row(str(name), f"{r.score:.3f}", str(int(r.params)), f"{r.sparsity:.4f}")
        stdout().print(table)
    return 0


def _calibration(args: argparse.Namespace) -> Any:
    if args.method != "wanda":
        return None
    if args.calib_text:
        from layerscope.control.apply import text_calibration

        path = Path(args.calib_text)
        if not path.is_file():
            raise UserError(f"{path}: no such calibration text file")
        return text_calibration(
            Path(args.source), path.read_text(), args.nsamples, args.seqlen, args.seed
        )
    if args.calib_data:
        make = import_object(args.calib_data)
        return make() if callable(make) else make
    raise UserError("--method wanda needs --calib-text FILE or --calib-data PKG.MOD:MAKE")


def cmd_prune(args: argparse.Namespace) -> int:
    """Prune by the plan (or uniformly) and write the model in its input format."""
    from layerscope.control.apply import prune

    existing_path(args.source)
    if args.plan is not None and not Path(args.plan).is_file():
        raise UserError(f"{args.plan}: no such plan file")
    achieved = prune(
        args.source,
        args.out,
        plan=args.plan,
        sparsity=args.sparsity,
        method=args.method,
        calibration=_calibration(args),
        sequential=args.sequential or False,
    )
    if not args.quiet:
        total = len(achieved)
        mean = sum(achieved.values()) / total if total else 0.0
        stdout().print(f"pruned {total} matrices ({args.method}), mean sparsity {mean:.4f}")
        stdout().print(f"wrote {args.out}")
    return 0
