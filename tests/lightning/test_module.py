"""MMLightningModule with Lightning's Trainer: counting, logging, checkpoints, precision and errors."""

from __future__ import annotations

import copy
import csv
import math
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint
from lightning.pytorch.loggers import CSVLogger
from lightning.pytorch.plugins.precision import MixedPrecision
from lightning.pytorch.strategies import DeepSpeedStrategy, FSDPStrategy, ModelParallelStrategy
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn
from torch.utils.data import DataLoader

from mm2lightning import MMLightningModule
from mm2lightning.logging import MessageHub
from mm2lightning.model import BaseModel
from mm2lightning.optim import AmpOptimWrapper, OptimWrapper

from gan import GAN_OPTIM, make_gan_class, ring_dataset
from models import Net, net_data

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "toy"))
from toy_model import ToyModel, toy_dataset  # noqa: E402


def trainer(tmp_path=None, **kwargs) -> L.Trainer:
    defaults = dict(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, max_epochs=1, default_root_dir=tmp_path,
    )
    return L.Trainer(**{**defaults, **kwargs})


def params(module: MMLightningModule) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in module.model.parameters()])


# ---------------------------------------------------------------------------------------------- counting
@pytest.mark.parametrize(
    "model_fn, optim, data, batch",
    [
        (lambda: make_gan_class(BaseModel)(), GAN_OPTIM, ring_dataset(), 8),  # two optimizers per iteration
        (Net, dict(optimizer=dict(type="SGD", lr=0.01), accumulative_counts=3), net_data(), 4),  # a step every 3rd
    ],
    ids=["two-optimizers", "accumulation"],
)
def test_max_steps_counts_iterations(model_fn, optim, data, batch):
    module = MMLightningModule(model_fn(), optim_wrapper=optim)
    calls = []
    module.model.train_step = (lambda f: lambda *a, **k: calls.append(1) or f(*a, **k))(module.model.train_step)
    t = trainer(max_steps=7, max_epochs=10)
    t.fit(module, DataLoader(data, batch_size=batch))
    assert len(calls) == 7 and t.global_step == 7


def test_every_n_train_steps_checkpoints_at_iterations(tmp_path):
    module = MMLightningModule(make_gan_class(BaseModel)(), optim_wrapper=GAN_OPTIM)
    ckpt = ModelCheckpoint(dirpath=tmp_path, every_n_train_steps=3, save_top_k=-1, filename="{step}")
    trainer(tmp_path, max_epochs=2, enable_checkpointing=True, callbacks=[ckpt]).fit(
        module, DataLoader(ring_dataset(), batch_size=8)
    )
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == sorted(f"step={s}.ckpt" for s in (3, 6, 9, 12, 15))


def test_accumulation_window_uses_trainer_length_and_crosses_epochs():
    """acc=4 over 2 epochs of 5 batches: updates at 4, 8, 10 (the last window divides by 2)."""
    module = MMLightningModule(Net(), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=4))
    updates = []
    module.on_before_optimizer_step = lambda opt: (updates.append(module.trainer.global_step), module._backend.run_before_step())
    trainer(max_epochs=2).fit(module, DataLoader(net_data(), batch_size=8))
    assert updates == [3, 7, 9]  # global_step counted after the update: iterations 4, 8, 10
    assert module.optim_wrapper._max_counts == 10 and module.optim_wrapper._remainder_counts == 2


class _MeanOutput:
    """A metric that reads the predictions (validation must not change training)."""

    def __init__(self) -> None:
        self.values: list[float] = []

    def process(self, data_batch, data_samples) -> None:
        self.values.append(float(torch.stack(list(data_samples)).mean()))

    def evaluate(self, size: int) -> dict:
        return dict(mean=sum(self.values))


def test_validation_inside_an_accumulation_window_keeps_its_gradients():
    """acc=2 over epochs of 3 batches: the epoch-end validation falls inside a window. As in MMEngine, the
    window's gradients wait for its last micro-batch (Lightning would release them before validating)."""
    def run(validate: bool) -> torch.Tensor:
        module = MMLightningModule(Net(), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=2),
                                   val_evaluator=_MeanOutput() if validate else None)
        val = DataLoader(net_data(8), batch_size=4) if validate else None
        trainer(max_epochs=2, num_sanity_val_steps=0).fit(module, DataLoader(net_data(24), batch_size=8), val)
        return params(module)

    assert torch.equal(run(validate=True), run(validate=False))


# ---------------------------------------------------------------------------------------------- logging
def read_csv(path: Path) -> list[dict[str, str]]:
    with open(next(path.rglob("metrics.csv"))) as f:
        return list(csv.DictReader(f))


def test_csv_logger_receives_window_means_of_log_vars_lr_and_grad_norm(tmp_path):
    """As MMEngine's LoggerHook with the default LogProcessor: loss keys are means over the last 10 iterations."""
    from train import History  # examples/toy/train.py

    history = History()
    module = MMLightningModule(ToyModel(), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01), clip_grad=dict(max_norm=1.0)))
    module.message_hub = MessageHub.get_instance(f"test_module_{tmp_path.name}")  # not the histories of other tests
    trainer(tmp_path, max_epochs=2, logger=CSVLogger(tmp_path), log_every_n_steps=5, callbacks=[history]).fit(
        module, DataLoader(toy_dataset(), batch_size=2)
    )
    rows = [r for r in read_csv(tmp_path) if r.get("loss")]
    assert [int(r["step"]) for r in rows] == list(range(4, 50, 5))
    for row in rows:
        window = history.log_vars[max(0, int(row["step"]) - 9) : int(row["step"]) + 1]
        for key in ("loss", "loss1", "loss2"):
            assert float(row[key]) == pytest.approx(sum(w[key] for w in window) / len(window), abs=1e-6)
        assert float(row["lr"]) == pytest.approx(0.01) and math.isfinite(float(row["grad_norm"]))


def test_dict_wrappers_log_named_lrs_and_epoch_means(tmp_path):
    module = MMLightningModule(make_gan_class(BaseModel)(), optim_wrapper=GAN_OPTIM, log_epoch_means=True)
    trainer(tmp_path, max_epochs=1, logger=CSVLogger(tmp_path), log_every_n_steps=2).fit(
        module, DataLoader(ring_dataset(), batch_size=8)
    )
    rows = read_csv(tmp_path)
    columns = set(rows[0])
    assert {"loss", "loss_gen", "loss_disc_fake", "loss_disc_real", "generator.lr", "discriminator.lr",
            "grad_norm", "loss_gen_epoch", "loss_epoch"} <= columns  # grad_norm: one buffer for all wrappers, as MMEngine
    assert float(next(r for r in rows if r["generator.lr"])["generator.lr"]) == pytest.approx(1e-3)


def test_learning_rate_monitor_sees_scheduled_rates(tmp_path):
    from train import WARMUP_THEN_STEPS  # examples/toy/train.py

    module = MMLightningModule(ToyModel(), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)), param_scheduler=WARMUP_THEN_STEPS)
    trainer(
        tmp_path, max_epochs=1, logger=CSVLogger(tmp_path), log_every_n_steps=1,
        callbacks=[LearningRateMonitor(logging_interval="step")],
    ).fit(module, DataLoader(toy_dataset(), batch_size=2))
    monitored = [float(r["lr-SGD"]) for r in read_csv(tmp_path) if r.get("lr-SGD")]
    # LinearLR warm-up over the first epoch (25 iterations, t = 0..24) from 0.1 x lr to lr
    assert monitored[0] == pytest.approx(0.001) and monitored[12] == pytest.approx(0.01 * (0.1 + 0.9 * 12 / 24))
    assert monitored[24] == pytest.approx(0.01)


def test_loggers_are_written_once_per_log_step_and_nothing_is_logged_between(tmp_path):
    module = MMLightningModule(ToyModel(), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)))
    log_calls, writes = [], []
    original = module.log
    module.log = lambda *a, **k: (log_calls.append(module.trainer.global_step), original(*a, **k))
    logger = CSVLogger(tmp_path, flush_logs_every_n_steps=20)
    write, save = logger.log_metrics, logger.save
    logger.log_metrics = lambda metrics, step=None: (writes.append((step, sorted(metrics))), write(metrics, step))
    logger.save = lambda: (writes.append(("save", module.trainer.global_step)), save())
    trainer(tmp_path, max_epochs=1, logger=logger, log_every_n_steps=10).fit(module, DataLoader(toy_dataset(), batch_size=2))
    # iterations 10 and 20 of 25 (Lightning's 0-based steps), one call each with every value; the file is
    # written on the logger's own schedule (its step 19) and when the fit ends, not at every log step (the
    # first save is Lightning's, of the hyperparameters at the start)
    keys = ["data_time", "epoch", "loss", "loss1", "loss2", "lr", "time"]
    assert writes == [("save", 0), (9, keys), (19, keys), ("save", 20), ("save", 25)]
    assert log_calls == []  # no progress bar here: nothing goes through LightningModule.log
    with open(Path(logger.log_dir) / "metrics.csv") as f:
        assert [row["step"] for row in csv.DictReader(f)] == ["9", "19"]


# ---------------------------------------------------------------------------------------------- checkpoints
RESUME_CASES = {
    "scheduler": dict(
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9), clip_grad=dict(max_norm=0.5)),
        param_scheduler=[dict(type="LinearLR", start_factor=0.2, by_epoch=False, end=7), dict(type="MultiStepLR", milestones=[2, 3])],
    ),
    "acc3+scheduler": dict(
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9), accumulative_counts=3, clip_grad=dict(max_norm=0.5)),
        param_scheduler=[dict(type="LinearLR", start_factor=0.2, by_epoch=False, end=7), dict(type="MultiStepLR", milestones=[2, 3])],
    ),
    "amp-fp16": dict(
        optim_wrapper=dict(type="AmpOptimWrapper", dtype="float16", optimizer=dict(type="Adam", lr=0.01), accumulative_counts=2,
                           loss_scale=dict(init_scale=2.0**20, growth_interval=3)),
        param_scheduler=dict(type="CosineAnnealingLR", T_max=4),
    ),
    "paramwise-groups": dict(
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05, weight_decay=1e-3), paramwise_cfg=dict(bias_lr_mult=2.0)),
        param_scheduler=dict(type="ExponentialLR", gamma=0.9),
    ),
}


@pytest.mark.parametrize("case", sorted(RESUME_CASES))
def test_resume_from_epoch_end_checkpoint_is_bit_equal(tmp_path, case):
    kwargs = RESUME_CASES[case]
    data = DataLoader(net_data(), batch_size=8)  # 5 iterations per epoch
    full = MMLightningModule(Net(), **copy.deepcopy(kwargs))
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    trainer(tmp_path, max_epochs=4, enable_checkpointing=True, callbacks=[ckpt]).fit(full, data)

    resumed = MMLightningModule(Net(), **copy.deepcopy(kwargs))
    with torch.no_grad():
        for p in resumed.model.parameters():
            p.add_(1.0)  # the checkpoint must overwrite everything
    t = trainer(tmp_path, max_epochs=4)
    t.fit(resumed, data, ckpt_path=tmp_path / "epoch=1.ckpt")
    assert t.global_step == 20
    assert torch.equal(params(resumed), params(full))
    assert resumed.optim_wrapper.get_lr() == full.optim_wrapper.get_lr()
    if case == "amp-fp16":
        assert resumed.optim_wrapper.loss_scaler.state_dict() == full.optim_wrapper.loss_scaler.state_dict()


def test_gan_resume_is_bit_equal(tmp_path):
    data = DataLoader(ring_dataset(), batch_size=8)
    full = MMLightningModule(make_gan_class(BaseModel)(), optim_wrapper=GAN_OPTIM)
    ckpt = ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, every_n_epochs=1, filename="{epoch}")
    trainer(tmp_path, max_epochs=3, enable_checkpointing=True, callbacks=[ckpt]).fit(full, data)
    resumed = MMLightningModule(make_gan_class(BaseModel)(), optim_wrapper=GAN_OPTIM)
    resumed.model.noise.set_state(full.model.noise.get_state())  # the noise generator is the model's own state
    half = MMLightningModule(make_gan_class(BaseModel)(), optim_wrapper=GAN_OPTIM)
    trainer(tmp_path, max_epochs=1).fit(half, data)
    resumed.model.noise.set_state(half.model.noise.get_state())
    trainer(tmp_path, max_epochs=3).fit(resumed, data, ckpt_path=tmp_path / "epoch=0.ckpt")
    assert torch.equal(params(resumed), params(full))


def test_checkpoint_keys_are_the_models_own_under_one_prefix(tmp_path):
    module = MMLightningModule(ToyModel(), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.01)))
    t = trainer(tmp_path)
    t.fit(module, DataLoader(toy_dataset(), batch_size=2))
    t.save_checkpoint(tmp_path / "last.ckpt")
    checkpoint = torch.load(tmp_path / "last.ckpt", weights_only=True)
    assert sorted(checkpoint["state_dict"]) == ["model.linear.bias", "model.linear.weight"]
    assert sorted(checkpoint["mm2lightning"]) == ["optim_wrapper", "param_schedulers"]
    plain = ToyModel()
    plain.load_state_dict({k.removeprefix("model."): v for k, v in checkpoint["state_dict"].items()})
    assert torch.equal(plain.linear.weight, module.model.linear.weight)


# ---------------------------------------------------------------------------------------------- precision
def core_loop(model: BaseModel, wrapper, data, epochs: int) -> None:
    """What MMEngine's Runner does, with the core only (the reference for CPU AMP, which MMEngine refuses)."""
    wrapper.initialize_count_status(model, 0, epochs * len(data))
    for _ in range(epochs):
        for batch in data:
            model.train_step(batch, wrapper)


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_amp_optim_wrapper_on_cpu_equals_the_core_loop(dtype):
    data = DataLoader(net_data(), batch_size=8)
    cfg = dict(type="AmpOptimWrapper", dtype=dtype, optimizer=dict(type="SGD", lr=0.05), clip_grad=dict(max_norm=0.5))
    module = MMLightningModule(Net(), optim_wrapper=cfg)
    trainer(max_epochs=2).fit(module, data)
    reference = Net()
    core_loop(reference, AmpOptimWrapper(dtype=dtype, optimizer=torch.optim.SGD(reference.parameters(), lr=0.05), clip_grad=dict(max_norm=0.5)), data, 2)
    assert torch.equal(params(module), torch.cat([p.detach().flatten() for p in reference.parameters()]))


def test_plain_wrapper_under_16_mixed_clips_unscaled_gradients():
    data = DataLoader(net_data(), batch_size=8)
    module = MMLightningModule(Net(), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05), clip_grad=dict(max_norm=0.05)))
    scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    trainer(max_epochs=1, plugins=[MixedPrecision("16-mixed", "cpu", scaler)]).fit(module, data)

    reference = Net()
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.05)
    ref_scaler = torch.amp.GradScaler("cpu", init_scale=2.0**12)
    for x, y in data:
        with torch.autocast("cpu", dtype=torch.float16):
            losses = reference(x, y, mode="loss")
            loss = sum(v.mean() for v in losses.values())
        ref_scaler.scale(loss).backward()
        ref_scaler.unscale_(optimizer)
        norm = torch.nn.utils.clip_grad_norm_(reference.parameters(), 0.05)
        ref_scaler.step(optimizer)
        ref_scaler.update()
        optimizer.zero_grad()
    assert module.optim_wrapper.grad_norm.item() == pytest.approx(norm.item(), rel=1e-5)
    assert norm.item() < 100  # an unscaled norm, not one multiplied by the loss scale
    assert torch.allclose(params(module), torch.cat([p.detach().flatten() for p in reference.parameters()]), atol=1e-6)


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])
def test_amp_optim_wrapper_with_mixed_trainer_precision_is_an_error(precision):
    module = MMLightningModule(Net(), optim_wrapper=dict(type="AmpOptimWrapper", optimizer=dict(type="SGD", lr=0.1)))
    before = params(module).clone()
    with pytest.raises(MisconfigurationException, match=rf"Trainer\(precision='bf16-mixed'\) would apply mixed precision twice"):
        trainer(max_epochs=1, precision=precision).fit(module, DataLoader(net_data(), batch_size=8))
    assert torch.equal(params(module), before)


def test_plain_wrapper_under_bf16_mixed_trains():
    module = MMLightningModule(Net(), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05)))
    first = []
    module.model.body.register_forward_hook(lambda m, i, o: first.append(o.dtype) if not first else None)
    trainer(max_epochs=3, precision="bf16-mixed").fit(module, DataLoader(net_data(), batch_size=8))
    assert first == [torch.bfloat16] and module.trainer.global_step == 15


# ---------------------------------------------------------------------------------------------- errors
@pytest.mark.parametrize(
    "flags, match",
    [
        (dict(accumulate_grad_batches=4), r"accumulate_grad_batches=4\) cannot apply.*accumulative_counts=4"),
        (dict(gradient_clip_val=1.0), r"gradient_clip_val=1.0\) cannot apply.*clip_grad=dict\(max_norm=1.0\)"),
    ],
)
def test_lightning_flags_that_cannot_apply(flags, match):
    module = MMLightningModule(Net(), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)))
    with pytest.raises(MisconfigurationException, match=match):
        trainer(**flags).fit(module, DataLoader(net_data(), batch_size=8))


def test_bad_inputs():
    with pytest.raises(TypeError, match=r"model must be a BaseModel .* but got Linear"):
        MMLightningModule(nn.Linear(1, 1))
    with pytest.raises(TypeError, match="model must be a BaseModel"):
        MMLightningModule("ToyModel")
    with pytest.raises(ValueError, match=r"Trainer.fit needs an optim_wrapper"):
        trainer().fit(MMLightningModule(Net()), DataLoader(net_data(), batch_size=8))
    with pytest.raises(ValueError, match=r"Trainer got val data but MMLightningModule has no val_evaluator"):
        data = DataLoader(net_data(), batch_size=8)
        trainer().fit(MMLightningModule(Net(), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1))), data, data)


def test_model_from_config_and_prebuilt_wrapper():
    from mm2lightning.registry import MODELS

    MODELS.register_module(name="LightningTestNet", module=Net, force=True)
    module = MMLightningModule(dict(type="LightningTestNet"), optim_wrapper=None)
    wrapper = OptimWrapper(torch.optim.SGD(module.model.parameters(), lr=0.05))
    module.optim_wrapper_cfg = wrapper
    trainer(max_epochs=1).fit(module, DataLoader(net_data(), batch_size=8))
    assert module.optim_wrapper is wrapper and wrapper.inner_count == 5


# ---------------------------------------------------------------------------------------------- strategies
class _FakeDeepSpeed(DeepSpeedStrategy):
    """DeepSpeed is not installed here; the check only needs the strategy's type."""

    def __init__(self) -> None:  # noqa: D107 - skips DeepSpeed's import check
        pass


@pytest.mark.parametrize(
    "strategy, optim, match",
    [
        (FSDPStrategy(), dict(optimizer=dict(type="SGD", lr=0.1)), r"FSDPStrategy does not support manual optimization.*strategy='fsdp_mm'"),
        (ModelParallelStrategy(), dict(optimizer=dict(type="SGD", lr=0.1)), r"ModelParallelStrategy does not support manual optimization.*strategy='fsdp_mm'"),
        (_FakeDeepSpeed(), GAN_OPTIM, r"2 optim wrappers \(DeepSpeed drives one optimizer\)"),
        (_FakeDeepSpeed(), dict(type="AmpOptimWrapper", optimizer=dict(type="SGD", lr=0.1)), r"AmpOptimWrapper \(set DeepSpeed's precision"),
        (_FakeDeepSpeed(), dict(optimizer=dict(type="SGD", lr=0.1), accumulative_counts=2, clip_grad=dict(max_norm=1.0)),
         r"accumulative_counts > 1 \(set DeepSpeed's gradient_accumulation_steps.*clip_grad \(set DeepSpeed's gradient_clipping"),
    ],
)
def test_strategies_that_cannot_run_train_step_are_refused(strategy, optim, match):
    from mm2lightning.lightning.module import check_strategy_support
    from mm2lightning.optim import build_optim_wrapper

    with pytest.raises(MisconfigurationException, match=match):
        check_strategy_support(strategy, build_optim_wrapper(make_gan_class(BaseModel)(), optim))


def test_deepspeed_with_one_plain_wrapper_is_allowed():
    from mm2lightning.lightning.module import check_strategy_support
    from mm2lightning.optim import build_optim_wrapper

    assert check_strategy_support(_FakeDeepSpeed(), build_optim_wrapper(Net(), dict(optimizer=dict(type="SGD", lr=0.1)))) is None
