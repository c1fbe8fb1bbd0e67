"""Framework callbacks: optional imports, a fake Lightning trainer, a real tiny HF Trainer."""

from __future__ import annotations

import pickle
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
import torch

from _hf_models import tiny_config
from layerscope.track import (
    Alert,
    LayerscopeHFCallback,
    LayerscopeLightningCallback,
    RunStore,
    track_checkpoints,
)

from .conftest import mlp


def test_importing_track_imports_no_framework() -> None:
    code = (
        "import sys, layerscope.track\n"
        "from layerscope.track import LayerscopeHFCallback, LayerscopeLightningCallback\n"
        "bad = {'lightning', 'pytorch_lightning', 'transformers'} & set(sys.modules)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_missing_lightning_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("lightning", "lightning.pytorch", "pytorch_lightning"):
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(ImportError, match="pip install lightning"):
        LayerscopeLightningCallback(every=10)


def test_missing_transformers_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ImportError, match="pip install transformers"):
        LayerscopeHFCallback(every=10)


def test_callback_pickles_before_training(tmp_path: Path) -> None:
    pytest.importorskip("transformers")
    callback = LayerscopeHFCallback(every=3, store=tmp_path / "runs.db", run="p")
    again = pickle.loads(pickle.dumps(callback))
    assert type(again) is type(callback) and again.run == "p" and again.monitor is None


def test_invalid_options_fail_at_construction() -> None:
    with pytest.raises(ValueError, match="unknown scan option"):
        LayerscopeHFCallback(every=10, colour="red")


class _FakeCallback:
    """Stands in for ``lightning.pytorch.Callback``."""


@pytest.fixture
def fake_lightning(monkeypatch: pytest.MonkeyPatch) -> type:
    package = types.ModuleType("lightning")
    module = types.ModuleType("lightning.pytorch")
    module.Callback = _FakeCallback  # type: ignore[attr-defined]
    package.pytorch = module  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "lightning", package)
    monkeypatch.setitem(sys.modules, "lightning.pytorch", module)
    return _FakeCallback


def test_lightning_hooks_drive_the_monitor(fake_lightning: type, store: RunStore) -> None:
    def detector(db: RunStore, run_id: int, step: int) -> list[Alert]:
        return [Alert(step, "warning", "collapse")] if step >= 4 else []

    callback = LayerscopeLightningCallback(
        every=4, store=store, background=False, detector=detector, stop_on_alert=True
    )
    assert isinstance(callback, fake_lightning)
    assert isinstance(callback, LayerscopeLightningCallback)
    logger = types.SimpleNamespace(name="lightning_logs", version=0)
    trainer = types.SimpleNamespace(
        is_global_zero=True,
        logger=logger,
        log_every_n_steps=2,
        callback_metrics={"train_loss": torch.tensor(0.5), "flag": True},
        sanity_checking=False,
        should_stop=False,
        global_step=0,
    )
    module = mlp()
    callback.on_fit_start(trainer, module)
    for step in range(1, 9):
        trainer.global_step = step
        callback.on_train_batch_end(trainer, module, None, None, step - 1)
        if trainer.should_stop:
            break
    trainer.callback_metrics = {"val_acc": torch.tensor([0.75])}
    callback.on_validation_end(trainer, module)
    callback.on_fit_end(trainer, module)
    callback.close()
    assert list(store.steps("lightning_logs-0")["step"]) == [1, 4]
    assert trainer.should_stop and trainer.global_step == 4
    scalars = store.scalar_history("lightning_logs-0")
    assert list(scalars.columns) == ["step", "train_loss", "val_acc"]
    assert list(scalars["step"]) == [2, 4] and scalars["val_acc"].iloc[-1] == 0.75


def test_lightning_other_ranks_do_nothing(fake_lightning: type, store: RunStore) -> None:
    callback = LayerscopeLightningCallback(every=1, store=store)
    trainer = types.SimpleNamespace(is_global_zero=False, global_step=0)
    callback.on_fit_start(trainer, mlp())
    callback.on_train_batch_end(trainer, mlp(), None, None, 0)
    assert callback.monitor is None and store.runs().empty


def test_hf_trainer_end_to_end(tmp_path: Path) -> None:
    """A real tiny Trainer run: the callback scans and logs; its checkpoints track too."""
    transformers = pytest.importorskip("transformers")
    pytest.importorskip("accelerate")
    config = tiny_config("bert")
    torch.manual_seed(0)
    model = transformers.BertForSequenceClassification(config)
    gen = torch.Generator().manual_seed(0)
    data = [
        {"input_ids": torch.randint(0, 64, (8,), generator=gen), "labels": i % 2} for i in range(24)
    ]
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=6,
        per_device_train_batch_size=4,
        logging_steps=2,
        save_strategy="steps",
        save_steps=3,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
    )
    db = tmp_path / "runs.db"
    callback = LayerscopeHFCallback(every=2, store=db, run="hf")
    assert isinstance(callback, transformers.TrainerCallback)
    trainer: Any = transformers.Trainer(
        model=model, args=args, train_dataset=data, callbacks=[callback]
    )
    trainer.train()
    callback.close()
    scanned = track_checkpoints(tmp_path / "out", "hf-checkpoints", db)
    with RunStore(db) as store:
        steps = store.steps("hf")
        assert list(steps["step"]) == [1, 2, 4, 6]
        assert set(steps["status"]) <= {"ok", "skipped"} and steps["status"].iloc[0] == "ok"
        scalars = store.scalar_history("hf")
        assert {"loss", "learning_rate"} <= set(scalars.columns)
        assert list(scalars["step"][:3]) == [2, 4, 6]
        hist = store.layer_history("hf", ("alpha",))
        assert hist["name"].str.contains("attention.self.query").any()
        assert scanned == [3, 6]
        assert store.layer_history("hf-checkpoints")["alpha"].notna().any()


def test_lightning_trainer_end_to_end(tmp_path: Path) -> None:
    """A real tiny Lightning run: scans, logged metrics, a probe batch, stop on alert."""
    pl = pytest.importorskip("lightning.pytorch")

    class Tiny(pl.LightningModule):  # type: ignore[misc,name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.net(x)  # type: ignore[no-any-return]

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self(x), y)
            self.log("train_loss", loss)
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.01)

    gen = torch.Generator().manual_seed(0)
    data = torch.utils.data.TensorDataset(
        torch.randn(32, 16, generator=gen), torch.randn(32, 8, generator=gen)
    )
    loader = torch.utils.data.DataLoader(data, batch_size=4)

    def detector(db: RunStore, run_id: int, step: int) -> list[Alert]:
        return [Alert(step, "warning", "stop here")] if step >= 6 else []

    db = tmp_path / "runs.db"
    callback = LayerscopeLightningCallback(
        every=3,
        store=db,
        run="pl",
        background=False,
        detector=detector,
        stop_on_alert=True,
        probe=torch.randn(5, 16, generator=gen),
    )
    assert isinstance(callback, pl.Callback)
    trainer = pl.Trainer(
        max_steps=8,
        callbacks=[callback],
        logger=False,
        log_every_n_steps=1,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
        default_root_dir=str(tmp_path),
    )
    trainer.fit(Tiny(), loader)
    callback.close()
    assert trainer.global_step == 6  # stopped by the alert
    with RunStore(db) as store:
        assert list(store.steps("pl")["step"]) == [1, 3, 6]
        scalars = store.scalar_history("pl")
        assert scalars["train_loss"].notna().sum() >= 5
        assert scalars["probe_l2_norm"].notna().tolist().count(True) == 3
        assert store.alerts("pl")["message"].tolist() == ["stop here"]
