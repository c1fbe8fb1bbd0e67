"""Inputs shared by the commands that run a causal LM on documents (``attribute``,
``memorized``): JSON-lines documents, ``transformers`` model directories, their
tokenizers and the token ids, each checked with a one-line error naming the file."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pandas as pd

from layerscope.cli._io import UserError, html_report

if TYPE_CHECKING:
    import torch
    from torch import nn

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "tokenizer.model")
OUT_FORMATS = (".json", ".csv")


def add_document_options(p: argparse.ArgumentParser, flag: str, out_help: str) -> None:
    """The options every command on documents shares: the JSON-lines file (``flag``),
    how to read and truncate it, the device, the stdout format and ``--out`` files."""
    p.add_argument(
        flag,
        required=True,
        metavar="JSONL",
        help="one JSON object per line: 'text' (or --text-field) or 'input_ids', optional 'id'",
    )
    p.add_argument("--text-field", default="text", help="JSON key of the text (default 'text')")
    p.add_argument(
        "--max-length", type=int, default=512, metavar="N", help="truncate to N tokens (512)"
    )
    p.add_argument("--device", default="auto", choices=("cpu", "cuda", "auto"), help="where to run")
    p.add_argument(
        "--format", choices=("table", "json", "csv"), default="table", help="stdout format"
    )
    p.add_argument("--out", "-o", action="append", default=[], metavar="FILE", help=out_help)
    p.add_argument("--quiet", "-q", action="store_true", help="no progress bar or table")


class DocumentResult(Protocol):
    """What ``attribute`` and ``memorized`` return: plain data with JSON and CSV forms."""

    def to_dict(self) -> dict[str, Any]: ...
    def to_frame(self) -> pd.DataFrame: ...
    def to_json(self, path: str) -> None: ...
    def to_csv(self, path: str) -> None: ...


def emit_result(
    args: argparse.Namespace,
    result: DocumentResult,
    page: Callable[[], str],
    render: Callable[[], None],
) -> None:
    """Write every ``--out`` (.json or .csv) and the ``--html`` page, then print the
    result in ``--format`` (``table``: ``render()``, unless ``--quiet``)."""
    for path in args.out:
        (result.to_json if path.lower().endswith(".json") else result.to_csv)(path)
    html_report(args, page)
    if args.format == "json":
        print(json.dumps(result.to_dict(), indent=2))
    elif args.format == "csv":
        print(result.to_frame().to_csv(index=False), end="")
    elif not args.quiet:
        render()


def report_saved(
    args: argparse.Namespace,
    source: Path,
    gate_rules: list[Any],
    read: Callable[[Path], Any],
    page: Callable[[Any], str],
) -> int:
    """``layerscope report result.json`` of a saved attribution or memorization result:
    the page its ``--html`` writes, read back with ``read`` (a ``ValueError`` naming the
    file is the one-line error)."""
    if gate_rules:
        raise UserError(f"{source}: --fail-on/--policy apply to scan and compare results only")
    try:
        result = read(source)
    except ValueError as exc:
        raise UserError(str(exc)) from exc
    html_report(args, lambda: page(result))
    return 0


def check_outputs(paths: list[str], command: str) -> None:
    """Every ``--out`` is a .json or .csv file name (checked before any work)."""
    for path in paths:
        if Path(path).suffix.lower() not in OUT_FORMATS:
            raise UserError(f"--out {path}: {command} writes .json or .csv")
        if Path(path).is_dir():
            raise UserError(f"--out {path}: is a directory, expected a file name")


def read_documents(
    path: str, text_field: str, flag: str, noun: str = "documents"
) -> list[tuple[str, Any]]:
    """(id, text or token ids) per JSON line of ``path`` (given as ``flag``); blank lines
    are skipped; an object without ``"id"`` is named by its position."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{flag} {path}: cannot read ({exc})") from exc
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
        raise UserError(f"{path}: no {noun} (empty file)")
    return docs


def _has_tokenizer(directory: Path) -> bool:
    return directory.is_dir() and any((directory / f).is_file() for f in TOKENIZER_FILES)


def _tokenizer(directory: str) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(directory, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"{directory}: cannot load its tokenizer ({first_line(exc)})") from exc


def check_tokenizers(base: str, other: str) -> Any:
    """BASE's tokenizer (``None`` without one); a one-line error if OTHER has another."""
    if not _has_tokenizer(Path(base)):
        return None
    tokenizer = _tokenizer(base)
    if _has_tokenizer(Path(other)):
        theirs = _tokenizer(other)
        if theirs.get_vocab() != tokenizer.get_vocab():
            raise UserError(
                f"tokenizer mismatch: {other} ({len(theirs)} tokens) and {base} "
                f"({len(tokenizer)} tokens) do not map text to the same ids"
            )
    return tokenizer


def tokenize(
    docs: list[tuple[str, Any]],
    tokenizer: Any,
    *,
    model: str,
    source: str,
    max_length: int,
    vocab: int,
    shortest: int = 2,
) -> list[torch.Tensor]:
    """Token ids per document of ``source``, truncated to ``max_length`` and checked
    against the vocabulary of ``model``; each needs at least ``shortest`` tokens."""
    import torch

    out = []
    for doc_id, content in docs:
        if isinstance(content, str) and tokenizer is None:
            raise UserError(f"{model} has no tokenizer: give 'input_ids' in {source}")
        tokens = tokenizer(content)["input_ids"] if isinstance(content, str) else content
        try:
            ids = torch.as_tensor(tokens)
        except (TypeError, ValueError, RuntimeError) as exc:
            raise UserError(f"{source}: document {doc_id}: bad input_ids ({exc})") from exc
        if ids.dim() != 1 or ids.is_floating_point():
            raise UserError(f"{source}: document {doc_id}: input_ids must be integers")
        ids = ids.long()[:max_length]
        bad = ids[(ids < 0) | (ids >= vocab)]
        if bad.numel():
            raise UserError(
                f"{source}: document {doc_id} has token id {int(bad[0])}, outside "
                f"the vocabulary of {model} ({vocab})"
            )
        if ids.numel() < shortest:
            raise UserError(f"{source}: document {doc_id} has fewer than {shortest} tokens")
        out.append(ids)
    return out


def first_line(exc: BaseException) -> str:
    from layerscope.adapters.base import one_line

    return one_line(exc)


def load_causal_lm(path: str, device: str) -> nn.Module:
    """A ``transformers`` causal LM from a local directory, in eval mode."""
    from transformers import AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]  # one bar: ours
    if not Path(path).is_dir():
        raise UserError(f"{path}: not a directory (expected a transformers model directory)")
    try:
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UserError(f"{path}: cannot load a causal LM ({first_line(exc)})") from exc
    module: nn.Module = model
    return module.to(device).eval()


def vocab_size(model: nn.Module) -> int:
    """Rows of the model's input embedding: the ids it can read."""
    return int(model.get_input_embeddings().weight.shape[0])  # type: ignore[operator]


def device(name: str) -> str:
    """``auto`` → CUDA when there is one; ``cuda`` without one is a one-line error."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available")
    return name


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


def with_adapter(base: nn.Module, adapter: str) -> nn.Module:
    """A copy of ``base`` with a PEFT LoRA adapter's update merged in: W + Δ, Δ = s·B·A
    per target (:func:`load_delta`), what PEFT's ``merge_and_unload`` computes."""
    import copy

    import torch

    delta, _ = load_delta(base, adapter)
    merged = copy.deepcopy(base)
    params = dict(merged.named_parameters())
    with torch.no_grad():
        for name, update in delta.items():
            params[name].add_(update.to(params[name].dtype))
    return merged
