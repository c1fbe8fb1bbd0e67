"""Training-framework callbacks that run a :class:`~layerscope.track.Monitor`.

* :class:`LayerscopeLightningCallback` for PyTorch Lightning (``lightning`` or the older
  ``pytorch_lightning``);
* :class:`LayerscopeHFCallback` for the Hugging Face ``transformers.Trainer``.

Neither framework is imported until a callback is instantiated; instantiating one without
its framework raises ``ImportError`` saying what to install. Each instance is an instance
of the framework's own callback class (built on first use), so the trainers accept it.
Only the main process (rank 0) monitors; other ranks do nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import torch

from layerscope.track.monitor import Monitor
from layerscope.track.options import TrackOptions

_C = TypeVar("_C", bound="_MonitorCallback")
_CONCRETE: dict[tuple[type, type], type] = {}
# Alert levels that stop training when ``stop_on_alert`` is set.
STOP_LEVELS = frozenset({"warning", "error"})


def _import_base(modules: tuple[str, ...], name: str, hint: str) -> type:
    """``name`` from the first importable of ``modules``, else ``ImportError(hint)``."""
    for module in modules:
        try:
            base: type = getattr(importlib.import_module(module), name)
        except ImportError:
            continue
        return base
    raise ImportError(hint)


def _lightning_base() -> type:
    hint = "LayerscopeLightningCallback needs PyTorch Lightning: pip install lightning"
    return _import_base(("lightning.pytorch", "pytorch_lightning"), "Callback", hint)


def _hf_base() -> type:
    hint = "LayerscopeHFCallback needs Hugging Face transformers: pip install transformers"
    return _import_base(("transformers",), "TrainerCallback", hint)


def numbers(values: Mapping[str, Any]) -> dict[str, float]:
    """The numeric entries of a metrics mapping (numbers and one-element tensors) as floats."""
    out: dict[str, float] = {}
    for key, value in values.items():
        if isinstance(value, torch.Tensor) and value.numel() == 1:
            out[str(key)] = float(value.detach().cpu().item())
        elif isinstance(value, int | float) and not isinstance(value, bool):
            out[str(key)] = float(value)
    return out


class _MonitorCallback:
    """Monitor options, and the :class:`Monitor` made when training starts."""

    _framework: ClassVar[Callable[[], type]]

    def __new__(cls: type[_C], *args: Any, **kwargs: Any) -> _C:
        base = cls._framework()
        if issubclass(cls, base):
            return object.__new__(cls)
        key = (cls, base)
        if key not in _CONCRETE:
            namespace = {
                "__module__": cls.__module__,
                "__qualname__": cls.__qualname__,
                "_public": cls,
            }
            _CONCRETE[key] = type(cls.__name__, (cls, base), namespace)
        instance: _C = object.__new__(_CONCRETE[key])
        return instance

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle as the public class (the framework subclass is rebuilt on unpickling)."""
        return (_restore, (getattr(type(self), "_public", type(self)), self.__dict__))

    def __init__(
        self,
        every: int = 100,
        *,
        run: str | None = None,
        stop_on_alert: bool = False,
        options: TrackOptions | None = None,
        **kwargs: Any,
    ) -> None:
        self.options = TrackOptions.build(options, every=every, **kwargs)
        self.run = run
        self.stop_on_alert = stop_on_alert
        self.monitor: Monitor | None = None

    def _start(self, model: torch.nn.Module, run: str, framework: str) -> None:
        self.close()
        meta = {**(self.options.meta or {}), "framework": framework}
        self.monitor = Monitor(model, self.options, run=run, meta=meta)

    def _should_stop(self) -> bool:
        monitor = self.monitor
        return (
            self.stop_on_alert
            and monitor is not None
            and any(a.level in STOP_LEVELS for a in monitor.alerts)
        )

    def close(self) -> None:
        """Wait for the running scan and close the monitor (also done by the next fit)."""
        if self.monitor is not None:
            self.monitor.close()
            self.monitor = None


def _restore(cls: type[_C], state: dict[str, Any]) -> _C:
    instance = cls.__new__(cls)
    instance.__dict__.update(state)
    return instance


class LayerscopeLightningCallback(_MonitorCallback):
    """PyTorch Lightning callback: scans every ``every`` global steps, logs the metrics.

    Logged scalars: ``trainer.callback_metrics`` every ``log_every_n_steps`` training
    batches and after each validation. Arguments: ``every``, ``options`` and every
    :class:`~layerscope.track.options.TrackOptions` field or scan option by name, as for
    :class:`Monitor`, plus ``run`` and ``stop_on_alert`` (set ``trainer.should_stop`` on a
    warning or error alert). The run name defaults to the logger's name and version,
    else the LightningModule class.

    Raises:
        ImportError: PyTorch Lightning is not installed.
    """

    _framework = staticmethod(_lightning_base)

    def on_fit_start(self, trainer: Any, pl_module: torch.nn.Module) -> None:
        """Start the monitor on the main process."""
        if not trainer.is_global_zero:
            return
        logger = getattr(trainer, "logger", None)
        default = type(pl_module).__name__
        if logger is not None:
            default = f"{logger.name}-{logger.version}"
        self._start(pl_module, self.run or default, "lightning")

    def on_train_batch_end(
        self, trainer: Any, pl_module: torch.nn.Module, outputs: Any, batch: Any, batch_idx: int
    ) -> None:
        """Log the callback metrics (every ``log_every_n_steps``) and scan when due."""
        if self.monitor is None:
            return
        step = int(trainer.global_step)
        every = max(1, int(getattr(trainer, "log_every_n_steps", 1)))
        scalars = numbers(trainer.callback_metrics) if step % every == 0 else {}
        self.monitor.step(step, **scalars)
        if self._should_stop():
            trainer.should_stop = True

    def on_validation_end(self, trainer: Any, pl_module: torch.nn.Module) -> None:
        """Log the validation metrics at the current step."""
        if self.monitor is not None and not getattr(trainer, "sanity_checking", False):
            self.monitor.log(int(trainer.global_step), **numbers(trainer.callback_metrics))

    def on_fit_end(self, trainer: Any, pl_module: torch.nn.Module) -> None:
        """Wait for the last scan."""
        if self.monitor is not None:
            self.monitor.wait()


class LayerscopeHFCallback(_MonitorCallback):
    """Hugging Face ``TrainerCallback``: scans every ``every`` global steps, logs ``logs``.

    Every numeric entry the Trainer logs (loss, learning_rate, eval_loss...) is stored at
    the current global step. Arguments: ``every``, ``options`` and every
    :class:`~layerscope.track.options.TrackOptions` field or scan option by name, as for
    :class:`Monitor`, plus ``run`` and ``stop_on_alert`` (set
    ``control.should_training_stop`` on a warning or error alert). The run name defaults
    to ``args.run_name``, else the output directory's name.

    Raises:
        ImportError: transformers is not installed.
    """

    _framework = staticmethod(_hf_base)

    def on_train_begin(
        self, args: Any, state: Any, control: Any, model: torch.nn.Module | None = None, **_: Any
    ) -> None:
        """Start the monitor on the main process."""
        if model is None or not state.is_world_process_zero:
            return
        name = getattr(args, "run_name", None) or Path(str(args.output_dir)).name
        self._start(model, self.run or name, "transformers")

    def on_step_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        """Scan when due."""
        if self.monitor is None:
            return
        self.monitor.step(int(state.global_step))
        if self._should_stop():
            control.should_training_stop = True

    def on_log(
        self, args: Any, state: Any, control: Any, logs: Mapping[str, Any] | None = None, **_: Any
    ) -> None:
        """Store the logged numbers at the current global step."""
        if self.monitor is not None and logs:
            self.monitor.log(int(state.global_step), **numbers(logs))

    def on_train_end(self, args: Any, state: Any, control: Any, **_: Any) -> None:
        """Wait for the last scan (the store stays open for evaluation logs)."""
        if self.monitor is not None:
            self.monitor.wait()


__all__ = ["LayerscopeHFCallback", "LayerscopeLightningCallback", "numbers"]
