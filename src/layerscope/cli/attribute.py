"""``layerscope attribute BASE TUNED --candidates docs.jsonl``: which documents a
fine-tune was trained on (SELECT, :mod:`layerscope.probes.attribution`; docs/memorization.md).

BASE is a ``transformers`` causal-LM directory (``save_pretrained``); TUNED is the
fine-tuned model's directory or a PEFT LoRA adapter directory. Candidates are JSON
lines with ``"text"`` (tokenized with BASE's tokenizer) or ``"input_ids"``, and an
optional ``"id"``.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from layerscope.cli._io import UserError, check_html, html_report, stdout, with_progress

if TYPE_CHECKING:
    import torch
    from torch import nn

    from layerscope.probes.attribution import AttributionResult

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
OUT_FORMATS = (".json", ".csv")


def add_attribute_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``layerscope attribute`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "attribute",
        help="rank candidate documents by how well their gradients explain a fine-tune "
        "(SELECT, arXiv 2506.15553)",
    )
    p.add_argument("base", help="base model: a transformers causal-LM directory")
    p.add_argument("tuned", help="fine-tuned model directory, or a PEFT LoRA adapter directory")
    p.add_argument(
        "--candidates",
        required=True,
        metavar="JSONL",
        help="one JSON object per line: 'text' (or --text-field) or 'input_ids', optional 'id'",
    )
    p.add_argument("--top", type=int, default=10, metavar="K", help="documents to select (10)")
    p.add_argument(
        "--projection-dim", type=int, default=1024, metavar="D", help="gradient sketch size (1024)"
    )
    p.add_argument(
        "--checkpoints",
        type=int,
        default=1,
        metavar="C",
        help="synthetic checkpoints on the line base→tuned where gradients are summed (1: base)",
    )
    p.add_argument(
        "--order",
        choices=("greedy", "alignment"),
        default="greedy",
        help="greedy coverage (the paper's, default) or the most aligned documents first",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the random projection (0)")
    p.add_argument(
        "--max-length",
        type=int,
        default=512,
        metavar="N",
        help="truncate documents to N tokens (512)",
    )
    p.add_argument("--text-field", default="text", help="JSON key of the text (default 'text')")
    p.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"), help="where to run")
    p.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="stdout format"
    )
    p.add_argument(
        "--out",
        "-o",
        action="append",
        default=[],
        metavar="FILE",
        help="write results to FILE (.json: every candidate's alignment; .csv: the selection)",
    )
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    p.add_argument("--open", action="store_true", help="open the HTML page in a browser")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or table")
    p.set_defaults(func=cmd_attribute)
    return p


# ---------------------------------------------------------------- inputs


def read_candidates(path: str, text_field: str) -> list[tuple[str, Any]]:
    """(id, text or token ids) per JSON line; blank lines are skipped."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"--candidates {path}: cannot read ({exc})") from exc
    docs: list[tuple[str, Any]] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}: line {number} is not JSON ({exc.msg})") from exc
        if not isinstance(obj, dict):
            raise UserError(f"{path}: line {number} is not a JSON object")
        content = obj.get("input_ids", obj.get(text_field))
        if not isinstance(content, str | list) or not content:
            raise UserError(f"{path}: line {number} has no '{text_field}' or 'input_ids'")
        docs.append((str(obj.get("id", len(docs))), content))
    if not docs:
        raise UserError(f"{path}: no candidate documents (empty file)")
    return docs


def _has_tokenizer(directory: Path) -> bool:
    return directory.is_dir() and any((directory / f).is_file() for f in TOKENIZER_FILES)


def _tokenizer(directory: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"{directory}: cannot load its tokenizer ({_first_line(exc)})") from exc


def check_tokenizers(base: str, tuned: str) -> Any:
    """BASE's tokenizer (``None`` without one); a one-line error if TUNED has another."""
    if not _has_tokenizer(Path(base)):
        return None
    tokenizer = _tokenizer(base)
    if _has_tokenizer(Path(tuned)):
        other = _tokenizer(tuned)
        if other.get_vocab() != tokenizer.get_vocab():
            raise UserError(
                f"tokenizer mismatch: {tuned} ({len(other)} tokens) and {base} "
                f"({len(tokenizer)} tokens) do not map text to the same ids"
            )
    return tokenizer


def tokenize(
    docs: list[tuple[str, Any]], tokenizer: Any, args: argparse.Namespace, vocab: int
) -> list[torch.Tensor]:
    """Token ids per document, truncated to ``--max-length`` and checked against the vocabulary."""
    import torch

    out = []
    for doc_id, content in docs:
        if isinstance(content, str) and tokenizer is None:
            raise UserError(f"{args.base} has no tokenizer: give 'input_ids' in {args.candidates}")
        tokens = tokenizer(content)["input_ids"] if isinstance(content, str) else content
        try:
            ids = torch.as_tensor(tokens)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise UserError(f"{args.candidates}: document {doc_id}: bad input_ids ({exc})") from exc
        if ids.dim() != 1 or ids.is_floating_point():
            raise UserError(f"{args.candidates}: document {doc_id}: input_ids must be integers")
        ids = ids.long()[: args.max_length]
        bad = ids[(ids < 0) | (ids >= vocab)]
        if bad.numel():
            raise UserError(
                f"{args.candidates}: document {doc_id} has token id {int(bad[0])}, outside "
                f"the base model's vocabulary of {vocab}"
            )
        if ids.numel() < 2:
            raise UserError(f"{args.candidates}: document {doc_id} has fewer than 2 tokens")
        out.append(ids)
    return out


def _first_line(exc: BaseException) -> str:
    from layerscope.adapters.base import one_line

    return one_line(exc)


def load_base(path: str, device: str) -> nn.Module:
    """A ``transformers`` causal LM from a local directory, in eval mode."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # one bar: ours
    if not Path(path).is_dir():
        raise UserError(f"{path}: not a directory (expected a transformers model directory)")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot load a causal LM ({_first_line(exc)})") from exc
    module: nn.Module = model
    return module.to(device).eval()


def load_delta(base: nn.Module, tuned: str) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Δ from a fine-tuned model directory or a PEFT LoRA adapter directory, and the
    LoRA tangent bases (none for a full fine-tune)."""
    from layerscope.adapters import SourceError
    from layerscope.adapters.hf_dir import open_hf_dir
    from layerscope.adapters.peft import CONFIG_NAME, is_adapter_dir, open_lora
    from layerscope.probes.attribution import delta_from_lora, delta_from_weights

    path = Path(tuned)
    if not path.is_dir():
        raise UserError(f"{tuned}: not a directory (expected a model or PEFT adapter directory)")
    try:
        if is_adapter_dir(path):
            config = json.loads((path / CONFIG_NAME).read_text())
            fan_in_fan_out = bool(config.get("fan_in_fan_out", False))
            factors = open_lora(path)
            return delta_from_lora(base, factors, fan_in_fan_out=fan_in_fan_out, where=tuned)
        return delta_from_weights(base, open_hf_dir(path), where=tuned), {}
    except SourceError as exc:
        raise UserError(str(exc)) from exc


def _device(name: str) -> str:
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    return name


# ---------------------------------------------------------------- the command


def cmd_attribute(args: argparse.Namespace) -> int:
    """Load, rank, write ``--out`` files, print the selection."""
    from layerscope.probes._attribution_result import preview
    from layerscope.probes.attribution import AttributionOptions, attribute

    for path in args.out:
        if Path(path).suffix.lower() not in OUT_FORMATS:
            raise UserError(f"--out {path}: attribute writes .json or .csv")
    options = {"top": args.top, "projection_dim": args.projection_dim}
    options |= {"checkpoints": args.checkpoints, "seed": args.seed, "order": args.order}
    AttributionOptions(**options)  # bad values fail before any loading
    check_html(args.html)
    if args.max_length < 2:
        raise UserError(f"--max-length must be >= 2, got {args.max_length}")
    docs = read_candidates(args.candidates, args.text_field)
    tokenizer = check_tokenizers(args.base, args.tuned)
    base = load_base(args.base, _device(args.device))
    vocab = int(base.get_input_embeddings().weight.shape[0])  # type: ignore[operator]
    ids = tokenize(docs, tokenizer, args, vocab)
    delta, tangents = load_delta(base, args.tuned)
    result = with_progress(
        args,
        "attribute",
        lambda progress: attribute(
            base,
            delta,
            ids,
            ids=[d for d, _ in docs],
            tangents=tangents,
            progress=progress,
            **options,
        ),
    )
    where = {"base": args.base, "tuned": args.tuned, "candidates": args.candidates}
    documents = [preview(docs[i][1]) for i in result.selected.tolist()]
    result = replace(result, meta={**where, **result.meta}, documents=documents)
    for path in args.out:
        if path.lower().endswith(".json"):
            result.to_json(path)
        else:
            result.to_csv(path)
    html_report(args, lambda: _page(result))
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    elif args.format == "csv":
        print(result.to_frame().to_csv(index=False), end="")
    elif not args.quiet:
        render(result)
    return 0


def report_attribution(args: argparse.Namespace, source: Path, gate_rules: list[Any]) -> int:
    """``layerscope report ranked.json``: the page ``--html`` writes, from a saved result."""
    from layerscope.probes.attribution import AttributionResult

    if gate_rules:
        raise UserError(
            f"{source}: --fail-on/--policy apply to scan and compare results, not attribution"
        )
    try:
        result = AttributionResult.from_json(source)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    html_report(args, lambda: _page(result))
    return 0


def _page(result: AttributionResult) -> str:
    from layerscope.report.html.attribution_view import attribution_html

    return attribution_html(result)


def render(result: AttributionResult) -> None:
    """The selection as a table, with the start of each document's text."""
    table = Table(
        title=f"documents behind {escape(str(result.meta.get('tuned', 'the update')))}",
        header_style="bold",
    )
    for column in ("rank", "id", "alignment", "coverage", "document"):
        table.add_column(column, justify="left" if column in ("id", "document") else "right")
    documents = result.documents or [""] * result.selected.size
    for row, text in zip(result.to_frame().to_dict(orient="records"), documents, strict=True):
        table.add_row(
            str(row["rank"]),
            escape(str(row["id"])),
            f"{row['alignment']:.3f}",
            f"{row['coverage']:.3f}",
            escape(text[:60]),
        )
    stdout().print(table)
