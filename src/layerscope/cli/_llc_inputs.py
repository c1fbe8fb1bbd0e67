"""Inputs of ``layerscope llc`` / ``track --llc-data``: model, weights, data and loss.

SGLD needs a live ``nn.Module``, so a checkpoint is either a Python path
``pkg.module:build`` returning the trained module, or a weights file/directory (any
source ``layerscope scan`` reads, opened with ``weights_only=True``) loaded into the
architecture a ``pkg.module:build`` factory builds. Failures are one-line
:class:`~layerscope.cli._io.UserError` s naming the input that is wrong.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from layerscope.cli._io import UserError, import_object

if TYPE_CHECKING:
    import torch
    from torch import nn

LossFn = Callable[["nn.Module", Any], "torch.Tensor"]

# ---------------------------------------------------------------- built-in losses


def _pair(batch: Any, name: str) -> tuple[Any, Any]:
    if isinstance(batch, tuple | list) and len(batch) == 2:
        return batch[0], batch[1]
    raise ValueError(f"loss {name} expects batches (x, y), got {type(batch).__name__}")


def _residual(model: nn.Module, batch: Any, name: str) -> torch.Tensor:
    x, y = _pair(batch, name)
    out: torch.Tensor = model(x)
    if out.shape != y.shape:  # broadcasting (B, 1) against (B,) would silently be (B, B)
        raise ValueError(
            f"loss {name}: model output shape {tuple(out.shape)} != target shape {tuple(y.shape)}"
        )
    residual: torch.Tensor = out - y
    return residual


def mse_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """Mean squared error of ``model(x)`` vs ``y``, averaged over samples *and* outputs."""
    return _residual(model, batch, "mse").pow(2).mean()


def nll_gauss_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """Unit-variance Gaussian NLL (constant dropped): 0.5·mean_i ‖model(x_i) − y_i‖²."""
    r = _residual(model, batch, "nll-gauss")
    return 0.5 * r.reshape(len(r), -1).pow(2).sum(1).mean()


def ce_loss(model: nn.Module, batch: Any) -> torch.Tensor:
    """Cross-entropy of the logits ``model(x)`` against class indices (or probabilities) ``y``."""
    from torch.nn.functional import cross_entropy

    x, y = _pair(batch, "ce")
    return cross_entropy(model(x), y)


BUILTIN_LOSSES: dict[str, LossFn] = {"mse": mse_loss, "ce": ce_loss, "nll-gauss": nll_gauss_loss}


# ---------------------------------------------------------------- resolving the inputs


def call_factory(spec: str, flag: str) -> Any:
    """``pkg.module:name`` -> the object, called without arguments if it is a factory."""
    from torch import nn

    obj = import_object(spec)
    if not callable(obj) or isinstance(obj, nn.Module):
        return obj
    try:
        return obj()
    except Exception as exc:  # user code: any failure is the user's input
        raise UserError(f"{flag} {spec}: calling it failed ({describe_error(exc)})") from exc


def describe_error(exc: BaseException) -> str:
    from layerscope.adapters.base import one_line

    return f"{type(exc).__name__}: {one_line(exc)}"


def as_module(obj: Any, spec: str, flag: str) -> nn.Module:
    from torch import nn

    if not isinstance(obj, nn.Module):
        raise UserError(f"{flag} {spec}: expected an nn.Module, got {type(obj).__name__}")
    return obj


def build_model(
    checkpoint: str, model_spec: str | None, *, allow_unsafe_pickle: bool = False
) -> nn.Module:
    """The module to sample: ``checkpoint`` itself (a Python path) or ``--model`` + weights."""
    is_path = Path(checkpoint).exists()
    if model_spec is None:
        if is_path:
            raise UserError(
                f"{checkpoint}: a weights file holds no architecture; add --model "
                "pkg.module:build (a function returning the untrained nn.Module)"
            )
        if ":" not in checkpoint:
            raise UserError(f"{checkpoint}: no such file or directory")
        return as_module(call_factory(checkpoint, "CHECKPOINT"), checkpoint, "CHECKPOINT")
    if not is_path:
        raise UserError(f"{checkpoint}: no such file or directory (with --model, a weights file)")
    model = as_module(call_factory(model_spec, "--model"), model_spec, "--model")
    load_weights(model, checkpoint, allow_unsafe_pickle=allow_unsafe_pickle)
    return model


def _checkpoint_state(path: str | Path, allow_unsafe_pickle: bool) -> dict[str, torch.Tensor]:
    """Every tensor of a checkpoint (state dict, .safetensors, HF dir), by cleaned name."""
    from layerscope.adapters import open_source
    from layerscope.adapters.base import clean_name
    from layerscope.adapters.torch_module import TorchModuleSource

    source = open_source(path, allow_unsafe_pickle=allow_unsafe_pickle)
    if isinstance(source, TorchModuleSource):  # a whole pickled module (--unsafe-pickle)
        return {clean_name(k): v for k, v in source.module.state_dict().items()}
    return {layer.name: layer.load() for layer in source}


def load_weights(model: nn.Module, path: str | Path, *, allow_unsafe_pickle: bool = False) -> None:
    """Copy a checkpoint's tensors into ``model``; every key must match (tied ones once).

    Raises:
        UserError: the checkpoint does not fit: the first missing or unexpected key, or
            the first tensor whose shape differs.
        SourceError: the checkpoint cannot be read.
    """
    from layerscope.adapters.base import clean_name

    state = _checkpoint_state(path, allow_unsafe_pickle)
    own = model.state_dict(keep_vars=True)
    names = {clean_name(k): k for k in own}
    present = {id(own[names[k]]) for k in state if k in names}
    missing = [k for k in names if k not in state and id(own[names[k]]) not in present]
    unexpected = [k for k in state if k not in names]
    if missing or unexpected:
        first = f"missing key {missing[0]!r}" if missing else f"unexpected key {unexpected[0]!r}"
        raise UserError(
            f"{path}: does not fit the model ({first}; {len(missing)} missing, "
            f"{len(unexpected)} unexpected)"
        )
    for key, tensor in state.items():
        if tuple(tensor.shape) != tuple(own[names[key]].shape):
            raise UserError(
                f"{path}: {key} has shape {tuple(tensor.shape)} in the checkpoint but "
                f"{tuple(own[names[key]].shape)} in the model"
            )
    model.load_state_dict({names[k]: v for k, v in state.items()}, strict=False)


def load_data(spec: str, batch_size: int | None) -> Any:
    """The data ``--data pkg.module:make_loader`` names (called), checked to be batchable."""
    from layerscope.probes._llc_data import describe

    data = call_factory(spec, "--data")
    if isinstance(data, str | bytes | Mapping):  # iterable, but of characters or keys
        raise UserError(
            f"--data {spec}: expected a DataLoader, an iterable of batches or a tuple of "
            f"tensors, got {type(data).__name__}"
        )
    try:
        describe(data, batch_size)
    except ValueError as exc:
        raise UserError(f"--data {spec}: {exc}") from exc
    return data


def resolve_loss(spec: str) -> LossFn:
    """A built-in loss by name, or ``pkg.module:fn`` taking ``(model, batch)``."""
    if spec in BUILTIN_LOSSES:
        return BUILTIN_LOSSES[spec]
    if ":" not in spec:
        names = ", ".join(BUILTIN_LOSSES)
        raise UserError(f"--loss {spec}: expected one of {names} or a Python path pkg.module:fn")
    fn = import_object(spec)
    if not callable(fn):
        raise UserError(f"--loss {spec}: expected a function loss_fn(model, batch)")
    return fn  # type: ignore[no-any-return]


def check_loss(model: nn.Module, data: Any, loss_fn: LossFn, spec: str, opts: Any) -> None:
    """Evaluate the loss once on a first batch, so a failing loss is one clear error."""
    import torch

    from layerscope.probes._llc_data import batches, describe

    batch = next(batches(data, describe(data, opts.batch_size).batch_size, opts.seed))
    try:
        with torch.no_grad():
            value = loss_fn(model, batch)
    except Exception as exc:  # user code or a shape mismatch: the user's input is wrong
        raise UserError(
            f"--loss {spec}: failed on the first batch ({describe_error(exc)})"
        ) from exc
    if not isinstance(value, torch.Tensor) or value.numel() != 1:
        raise UserError(f"--loss {spec}: must return a scalar tensor, got {_shape(value)}")
    if not torch.isfinite(value).all():
        raise UserError(f"--loss {spec}: not finite at the checkpoint ({float(value)})")


def _shape(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"shape {tuple(shape)}" if shape is not None else type(value).__name__
