"""``layerscope smooth``: SVD smoothing / sharpening of a model, written in its input format.

Library side: :mod:`layerscope.control.smooth` (rules) and
:mod:`layerscope.functional.smoothing` (the truncation). Docs: docs/control.md.
"""

from __future__ import annotations

import argparse
from typing import Any

from layerscope.cli._io import existing_path, stdout
from layerscope.control.smooth import METHODS, RULES


def add_smooth_parser(sub: Any) -> None:
    """The ``smooth`` sub-command.

    Args:
        sub: the ``add_subparsers`` object of the main parser.
    """
    p = sub.add_parser(
        "smooth", help="keep each layer's spectral tail (smooth) or remove its traps (sharpen)"
    )
    p.add_argument("source", help="HF model directory, .safetensors or .pt/.bin state dict")
    p.add_argument(
        "--out", "-o", required=True, metavar="FILE", help="output directory (HF) or file"
    )
    p.add_argument(
        "--method",
        choices=METHODS,
        default="smooth",
        help="smooth: keep the top k singular components; sharpen: remove the k traps",
    )
    p.add_argument(
        "--rule",
        choices=tuple(RULES),
        default="detx",
        help="k for smooth: detx (ERG tail, default), pl (power-law tail), mp (spikes above "
        "the MP edge), percent (--percent of the components), auto (mp where alpha > 6, "
        "else detx)",
    )
    p.add_argument(
        "--percent", type=float, default=0.8, help="fraction kept by --rule percent (0.8)"
    )
    p.add_argument(
        "--include", action="append", default=[], help="only layers matching (glob/substring)"
    )
    p.add_argument(
        "--exclude", action="append", default=[], help="skip layers matching (glob/substring)"
    )
    p.add_argument("--min-size", type=int, default=0, help="skip matrices smaller than this")
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles (sharpen)")
    p.add_argument("--device", default="auto", help="cpu, cuda or auto (default) for the scan")
    p.add_argument("--quiet", "-q", action="store_true", help="no summary")
    p.set_defaults(func=cmd_smooth)


def cmd_smooth(args: argparse.Namespace) -> int:
    """Smooth or sharpen the model and write it in its input format.

    Args:
        args: the parsed command line.
    """
    from layerscope.control.smooth import smooth

    existing_path(args.source)
    done = smooth(
        args.source,
        args.out,
        method=args.method,
        rule=args.rule,
        percent=args.percent,
        include=args.include,
        exclude=args.exclude,
        min_size=args.min_size,
        seed=args.seed,
        device=args.device,
    )
    if not args.quiet:
        verb = "kept" if args.method == "smooth" else "removed"
        for name, k in done.items():
            stdout().print(f"{name}: top {k} singular components {verb}")
        stdout().print(f"{args.method}ed {len(done)} matrices; wrote {args.out}")
    return 0
