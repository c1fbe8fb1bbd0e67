"""``layerscope memorized MODEL --data docs.jsonl``: how many bits of each document a
causal LM has memorized (:mod:`layerscope.probes.memorization`; Morris et al. 2025,
"How much do language models memorize?", arXiv 2505.24832).

bits(x) = max(0, H_ref(x) − H_model(x)): the bits the model saves when coding x, against
the uniform distribution over the vocabulary (``--reference uniform``, right for
uniformly random data) or against a reference model directory trained without x (the
paper's construction for real text). MODEL and the reference are ``transformers``
causal-LM directories (``save_pretrained``); documents are JSON lines with ``"text"``
(tokenized with MODEL's tokenizer) or ``"input_ids"``, and an optional ``"id"``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.markup import escape
from rich.table import Table

from layerscope.cli._io import UserError, check_html, stdout, with_progress
from layerscope.cli._lm_inputs import (
    add_document_options,
    check_outputs,
    check_tokenizers,
    device,
    emit_result,
    load_causal_lm,
    read_documents,
    report_saved,
    tokenize,
    vocab_size,
    with_adapter,
)

if TYPE_CHECKING:
    from torch import nn

    from layerscope.probes.memorization import MemorizationResult


def add_memorized_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``layerscope memorized`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "memorized",
        help="bits of each document a causal LM memorized, against a uniform or "
        "reference model (arXiv 2505.24832)",
    )
    p.add_argument(
        "model",
        help="a transformers causal-LM directory, or a PEFT LoRA adapter (with --reference "
        "its base model)",
    )
    add_document_options(
        p,
        "--data",
        "write results to FILE (.json: summary and every document; .csv: the documents)",
    )
    p.add_argument(
        "--reference",
        default="uniform",
        metavar="DIR|uniform",
        help="what the model's code lengths are compared with: 'uniform' over the "
        "vocabulary (random data; default) or a causal-LM directory trained without the data",
    )
    p.add_argument(
        "--bos-token-id",
        type=int,
        metavar="ID",
        help="prefix each document with this token and score all its tokens "
        "(default: score tokens 2..n, as the causal-LM loss does)",
    )
    p.add_argument("--batch-size", type=int, default=16, metavar="B", help="documents a pass (16)")
    p.add_argument("--top", type=int, default=10, metavar="K", help="documents shown (10)")
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    p.add_argument("--open", action="store_true", help="open the HTML page in a browser")
    p.set_defaults(func=cmd_memorized)
    return p


def _check_options(args: argparse.Namespace) -> None:
    """Bad options fail before any model is loaded."""
    check_outputs(args.out, "memorized")
    check_html(args.html)
    for flag, value, least in (
        ("--batch-size", args.batch_size, 1),
        ("--top", args.top, 1),
        ("--max-length", args.max_length, 2 if args.bos_token_id is None else 1),
    ):
        if value < least:
            raise UserError(f"{flag} must be >= {least}, got {value}")


def _load_model(path: str, reference: Any, where: str) -> nn.Module:
    """MODEL: a causal-LM directory, or a PEFT LoRA adapter merged into the reference
    (its base model), which must then be a directory."""
    from layerscope.adapters.peft import is_adapter_dir

    if not is_adapter_dir(Path(path)):
        return load_causal_lm(path, where)
    if isinstance(reference, str):
        raise UserError(f"{path} is a PEFT adapter: give its base model as --reference DIR")
    return with_adapter(reference, path)


def cmd_memorized(args: argparse.Namespace) -> int:
    """Load, measure, write ``--out`` files, print the summary and the top documents."""
    from layerscope.probes.memorization import memorized_bits
    from layerscope.results import preview

    _check_options(args)
    docs = read_documents(args.data, args.text_field, "--data")
    uniform = args.reference == "uniform"
    tokenizer = check_tokenizers(args.model, args.model if uniform else args.reference)
    if tokenizer is None and not uniform:  # an adapter without one reads as its base does
        tokenizer = check_tokenizers(args.reference, args.model)
    where = device(args.device)
    reference: Any = "uniform" if uniform else load_causal_lm(args.reference, where)
    model = _load_model(args.model, reference, where)
    vocab = vocab_size(model)
    if args.bos_token_id is not None and not 0 <= args.bos_token_id < vocab:
        raise UserError(f"--bos-token-id {args.bos_token_id}: outside the vocabulary ({vocab})")
    shortest = 1 if args.bos_token_id is not None else 2
    ids = tokenize(
        docs, tokenizer, model=args.model, source=args.data, max_length=args.max_length,
        vocab=vocab, shortest=shortest,
    )  # fmt: skip
    try:
        result = with_progress(
            args,
            "memorized",
            lambda progress: memorized_bits(
                model,
                ids,
                reference=reference,
                bos_token_id=args.bos_token_id,
                batch_size=args.batch_size,
                progress=progress,
            ),
        )
    except ValueError as exc:  # e.g. a reference of another vocabulary
        raise UserError(f"{args.reference}: {exc}") from exc
    meta = {"model": args.model, "data": args.data, "reference": args.reference}
    starts = tuple(preview(content) for _, content in docs)
    result = replace(result, ids=tuple(d for d, _ in docs), meta=meta, documents=starts)
    emit_result(args, result, lambda: _page(result), lambda: render(result, args.top))
    return 0


def report_memorization(args: argparse.Namespace, source: Path, gate_rules: list[Any]) -> int:
    """``layerscope report memorized.json``: the page ``--html`` writes, from a saved result."""
    from layerscope.probes.memorization import MemorizationResult

    return report_saved(args, source, gate_rules, MemorizationResult.from_json, _page)


def _page(result: MemorizationResult) -> str:
    from layerscope.report.html.memorization_view import memorization_html

    return memorization_html(result)


def render(result: MemorizationResult, top: int) -> None:
    """The totals, then the ``top`` documents with the most memorized bits."""
    console = stdout()
    console.print(
        f"{escape(str(result.meta.get('model', 'model')))}: "
        f"{result.total_bits:,.1f} bits memorized of {result.model_bits.size} documents "
        f"({int(result.scored_tokens.sum()):,} scored tokens; reference "
        f"{escape(str(result.meta.get('reference', result.reference)))}): "
        f"{result.bits_per_token:.3f} bits/token, "
        f"{result.bits_per_parameter:.3g} bits/parameter",
        highlight=False,
    )
    frame = result.to_frame().sort_values(["memorized_bits", "sample"], ascending=[False, True])
    table = Table(title=f"the {min(top, len(frame))} most memorized", header_style="bold")
    for column in ("id", "scored tokens", "model bits", "reference bits", "memorized bits"):
        table.add_column(column, justify="left" if column == "id" else "right")
    for row in frame.head(top).to_dict(orient="records"):
        table.add_row(
            escape(str(row["id"])),
            str(row["tokens"]),
            f"{row['model_bits']:.1f}",
            f"{row['reference_bits']:.1f}",
            f"{row['memorized_bits']:.1f}",
        )
    console.print(table)
