"""Save and resume a stacked capacity run, so one run can span several sessions.

A width-32 model needs about 10⁶ steps to reach its plateau, hours of one core, longer
than a working session. The run therefore writes, after every evaluation, everything
its next step depends on: the stacked weights, AdamW's state (moments and step
counts), the batch generator's state, the step, the bits measured so far, the rows
already taken and the wall time spent. Resuming from that file continues the run
exactly: the same batches, the same updates, the same bits as a run never stopped
(the tests check it bit for bit). The data sets are not saved; they are drawn again
from their seeds. Written to a temporary file and renamed, so a run killed while
writing leaves the previous checkpoint intact.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot resume this run (one line, naming the file)."""


@dataclass
class State:
    """What a stacked run needs to go on from ``step``."""

    step: int
    history: list[list[float]]  # memorized bits per model at each evaluation
    rows: list[dict[str, object] | None]  # rows already taken (constant-rate runs)
    loss: torch.Tensor  # last per-model training loss [K]
    seconds: float  # wall time spent before this process


def save(
    path: Path,
    configs: list[Any],
    state: State,
    params: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
) -> None:
    """Write the run's state to ``path`` atomically (temporary file, then rename)."""
    payload = {
        "configs": [asdict(c) for c in configs],
        "state": asdict(state),
        "params": {n: p.detach().cpu() for n, p in params.items()},
        "optimizer": opt.state_dict(),
        "generator": gen.get_state(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def restore(
    path: Path,
    configs: list[Any],
    params: dict[str, torch.Tensor],
    opt: torch.optim.Optimizer,
    gen: torch.Generator,
) -> State:
    """Load ``path`` into the freshly built run; its state. The configs must match."""
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
        saved = list(payload["configs"])
    except Exception as exc:  # any unreadable file gets the same one line
        why = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(f"{path}: not a capacity checkpoint ({why})") from None
    if len(saved) != len(configs):
        raise CheckpointError(
            f"{path}: saved for another run ({len(saved)} models ≠ {len(configs)}); "
            "use another directory"
        )
    for old, config in zip(saved, configs, strict=True):
        was, now = _settings(config, old), _settings(config, asdict(config))
        if was != now:
            key = next(k for k in now if was[k] != now[k])
            raise CheckpointError(
                f"{path}: saved for another run ({key} {was[key]} ≠ {now[key]}); "
                "use another directory"
            )
    with torch.no_grad():
        for n, p in params.items():
            p.copy_(payload["params"][n])
    opt.load_state_dict(payload["optimizer"])
    gen.set_state(payload["generator"])
    state = dict(payload["state"])
    return State(**state)


def _settings(config: Any, values: dict[str, Any]) -> dict[str, Any]:
    """The settings a run is keyed by: every field of ``config``'s class, a field the
    checkpoint predates read as its default (a new option defaults to the old behaviour,
    as ``clip`` = 0 did), the device left out (a run may go on on a GPU)."""
    return {f.name: values.get(f.name, f.default) for f in fields(config) if f.name != "device"}
