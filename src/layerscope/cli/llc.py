"""``layerscope llc``: a one-off LLC estimate of a checkpoint, and ``track --llc-data``.

How the model, weights, data and loss are resolved: :mod:`layerscope.cli._llc_inputs`.
The model is put in ``eval()`` mode (dropout off) before sampling. Estimator, defaults
and diagnostics: :mod:`layerscope.probes.llc` and docs/llc.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from layerscope.cli._io import UserError, stdout
from layerscope.cli._llc_inputs import (
    as_module,
    build_model,
    call_factory,
    check_loss,
    describe_error,
    load_data,
    load_weights,
    resolve_loss,
)
from layerscope.report.terminal import fmt_num
from layerscope.report.terminal_llc import render_llc, render_llc_warnings

if TYPE_CHECKING:
    from layerscope.track.checkpoints import Checkpoint
    from layerscope.track.store import RunStore

# CLI flag -> estimate() option; track takes the same flags with an ``--llc-`` prefix.
SAMPLER_FLAGS: tuple[tuple[str, str, type, str], ...] = (
    ("chains", "num_chains", int, "SGLD chains (default 4)"),
    ("draws", "num_draws", int, "draws per chain after burn-in (default 200)"),
    ("burnin", "burnin", int, "burn-in steps, excluded from the average (default 200)"),
    ("step-size", "step_size", float, "SGLD step size ε (default 0.02/nβ)"),
    ("nbeta", "nbeta", float, "inverse temperature nβ (default B/ln B)"),
    ("localization", "localization", float, "localization strength γ (default 1.0)"),
    ("batch-size", "batch_size", int, "minibatch size for tensor data (default min(n, 128))"),
)


def sampler_options(args: argparse.Namespace, prefix: str = "") -> dict[str, Any]:
    """``estimate()`` options from the flags that were given (the rest keep defaults)."""
    from layerscope.probes.llc import LLCOptions

    options: dict[str, Any] = {"seed": getattr(args, f"{prefix}seed")}
    for flag, option, _, _ in SAMPLER_FLAGS:
        value = getattr(args, prefix + flag.replace("-", "_"))
        if value is not None:
            options[option] = value
    flag = f"--{prefix.replace('_', '-')}device"
    options["device"] = _device(getattr(args, f"{prefix}device"), flag)
    LLCOptions.from_kwargs(**options)  # bad values fail before any loading
    return options


def _device(name: str, flag: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError(f"{flag} cuda: no CUDA device is available")
    return name


# ---------------------------------------------------------------- arguments


def add_sampler_arguments(p: argparse.ArgumentParser, prefix: str = "") -> None:
    """The sampler flags (``--chains``...; ``--llc-chains``... with ``prefix="llc-"``)."""
    for flag, _, kind, text in SAMPLER_FLAGS:
        p.add_argument(
            f"--{prefix}{flag}", type=kind, metavar="N" if kind is int else "X", help=text
        )
    p.add_argument(f"--{prefix}seed", type=int, default=0, help="sampler seed (default 0)")
    p.add_argument(
        f"--{prefix}device",
        default="auto",
        choices=("cpu", "cuda", "auto"),
        help="where chains run",
    )


def add_llc_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``layerscope llc`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "llc", help="local learning coefficient of a checkpoint (SGLD, with diagnostics)"
    )
    p.add_argument(
        "checkpoint",
        help="pkg.module:build returning the trained nn.Module, or a weights file/dir "
        "(.pt, .safetensors, HF dir) loaded into --model",
    )
    p.add_argument("--model", metavar="PKG.MOD:BUILD", help="builds the checkpoint's architecture")
    p.add_argument(
        "--data",
        required=True,
        metavar="PKG.MOD:MAKE",
        help="returns a DataLoader, an iterable of batches or a tuple of tensors",
    )
    p.add_argument(
        "--loss",
        required=True,
        metavar="LOSS",
        help="mse, ce, nll-gauss (batches (x, y)) or pkg.module:fn taking (model, batch)",
    )
    add_sampler_arguments(p)
    p.add_argument(
        "--format",
        choices=("table", "json"),
        default="table",
        help="stdout format (json: the document --out writes, with a schema_version)",
    )
    p.add_argument("--out", "-o", metavar="FILE", help="also write the result as JSON to FILE")
    p.add_argument(
        "--unsafe-pickle",
        action="store_true",
        help="allow arbitrary unpickling of .pt/.bin files (only files you trust)",
    )
    p.add_argument("--quiet", "-q", action="store_true", help="no table or warnings")
    p.set_defaults(func=cmd_llc)
    return p


def add_track_llc_arguments(p: argparse.ArgumentParser) -> None:
    """``track``'s opt-in LLC flags."""
    p.add_argument(
        "--llc-data",
        metavar="PKG.MOD:MAKE",
        help="estimate the LLC of new checkpoints on this data",
    )
    p.add_argument("--llc-loss", metavar="LOSS", help="mse, ce, nll-gauss or pkg.module:fn")
    p.add_argument("--llc-model", metavar="PKG.MOD:BUILD", help="builds the checkpoints' model")
    p.add_argument(
        "--llc-every", type=int, default=1, metavar="K", help="every K-th checkpoint (default 1)"
    )
    add_sampler_arguments(p, "llc-")


# ---------------------------------------------------------------- the command


def cmd_llc(args: argparse.Namespace) -> int:
    """``layerscope llc CHECKPOINT --data ... --loss ...``: estimate and print the LLC."""
    from layerscope.probes.llc import LLCOptions, estimate

    if args.out and Path(args.out).suffix.lower() != ".json":
        raise UserError(f"--out {args.out}: llc writes JSON; give a .json file name")
    options = sampler_options(args)
    loss_fn = resolve_loss(args.loss)
    model = build_model(args.checkpoint, args.model, allow_unsafe_pickle=args.unsafe_pickle)
    model.eval()
    data = load_data(args.data, options.get("batch_size"))
    check_loss(model, data, loss_fn, args.loss, LLCOptions.from_kwargs(**options))
    try:
        result = estimate(model, data, loss_fn, **options)
    except RuntimeError as exc:
        raise UserError(f"llc: sampling failed ({describe_error(exc)})") from exc
    text = result.to_json(args.out, meta=_meta(args))
    if args.format == "json" and not args.out:
        print(text)
        if not args.quiet:
            render_llc_warnings(result, Console(stderr=True, soft_wrap=True))
    elif not args.quiet:
        render_llc(result, args.checkpoint, stdout())
    return 0


def _meta(args: argparse.Namespace) -> dict[str, Any]:
    """What was estimated, for the JSON document's ``meta``."""
    return {
        "checkpoint": args.checkpoint,
        "model": args.model,
        "data": args.data,
        "loss": args.loss,
    }


# ---------------------------------------------------------------- track --llc-data


class TrackLLC:
    """``track``'s per-checkpoint hook: load the weights, estimate, store with ``log_llc``.

    Every ``every``-th checkpoint of the directory (by position in step order, so a
    re-run picks the same ones) gets ``llc``, ``llc_std`` and ``llc_warnings`` scalars.
    """

    def __init__(self, args: argparse.Namespace) -> None:
        if args.llc_every < 1:
            raise UserError(f"--llc-every must be >= 1, got {args.llc_every}")
        if not args.llc_loss or not args.llc_model:
            raise UserError("--llc-data needs --llc-loss and --llc-model pkg.module:build")
        self.root = Path(args.directory)
        self.every = args.llc_every
        self.options = sampler_options(args, "llc_")
        self.loss_spec = args.llc_loss
        self.loss_fn = resolve_loss(args.llc_loss)
        self.model = as_module(
            call_factory(args.llc_model, "--llc-model"), args.llc_model, "--llc-model"
        )
        self.data = load_data(args.llc_data, self.options.get("batch_size"))
        self.unsafe = bool(args.unsafe_pickle)
        self.report: Callable[[str], None] | None = None
        self._checked = False

    def __call__(self, store: RunStore, run_id: int, ckpt: Checkpoint) -> None:
        """Estimate and store the LLC at ``ckpt`` when it is one of every ``every``-th."""
        from layerscope.probes.llc import LLCOptions
        from layerscope.track.checkpoints import find_checkpoints
        from layerscope.track.llc import log_llc

        steps = [c.step for c in find_checkpoints(self.root)]
        if ckpt.step in steps and steps.index(ckpt.step) % self.every:
            return
        load_weights(self.model, ckpt.path, allow_unsafe_pickle=self.unsafe)
        self.model.eval()
        if not self._checked:
            opts = LLCOptions.from_kwargs(**self.options)
            check_loss(self.model, self.data, self.loss_fn, self.loss_spec, opts)
            self._checked = True
        result = log_llc(
            store, run_id, ckpt.step, self.model, self.data, self.loss_fn, **self.options
        )
        if self.report is not None:
            mean, std = fmt_num(result.mean, ".4g"), fmt_num(result.std, ".4g")
            self.report(f"llc step {ckpt.step}: {mean} ± {std} ({len(result.warnings)} warning(s))")


def track_hook(args: argparse.Namespace) -> TrackLLC | None:
    """The LLC hook for ``track`` when ``--llc-data`` is given (flags checked now)."""
    if args.llc_data is None:
        if args.llc_loss or args.llc_model:
            raise UserError("--llc-loss/--llc-model need --llc-data pkg.module:make_loader")
        return None
    return TrackLLC(args)
