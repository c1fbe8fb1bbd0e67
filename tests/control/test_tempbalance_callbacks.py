"""TempBalance inside the Hugging Face Trainer and Lightning: rates at every optimizer step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from layerscope.control.tempbalance import (
    TempBalance,
    hf_callback,
    layer_param_groups,
    lightning_callback,
)


class _Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.layers = torch.nn.Sequential(
            torch.nn.Linear(8, 64),
            torch.nn.Linear(64, 96),
            torch.nn.Linear(96, 80),
            torch.nn.Linear(80, 64),
            torch.nn.Linear(64, 2),
        )

    def forward(self, x: torch.Tensor, y: torch.Tensor | None = None) -> Any:
        out = self.layers(x)
        return {"loss": torch.nn.functional.cross_entropy(out, y)} if y is not None else out


def _checker(opt: torch.optim.Optimizer, tb: TempBalance, seen: list[int]) -> None:
    """After every optimizer step: each layer group ran at the reference lr × its factor."""

    def check(optimizer: Any, *_: Any) -> None:
        eta = tb.reference["lr"]
        for name, group in tb.groups.items():
            assert group["lr"] == pytest.approx(eta * tb.factors.get(name, 1.0), rel=1e-12)
        seen.append(len(tb.factors))

    opt.register_step_post_hook(check)


def _data() -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(0)
    x = torch.randn(48, 8, generator=g)
    return [{"x": x[i], "y": (x[i, 0] > 0).long()} for i in range(48)]


def test_hf_trainer(tmp_path: Path) -> None:
    from transformers import Trainer, TrainingArguments

    model = _Net()
    opt = torch.optim.SGD(layer_param_groups(model, lr=0.1), lr=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda t: 1.0 / (1 + t))
    tb = TempBalance(opt, model, every=3)
    seen: list[int] = []
    _checker(opt, tb, seen)
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=7,
        per_device_train_batch_size=8,
        report_to=[],
        use_cpu=True,
        save_strategy="no",
        logging_strategy="no",
        disable_tqdm=True,
    )
    trainer = Trainer(
        model=model,
        args=args,
        train_dataset=_data(),
        optimizers=(opt, sched),
        callbacks=[hf_callback(tb)],
    )
    trainer.train()
    assert len(seen) == 7 and tb.steps == 7
    assert seen == [0] + [3] * 6  # step 1 untuned; layers 1..3 tuned from its on_step_end on


def test_lightning(tmp_path: Path) -> None:
    try:
        import lightning.pytorch as pl
    except ImportError:
        pl = pytest.importorskip("pytorch_lightning")

    net = _Net()
    opt = torch.optim.SGD(layer_param_groups(net, lr=0.1), lr=0.1)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=2, gamma=0.5)
    tb = TempBalance(opt, net, every=3)
    seen: list[int] = []
    _checker(opt, tb, seen)

    class Module(pl.LightningModule):  # type: ignore[misc]
        def __init__(self) -> None:
            super().__init__()
            self.net = net

        def training_step(self, batch: dict[str, torch.Tensor], _: int) -> torch.Tensor:
            return self.net(batch["x"], batch["y"])["loss"]

        def configure_optimizers(self) -> Any:
            return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "step"}}

    loader = torch.utils.data.DataLoader(_data(), batch_size=8)
    trainer = pl.Trainer(
        max_steps=6,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[lightning_callback(tb)],
        default_root_dir=str(tmp_path),
    )
    trainer.fit(Module(), loader)
    assert len(seen) == 6 and seen == [3] * 6
