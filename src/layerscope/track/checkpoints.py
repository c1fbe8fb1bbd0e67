"""Scan a directory of saved checkpoints in step order into a run store, incrementally.

Recognised layouts (the step is read from the name; files and directories directly in
the given directory, not below it):

* Hugging Face Trainer directories ``checkpoint-1000/``;
* files or directories named with a step: ``step_000500.pt``, ``global_step100/``,
  Lightning's ``epoch=3-step=1200.ckpt`` (also ``-v1`` and metric suffixes);
* ``model_{step}``, ``ckpt_{step}``, ``checkpoint_{step}``, ``weights_{step}``,
  ``iter_{step}`` files with a ``.pt``/``.pth``/``.bin``/``.ckpt``/``.safetensors`` suffix.

A step already scanned from the same source is skipped. A checkpoint that cannot be read
(:class:`layerscope.SourceError`) is recorded as an error for its step and skipped; it is
tried again only once its files change (their size/mtime fingerprint). With
``follow=True`` the directory is polled until ``stop`` is set or ``max_polls`` is reached;
checkpoints modified in the last ``settle_seconds`` are left for a later poll, so a file
still being written is not scanned half-way. An ``on_checkpoint`` hook can record more at
each newly scanned checkpoint (the CLI's ``track --llc-data`` estimates the LLC there).
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from layerscope.adapters import SourceError
from layerscope.scan import scan
from layerscope.track.options import TrackOptions
from layerscope.track.store import RunRef, RunStore
from layerscope.track.tracker import Tracker

logger = logging.getLogger(__name__)

WEIGHT_SUFFIXES = (".safetensors", ".pt", ".pth", ".bin", ".ckpt")
_PATTERNS = (
    re.compile(r"^checkpoint-(\d+)$"),
    re.compile(r"(?:^|[-_=.])step[-_=]?(\d+)(?!\d)"),
    re.compile(r"^(?:model|ckpt|checkpoint|weights|iter|iteration)[-_](\d+)$"),
)
# In follow mode, checkpoints modified more recently than this are left for a later poll.
FOLLOW_SETTLE_SECONDS = 2.0


@dataclass(frozen=True)
class Checkpoint:
    """A checkpoint found in a directory: its training step and path (file or directory)."""

    step: int
    path: Path


@dataclass(frozen=True)
class TrackEvent:
    """Sent to the ``progress`` callback after each checkpoint is handled.

    ``status`` is ``ok`` (scanned and stored) or ``error`` (recorded, skipped);
    ``done``/``total`` count the checkpoints of the current poll.
    """

    step: int
    source: str
    status: str
    done: int
    total: int
    message: str = ""


# on_checkpoint(store, run_id, checkpoint): called after a scan, before it is stored.
CheckpointHook = Callable[[RunStore, int, Checkpoint], None]


def checkpoint_step(path: Path) -> int | None:
    """The training step encoded in a checkpoint's name, or ``None`` if it is not one."""
    if path.is_dir():
        stem = path.name
    elif path.suffix.lower() in WEIGHT_SUFFIXES:
        stem = path.name[: -len(path.suffix)]
    else:
        return None
    for pattern in _PATTERNS:
        match = pattern.search(stem)
        if match:
            return int(match.group(1))
    return None


def find_checkpoints(directory: str | os.PathLike[str]) -> list[Checkpoint]:
    """The checkpoints directly inside ``directory``, ordered by step.

    When several entries carry the same step, directories win over files, then names in
    sorted order; the others are ignored (logged).
    """
    found: dict[int, list[Path]] = {}
    for path in Path(directory).iterdir():
        step = checkpoint_step(path)
        if step is not None:
            found.setdefault(step, []).append(path)
    result = []
    for step in sorted(found):
        paths = sorted(found[step], key=lambda p: (not p.is_dir(), p.name))
        if len(paths) > 1:
            logger.warning("step %d has %d checkpoints; using %s", step, len(paths), paths[0].name)
        result.append(Checkpoint(step, paths[0]))
    return result


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return [p for p in path.iterdir() if p.is_file()]
    return [path]


def fingerprint(path: Path) -> str:
    """Size and modification time of a checkpoint's file(s): changes when it is rewritten."""
    stats = [p.stat() for p in _files(path)]
    newest = max((s.st_mtime_ns for s in stats), default=0)
    return f"{len(stats)}:{sum(s.st_size for s in stats)}:{newest}"


def _age(path: Path) -> float:
    """Seconds since any file of the checkpoint was last modified."""
    newest = max((p.stat().st_mtime for p in [path, *_files(path)]), default=0.0)
    return time.time() - newest


@dataclass
class _Poller:
    """One ``track_checkpoints`` call's state: where to read, the run, how to scan."""

    root: Path
    tracker: Tracker
    settle_seconds: float
    progress: Callable[[TrackEvent], None] | None
    on_checkpoint: CheckpointHook | None = None

    @property
    def store(self) -> RunStore:
        return self.tracker.store

    @property
    def run_id(self) -> int:
        return self.tracker.run_id

    def pending(self) -> list[tuple[Checkpoint, str]]:
        """Checkpoints not yet stored from the same source (errors: only if changed since)."""
        steps = self.store.steps(self.run_id)
        recorded = {
            int(step): (source, status, fp)
            for step, source, status, fp in zip(
                steps["step"].tolist(),
                steps["source"].tolist(),
                steps["status"].tolist(),
                steps["fingerprint"].tolist(),
                strict=True,
            )
        }
        todo = []
        for ckpt in find_checkpoints(self.root):
            if self.settle_seconds > 0 and _age(ckpt.path) < self.settle_seconds:
                logger.debug("checkpoint %s is still being written", ckpt.path)
                continue
            fp = fingerprint(ckpt.path)
            source, status, old_fp = recorded.get(ckpt.step, (None, None, None))
            if source == str(ckpt.path) and (status == "ok" or old_fp == fp):
                continue
            todo.append((ckpt, fp))
        return todo

    def poll(self) -> list[int]:
        """Scan every pending checkpoint in step order; return the steps stored."""
        todo = self.pending()
        scanned = []
        for done, (ckpt, fp) in enumerate(todo, start=1):
            source = str(ckpt.path)
            try:
                result = scan(ckpt.path, **self.tracker.options.scan_kwargs())
            except SourceError as exc:
                logger.warning("skipping checkpoint %s: %s", ckpt.path, exc)
                self.store.log_error(self.run_id, ckpt.step, str(exc), source, fingerprint=fp)
                event = TrackEvent(ckpt.step, source, "error", done, len(todo), str(exc))
            else:
                if self.on_checkpoint is not None:
                    self.on_checkpoint(self.store, self.run_id, ckpt)
                self.tracker.record(ckpt.step, result, source, fingerprint=fp)
                logger.info("scanned checkpoint %s (step %d)", ckpt.path, ckpt.step)
                scanned.append(ckpt.step)
                event = TrackEvent(ckpt.step, source, "ok", done, len(todo))
            if self.progress is not None:
                self.progress(event)
        return scanned


def track_checkpoints(
    directory: str | os.PathLike[str],
    run: RunRef,
    store: RunStore | str | os.PathLike[str] | None = None,
    *,
    follow: bool = False,
    poll_seconds: float = 30.0,
    settle_seconds: float | None = None,
    max_polls: int | None = None,
    stop: threading.Event | None = None,
    progress: Callable[[TrackEvent], None] | None = None,
    on_checkpoint: CheckpointHook | None = None,
    options: TrackOptions | None = None,
    **kwargs: Any,
) -> list[int]:
    """Scan the checkpoints of ``directory`` that ``run`` does not have yet, in step order.

    Each scan is stored and the detector run after it, exactly as in a
    :class:`~layerscope.track.Monitor` (:class:`~layerscope.track.tracker.Tracker`): by
    default the phase detector, with every metric scanned, and its alerts stored.

    Args:
        directory: a directory holding checkpoints (see the module docstring for layouts).
        run: run name (created or resumed) or id of an existing run.
        store: a :class:`RunStore` or the path of its database file (default: ``options``'
            store, else ``./layerscope-runs.db``).
        follow: keep polling for new checkpoints until ``stop`` is set or ``max_polls``.
        poll_seconds: wait between polls in follow mode.
        settle_seconds: leave checkpoints modified more recently than this for a later
            poll (default: 0, or :data:`FOLLOW_SETTLE_SECONDS` when following).
        max_polls: stop following after this many polls (``None``: until stopped).
        stop: an event that ends follow mode (checked between polls).
        progress: called with a :class:`TrackEvent` after each checkpoint.
        on_checkpoint: called as ``on_checkpoint(store, run_id, checkpoint)`` for each
            checkpoint scanned successfully, before its scan is stored, to record more at
            its step (e.g. the LLC, :func:`layerscope.track.llc.log_llc`). If it raises,
            the scan is not stored (the checkpoint stays pending) and the exception
            propagates.
        options: :class:`~layerscope.track.options.TrackOptions` (those needing a live
            model, such as ``every`` or ``probe``, are refused).
        **kwargs: ``TrackOptions`` fields by name (``metrics``, ``detector``, ``rules``,
            ``on_alert``, ``seed``, ``meta``...) and further :func:`layerscope.scan`
            options (``include``, ``allow_unsafe_pickle``...).

    Returns:
        The steps scanned and stored by this call, in order (errors are not included).

    Raises:
        ValueError: ``directory`` is not a directory, invalid options, or an unknown run id.
    """
    opts = TrackOptions.build(options, **kwargs)
    if store is not None:
        opts = TrackOptions.build(opts, store=store)
    if opts.live_only():
        raise ValueError(
            f"track_checkpoints: {', '.join(opts.live_only())} need(s) a live model "
            "(use Monitor or a training callback)"
        )
    root = Path(directory).resolve()
    if not root.is_dir():
        raise ValueError(f"checkpoint directory does not exist: {root}")
    if poll_seconds < 0 or (max_polls is not None and max_polls < 1):
        raise ValueError("poll_seconds must be >= 0 and max_polls >= 1")
    if settle_seconds is None:
        settle_seconds = FOLLOW_SETTLE_SECONDS if follow else 0.0
    tracker = Tracker(opts, run, {"checkpoints": str(root)})
    try:
        poller = _Poller(root, tracker, settle_seconds, progress, on_checkpoint)
        return _loop(poller, follow, poll_seconds, max_polls, stop or threading.Event())
    finally:
        tracker.close()


def _loop(
    tracker: _Poller,
    follow: bool,
    poll_seconds: float,
    max_polls: int | None,
    stop: threading.Event,
) -> list[int]:
    scanned: list[int] = []
    polls = 0
    while True:
        scanned += tracker.poll()
        polls += 1
        if not follow or (max_polls is not None and polls >= max_polls) or stop.is_set():
            return scanned
        if stop.wait(poll_seconds):
            return scanned


__all__ = [
    "FOLLOW_SETTLE_SECONDS",
    "Checkpoint",
    "CheckpointHook",
    "TrackEvent",
    "checkpoint_step",
    "find_checkpoints",
    "fingerprint",
    "track_checkpoints",
]
