"""``layerscope attribute BASE TUNED --candidates docs.jsonl``: which documents a
fine-tune was trained on (SELECT, :mod:`layerscope.probes.attribution`; docs/memorization.md).

BASE is a ``transformers`` causal-LM directory (``save_pretrained``); TUNED is the
fine-tuned model's directory or a PEFT LoRA adapter directory. Candidates are JSON
lines with ``"text"`` (tokenized with BASE's tokenizer) or ``"input_ids"``, and an
optional ``"id"``.
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
    load_delta,
    read_documents,
    report_saved,
    tokenize,
    vocab_size,
)

if TYPE_CHECKING:
    from layerscope.probes.attribution import AttributionResult


def add_attribute_parser(sub: Any) -> argparse.ArgumentParser:
    """The ``layerscope attribute`` sub-command."""
    p: argparse.ArgumentParser = sub.add_parser(
        "attribute",
        help="rank candidate documents by how well their gradients explain a fine-tune "
        "(SELECT, arXiv 2506.15553)",
    )
    p.add_argument("base", help="base model: a transformers causal-LM directory")
    p.add_argument("tuned", help="fine-tuned model directory, or a PEFT LoRA adapter directory")
    add_document_options(
        p, "--candidates", "write results to FILE (.json: every candidate's alignment; "
        ".csv: the selection)",
    )  # fmt: skip
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
    p.add_argument("--html", metavar="FILE", help="also write a self-contained HTML page")
    p.add_argument("--open", action="store_true", help="open the HTML page in a browser")
    p.set_defaults(func=cmd_attribute)
    return p


# ---------------------------------------------------------------- inputs


# ---------------------------------------------------------------- the command


def cmd_attribute(args: argparse.Namespace) -> int:
    """Load, rank, write ``--out`` files, print the selection."""
    from layerscope.probes.attribution import AttributionOptions, attribute
    from layerscope.results import preview

    check_outputs(args.out, "attribute")
    options = {"top": args.top, "projection_dim": args.projection_dim}
    options |= {"checkpoints": args.checkpoints, "seed": args.seed, "order": args.order}
    AttributionOptions(**options)  # bad values fail before any loading
    check_html(args.html)
    if args.max_length < 2:
        raise UserError(f"--max-length must be >= 2, got {args.max_length}")
    docs = read_documents(args.candidates, args.text_field, "--candidates", "candidate documents")
    tokenizer = check_tokenizers(args.base, args.tuned)
    base = load_causal_lm(args.base, device(args.device))
    where = {"model": args.base, "source": args.candidates, "max_length": args.max_length}
    ids = tokenize(docs, tokenizer, **where, vocab=vocab_size(base))
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
    meta = {"base": args.base, "tuned": args.tuned, "candidates": args.candidates}
    documents = [preview(docs[i][1]) for i in result.selected.tolist()]
    result = replace(result, meta={**meta, **result.meta}, documents=documents)
    emit_result(args, result, lambda: _page(result), lambda: render(result))
    return 0


def report_attribution(args: argparse.Namespace, source: Path, gate_rules: list[Any]) -> int:
    """``layerscope report ranked.json``: the page ``--html`` writes, from a saved result."""
    from layerscope.probes.attribution import AttributionResult

    return report_saved(args, source, gate_rules, AttributionResult.from_json, _page)


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
