"""Validation, test and predict through MMLightningModule: MMEngine metrics and torchmetrics, DataModules, callbacks."""

from __future__ import annotations

import lightning as L
import pytest
import torch
import torch.nn.functional as F
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from mm2lightning import MMLightningModule
from mm2lightning.evaluator import BaseMetric
from mm2lightning.model import BaseModel
from mm2lightning.registry import METRICS


class Classifier(BaseModel):
    """The 15-minute tutorial's model contract: 'loss' -> {'loss': CE}, 'predict' -> (logits, labels)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(4, 3)

    def forward(self, inputs, labels, mode="tensor"):
        logits = self.fc(inputs)
        if mode == "loss":
            return dict(loss=F.cross_entropy(logits, labels))
        if mode == "predict":
            return logits, labels
        return logits


@METRICS.register_module(force=True)
class TutorialAccuracy(BaseMetric):
    """The 15-minute tutorial's Accuracy metric."""

    def process(self, data_batch, data_samples):
        score, gt = data_samples
        self.results.append(dict(batch_size=len(gt), correct=(score.argmax(dim=1) == gt).sum().cpu()))

    def compute_metrics(self, results):
        total_correct = sum(r["correct"] for r in results)
        total_size = sum(r["batch_size"] for r in results)
        return dict(accuracy=100 * total_correct / total_size)


def dataset(n: int = 48, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    return list(zip(x, x[:, :3].argmax(1)))


class DataModule(L.LightningDataModule):
    def train_dataloader(self):
        return DataLoader(dataset(), batch_size=8)

    def val_dataloader(self):
        return DataLoader(dataset(30, seed=1), batch_size=7)

    def test_dataloader(self):
        return DataLoader(dataset(30, seed=2), batch_size=7)

    def predict_dataloader(self):
        return DataLoader(dataset(10, seed=3), batch_size=4)


def make_module(**kwargs) -> MMLightningModule:
    from torchmetrics.classification import MulticlassAccuracy

    return MMLightningModule(
        Classifier(),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.5)),
        val_evaluator=[dict(type="TutorialAccuracy"), MulticlassAccuracy(num_classes=3, average="micro")],
        test_evaluator=dict(type=TutorialAccuracy, prefix="mm"),
        **kwargs,
    )


def trainer(tmp_path, **kwargs) -> L.Trainer:
    defaults = dict(accelerator="cpu", devices=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                    default_root_dir=tmp_path, enable_checkpointing=False)
    return L.Trainer(**{**defaults, **kwargs})


def expected_accuracy(model: Classifier, data) -> float:
    x = torch.stack([d[0] for d in data])
    y = torch.stack([d[1] for d in data])
    with torch.no_grad():
        return (model.fc(x).argmax(1) == y).float().mean().item()


def test_validate_logs_mmengine_and_torchmetrics_results(tmp_path):
    module = make_module()
    (results,) = trainer(tmp_path).validate(module, datamodule=DataModule())
    expected = expected_accuracy(module.model, dataset(30, seed=1))
    assert results["val/accuracy"] == pytest.approx(100 * expected, abs=1e-4)
    assert results["val/MulticlassAccuracy"] == pytest.approx(expected, abs=1e-6)


def test_test_and_predict(tmp_path):
    module = make_module()
    t = trainer(tmp_path)
    (results,) = t.test(module, datamodule=DataModule())
    assert results == {"test/mm/accuracy": pytest.approx(100 * expected_accuracy(module.model, dataset(30, seed=2)), abs=1e-4)}
    predictions = t.predict(module, datamodule=DataModule())
    assert len(predictions) == 3 and predictions[0][0].shape == (4, 3)  # (logits, labels) per batch


def test_fit_with_datamodule_checkpoint_monitor_and_early_stopping(tmp_path):
    module = make_module()
    best = ModelCheckpoint(dirpath=tmp_path, monitor="val/accuracy", mode="max", filename="best")
    stop = EarlyStopping(monitor="val/MulticlassAccuracy", mode="max", patience=1, min_delta=1.0)  # never improves by 1.0
    t = trainer(tmp_path, max_epochs=20, enable_checkpointing=True, callbacks=[best, stop])
    t.fit(module, datamodule=DataModule())
    assert t.current_epoch == 2  # stopped by EarlyStopping after the first non-improving epochs
    assert (tmp_path / "best.ckpt").exists() and best.best_model_score is not None
    assert t.callback_metrics["val/accuracy"] == pytest.approx(100 * expected_accuracy(module.model, dataset(30, seed=1)), abs=1e-4)


def test_reduce_on_plateau_steps_after_validation(tmp_path):
    """As MMEngine's ParamSchedulerHook: stepped with the evaluator's metrics (names without 'val/')."""
    accuracies = []

    class Record(L.Callback):
        def on_validation_end(self, trainer, pl_module):
            accuracies.append(float(trainer.callback_metrics["val/accuracy"]))

    module = make_module(
        param_scheduler=dict(type="ReduceOnPlateauLR", monitor="accuracy", rule="greater", patience=0, factor=0.5)
    )
    trainer(tmp_path, max_epochs=5, num_sanity_val_steps=0, callbacks=[Record()]).fit(module, datamodule=DataModule())
    bad_epochs = sum(acc <= max(accuracies[:i]) * (1 + 1e-4) for i, acc in enumerate(accuracies) if i > 0)
    assert len(accuracies) == 5 and bad_epochs > 0
    assert module.optim_wrapper.get_lr()["lr"][0] == pytest.approx(0.5 * 0.5**bad_epochs)
