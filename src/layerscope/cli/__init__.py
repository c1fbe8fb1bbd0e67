"""The command line. The only package that parses arguments or prints."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape

from layerscope._version import __version__
from layerscope.adapters import SourceError
from layerscope.cli._io import EXIT_USAGE, FORMATS, UserError
from layerscope.cli.attribute import add_attribute_parser
from layerscope.cli.commands import (
    cmd_compare,
    cmd_diff,
    cmd_report,
    cmd_scan,
)
from layerscope.cli.control import add_control_parsers
from layerscope.cli.llc import add_llc_parser
from layerscope.cli.memorized import add_memorized_parser
from layerscope.cli.smooth import add_smooth_parser
from layerscope.cli.survey import add_survey_parser
from layerscope.cli.track import add_status_parser, add_track_parser


def _add_gate_options(p: argparse.ArgumentParser, fail_on_help: str) -> None:
    p.add_argument("--fail-on", action="append", default=[], metavar="RULE", help=fail_on_help)
    p.add_argument("--policy", metavar="TOML", help="gate rules from a file: fail_on = [...]")


def _add_output_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, help="stdout format (default: table)")
    p.add_argument(
        "--out",
        "-o",
        action="append",
        default=[],
        metavar="FILE",
        help="also write results to FILE (.json/.csv/.parquet); repeatable",
    )
    _add_gate_options(
        p, "gate: exit 1 when RULE holds, e.g. 'under-trained>20%%', 'mean(alpha)>5'; repeatable"
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or tables")


def _add_html_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--html",
        metavar="FILE",
        help="also write a self-contained HTML report (scan: keeps per-layer spectra for it)",
    )
    p.add_argument("--open", action="store_true", help="open the HTML report in a browser")


def _add_scan_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--all",
        action="store_true",
        help="every metric but the costly named-only ones, incl. traps (= --metrics all)",
    )
    p.add_argument(
        "--metrics",
        help="comma-separated groups: default,all,esd,powerlaw,norms,mp,erg,traps and the "
        "named-only vectors (eigenvector localization), alpha_farms (FARMS windows)",
    )
    p.add_argument(
        "--include",
        action="append",
        default=[],
        metavar="PATTERN",
        help="analyse only matrices whose name matches (glob or substring)",
    )
    p.add_argument(
        "--exclude",
        action="append",
        default=[],
        metavar="PATTERN",
        help="skip matrices whose name matches; repeatable",
    )
    p.add_argument(
        "--kind",
        action="append",
        default=[],
        help="analyse only this kind (linear, embedding, conv2d, attention-q, expert...)",
    )
    p.add_argument(
        "--min-size", type=int, default=0, help="skip matrices whose smaller side is below N"
    )
    p.add_argument(
        "--device",
        default="auto",
        choices=("cpu", "cuda", "auto"),
        help="where eigenvalues are computed (auto: CUDA when available)",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=int,
        default=0,
        help="tensors analysed in parallel (default 0: one per CPU core)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the shuffles used for traps")
    p.add_argument(
        "--traps",
        default="exact",
        choices=("exact", "fast"),
        help="traps group: exact (full eigensolve of the shuffled matrix) or fast (Lanczos "
        "outliers + certified count, SLQ bulk; docs/metrics.md)",
    )
    p.add_argument(
        "--precision",
        default="auto",
        choices=("auto", "float64", "float32"),
        help="eigensolver precision (auto: float32 where verified accurate, else float64)",
    )
    p.add_argument(
        "--fit",
        default="PL",
        choices=("PL", "TPL"),
        help="tail fit: PL power law (default) or TPL truncated power law (adds Lambda)",
    )
    p.add_argument(
        "--fix-fingers",
        choices=("clip_xmax", "xmin_peak", "xmin_peak_intended"),
        help="guard the fit against outlying top eigenvalues: clip_xmax drops them "
        "(adds num_fingers, raw_alpha); xmin_peak searches xmin near the ESD peak with "
        "WeightWatcher's lower bound; xmin_peak_intended with the bound 0.95*peak "
        "(docs/metrics.md)",
    )
    p.add_argument(
        "--conv2d-fft",
        choices=("operator", "weightwatcher"),
        help="read Conv2d kernels through their 2-D FFT: operator = singular values of the "
        "convolution on --fft-size inputs (Sedghi et al. 2019); weightwatcher = "
        "WeightWatcher 0.7.7's conv2d_fft (docs/metrics.md)",
    )
    p.add_argument(
        "--fft-size",
        type=int,
        default=32,
        metavar="N",
        help="input size N×N of --conv2d-fft (default 32, WeightWatcher's)",
    )
    p.add_argument(
        "--depthwise",
        default="matrix",
        choices=("matrix", "slices"),
        help="depthwise kernels (C,1,k,k): matrix = one C×k² matrix (default); "
        "slices = WeightWatcher's k² one-column matrices",
    )
    p.add_argument(
        "--intra",
        action="store_true",
        help="analyse products of consecutive matrices (WeightWatcher intra=True, "
        "sparsify=False) instead of the matrices",
    )
    p.add_argument(
        "--unsafe-pickle",
        action="store_true",
        help="allow arbitrary unpickling of .pt/.bin files (only files you trust)",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser for all commands."""
    parser = argparse.ArgumentParser(
        prog="layerscope",
        description="See inside a neural network's layers from the weights alone.",
    )
    parser.add_argument("--version", action="version", version=f"layerscope {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("scan", help="per-layer spectral scan (HTSR alpha, MP fit, traps, ERG)")
    p.add_argument(
        "source",
        help="model file or directory (.safetensors, .pt, .bin, HF dir) "
        "or pkg.module:attr naming an nn.Module or a factory",
    )
    _add_scan_options(p)
    _add_output_options(p)
    _add_html_options(p)
    p.set_defaults(func=cmd_scan)
    p = sub.add_parser("compare", help="audit a fine-tune: the update tuned - base, or a LoRA")
    p.add_argument("base", help="base model (or a PEFT adapter directory on its own)")
    p.add_argument("tuned", nargs="?", help="tuned or merged model, or a PEFT adapter directory")
    p.add_argument(
        "--untouched-tol",
        type=float,
        default=1e-6,
        help="relative update below which a matrix counts as untouched",
    )
    p.add_argument(
        "--duplicate-tol",
        type=float,
        default=1e-4,
        help="relative distance below which two matrices count as duplicated",
    )
    p.add_argument(
        "--lora-update-only",
        dest="lora_layer_alpha",
        action="store_false",
        default=True,
        help="LoRA with a base: skip the base and merged layers' alpha (no dense spectra)",
    )
    p.add_argument(
        "--lora-base-alpha",
        dest="lora_layer_alpha",
        action="store_true",
        default=True,
        help="LoRA: fit the base and merged layers' alpha (the default; kept for old scripts)",
    )
    _add_scan_options(p)
    _add_output_options(p)
    _add_html_options(p)
    p.set_defaults(func=cmd_compare)
    add_track_parser(sub, _add_scan_options, _add_html_options)
    add_status_parser(sub, _add_html_options)
    p = sub.add_parser("diff", help="difference of two saved scan results (JSON), no recomputing")
    p.add_argument("run_a", help="earlier scan result (.json)")
    p.add_argument("run_b", help="later scan result (.json)")
    _add_output_options(p)
    p.set_defaults(func=cmd_diff)
    p = sub.add_parser(
        "report",
        help="self-contained HTML page of a saved scan/compare/attribute result or a tracked run",
    )
    p.add_argument("input", help="scan, compare or attribute result (.json), or a run store (.db)")
    # -o/--out is the file a command writes, as in scan/compare/diff; --output is the old name.
    p.add_argument(
        "--out",
        "-o",
        "--output",
        dest="out",
        metavar="FILE",
        help="write the page to FILE (default: INPUT or RUN with .html)",
    )
    p.add_argument("--run", help="run to show when INPUT is a run store with several runs")
    _add_gate_options(p, "gate rules to show (and exit 1 on), as for scan/compare; repeatable")
    p.add_argument("--open", action="store_true", help="open the page in a browser")
    p.add_argument("--quiet", "-q", action="store_true", help="no messages")
    p.set_defaults(func=cmd_report)
    add_llc_parser(sub)
    add_survey_parser(sub, _add_scan_options)
    add_control_parsers(sub)
    add_attribute_parser(sub)
    add_memorized_parser(sub)
    add_smooth_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: 0 ok, 1 a gate rule failed, 2 user error."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args))
    except (UserError, SourceError, ValueError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        err = Console(stderr=True, soft_wrap=True)
        err.print(f"[bold red]error:[/] {escape(message)}", highlight=False)
        return EXIT_USAGE


if __name__ == "__main__":
    sys.exit(main())
