"""Runner: MMEngine's Runner facade over lightning.Trainer, against real mmengine where MMEngine has the behaviour."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from mm2lightning.evaluator import BaseMetric
from mm2lightning.model import BaseModel
from mm2lightning.registry import DATASETS, METRICS, MODELS
from mm2lightning.runner import Runner

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # mmengine_reference

# The migration guide's toy example, as written for MMEngine (only work_dir differs: the test's directory).
MIGRATION_GUIDE_TOY = """
import torch
import torch.nn as nn
from torch.utils.data import DataLoader

from mmengine.runner import Runner
from mmengine.model import BaseModel

train_dataset = [(torch.ones(1, 1), torch.ones(1, 1))] * 50
train_dataloader = DataLoader(train_dataset, batch_size=2)


class MMEngineToyModel(BaseModel):

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(1, 1)

    def forward(self, img, label, mode):
        if mode == 'loss':
            feat = self.linear(img)
            loss1 = (feat - label).pow(2)
            loss2 = (feat - label).abs()
            return dict(loss1=loss1, loss2=loss2)
        elif mode == 'tensor':
            return [feat]
        else:
            pass


runner = Runner(
    model=MMEngineToyModel(),
    work_dir=WORK_DIR,
    train_dataloader=train_dataloader,
    train_cfg=dict(by_epoch=True, max_epochs=5),
    optim_wrapper=dict(optimizer=dict(type='SGD', lr=0.01)))
runner.train()
"""


def run_guide_toy(package: str, work_dir: Path) -> nn.Module:
    torch.manual_seed(0)
    namespace = {"WORK_DIR": str(work_dir)}
    exec(compile(MIGRATION_GUIDE_TOY.replace("mmengine", package), f"<toy with {package}>", "exec"), namespace)
    return namespace["runner"].model


def quiet(**kwargs):
    """Trainer arguments that keep the test output short."""
    return dict(trainer_cfg=dict(enable_progress_bar=False, enable_model_summary=False, **kwargs))


def test_migration_guide_toy_through_an_import_swap_equals_mmengine(mmengine, tmp_path):
    ours = run_guide_toy("mm2lightning", tmp_path / "ours")
    ref = run_guide_toy("mmengine", tmp_path / "mmengine")
    ref = getattr(ref, "module", ref)
    assert ours.linear.weight.item() == pytest.approx(0.23316538333892822, abs=1e-6)
    for name, p in ours.state_dict().items():
        assert (p - ref.state_dict()[name]).abs().max().item() <= 1e-6, name
    # MMEngine's default CheckpointHook: a checkpoint every epoch, and last_checkpoint naming the newest.
    names = sorted(p.name for p in (tmp_path / "ours").glob("*.ckpt"))
    assert names == [f"epoch_{i}.ckpt" for i in range(1, 6)]
    assert Path((tmp_path / "ours" / "last_checkpoint").read_text()) == (tmp_path / "ours" / "epoch_5.ckpt")
    assert list((tmp_path / "ours").glob("*/metrics.csv")), "the CSV logger writes under work_dir/<timestamp>"


# ---------------------------------------------------------------- a model with data, metrics and schedulers
class Regression(BaseModel):
    def __init__(self) -> None:
        super().__init__()
        self.body = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))

    def forward(self, x, y, mode="tensor"):
        out = self.body(x)
        if mode == "loss":
            return dict(loss=(out - y).pow(2).mean())
        if mode == "predict":
            return [(out - y).pow(2).mean()]
        return out


class NegMSE(BaseMetric):
    """Higher is better: -MSE (so save_best infers nothing and needs a rule, or names an 'acc' key)."""

    def process(self, data_batch, data_samples) -> None:
        self.results.extend(float(x) for x in data_samples)

    def compute_metrics(self, results) -> dict:
        return dict(acc=-sum(results) / len(results))


def regression_data(n: int = 24, seed: int = 3) -> list:
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=gen)
    return list(zip(x, x.sum(1, keepdim=True).sin()))


def regression_runner(work_dir: Path, max_epochs: int = 4, **kwargs) -> Runner:
    torch.manual_seed(0)
    args = dict(
        model=Regression(),
        work_dir=work_dir,
        train_dataloader=DataLoader(regression_data(), batch_size=4),
        train_cfg=dict(by_epoch=True, max_epochs=max_epochs),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9)),
        param_scheduler=[
            dict(type="LinearLR", start_factor=0.5, by_epoch=False, end=8),
            dict(type="MultiStepLR", milestones=[2, 3], gamma=0.5),
        ],
        randomness=dict(seed=1),
        **quiet(),
    )
    args.update(kwargs)
    return Runner(**args)


def params(model: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in model.parameters()]


class StopAfterEpoch(pl.Callback):
    """Interrupts training after an epoch (after its checkpoint), as a killed job would."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        if trainer.current_epoch + 1 == self.epoch:
            trainer.should_stop = True


class StopAtIteration(pl.Callback):
    def __init__(self, iteration: int) -> None:
        self.iteration = iteration

    def on_train_batch_end(self, trainer, *args) -> None:
        if trainer.global_step == self.iteration:
            trainer.should_stop = True


class RecordStart(pl.Callback):
    def on_train_start(self, trainer, pl_module) -> None:
        self.global_step = trainer.global_step


def test_resume_from_work_dir_equals_the_uninterrupted_run(tmp_path):
    full = params(regression_runner(tmp_path / "full").train())
    interrupted = regression_runner(tmp_path / "run", custom_hooks=[StopAfterEpoch(2)])
    interrupted.train()
    assert interrupted.trainer.global_step == 12
    assert (tmp_path / "run" / "last_checkpoint").read_text().endswith("epoch_2.ckpt")
    start = RecordStart()
    resumed = regression_runner(tmp_path / "run", resume=True, custom_hooks=[start])
    resumed.train()
    assert start.global_step == 12  # it did resume (a fresh run from the same seed would also end equal)
    assert resumed.trainer.current_epoch == 4 and resumed.trainer.global_step == 24
    for p, q in zip(params(resumed.model), full):
        assert torch.equal(p, q)


def test_load_from_loads_weights_only(tmp_path):
    trained = params(regression_runner(tmp_path / "a", max_epochs=1).train())
    runner = regression_runner(tmp_path / "b", max_epochs=1, load_from=tmp_path / "a" / "epoch_1.ckpt")
    runner.train()  # weights loaded, then one more epoch from the start of the schedule
    assert runner.trainer.global_step == 6
    assert not all(torch.equal(p, q) for p, q in zip(params(runner.model), trained))
    fresh = regression_runner(tmp_path / "c", max_epochs=1, load_from=tmp_path / "a" / "epoch_1.ckpt")
    fresh.load_checkpoint(tmp_path / "a" / "epoch_1.ckpt")
    for p, q in zip(params(fresh.model), trained):
        assert torch.equal(p, q)


class RecordValidation(pl.Callback):
    def __init__(self) -> None:
        self.at: list[tuple[int, int]] = []
        self.acc: list[float] = []

    def on_validation_end(self, trainer, pl_module) -> None:
        self.at.append((trainer.current_epoch + 1, trainer.global_step))
        self.acc.append(float(pl_module.val_metrics["acc"]))


def eval_kwargs() -> dict:
    return dict(
        val_dataloader=DataLoader(regression_data(8, seed=4), batch_size=4),
        val_cfg=dict(),
        val_evaluator=NegMSE(),
    )


@pytest.mark.parametrize(
    "train_cfg, expected",
    [
        (dict(by_epoch=True, max_epochs=5, val_interval=2), [(2, 12), (4, 24), (5, 30)]),
        (dict(by_epoch=True, max_epochs=5, val_begin=3), [(3, 18), (4, 24), (5, 30)]),
        (dict(type="IterBasedTrainLoop", max_iters=25, val_interval=10), [(2, 10), (4, 20), (5, 25)]),
    ],
    ids=["epoch-interval", "epoch-begin", "iter-interval"],
)
def test_validation_schedule_follows_mmengine_loops(tmp_path, train_cfg, expected):
    record = RecordValidation()
    runner = regression_runner(
        tmp_path, train_cfg=train_cfg, custom_hooks=[record], default_hooks=dict(checkpoint=None), **eval_kwargs()
    )
    runner.train()
    assert record.at == expected  # (epoch from 1, iteration) after each validation
    assert runner.trainer.global_step == expected[-1][1]


def test_checkpoint_hook_options(tmp_path):
    runner = regression_runner(
        tmp_path,
        max_epochs=5,
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=2, max_keep_ckpts=1, save_best="auto")),
        **eval_kwargs(),
    )
    runner.train()
    regular = sorted(p.name for p in tmp_path.glob("epoch_*.ckpt"))
    assert regular == ["epoch_5.ckpt"]  # epochs 2, 4 and (save_last) 5; only the newest is kept
    best = list(tmp_path.glob("best_*.ckpt"))
    assert len(best) == 1 and best[0].name.startswith("best_acc_epoch_")
    assert "optimizer_states" not in torch.load(best[0], weights_only=False)  # best checkpoints hold weights only


def test_iteration_checkpoints(tmp_path):
    runner = regression_runner(
        tmp_path,
        train_cfg=dict(by_epoch=False, max_iters=14),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=5, by_epoch=False)),
    )
    runner.train()
    assert sorted(p.name for p in tmp_path.glob("iter_*.ckpt")) == ["iter_10.ckpt", "iter_14.ckpt", "iter_5.ckpt"]


def test_val_and_test_return_the_evaluator_metrics(tmp_path):
    runner = regression_runner(
        tmp_path,
        test_dataloader=DataLoader(regression_data(8, seed=4), batch_size=4),
        test_cfg=dict(),
        test_evaluator=NegMSE(),
        **eval_kwargs(),
    )
    runner.train()
    val, test = runner.val(), runner.test()
    assert set(val) == set(test) == {"acc"}
    assert val["acc"] == pytest.approx(test["acc"])  # the same data and weights
    assert val["acc"] < 0


# ---------------------------------------------------------------------- from_cfg, parity with MMEngine's
@DATASETS.register_module(name="RunnerTestRegressionSet")
class RegressionSet(torch.utils.data.Dataset):
    def __init__(self, n: int = 24, seed: int = 3) -> None:
        self.items = regression_data(n, seed)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i):
        return self.items[i]


MODELS.register_module(name="RunnerTestRegression", module=Regression)
METRICS.register_module(name="RunnerTestNegMSE", module=NegMSE)


def config(work_dir: Path) -> dict:
    return dict(
        model=dict(type="RunnerTestRegression"),
        work_dir=str(work_dir),
        train_dataloader=dict(
            dataset=dict(type="RunnerTestRegressionSet"),
            sampler=dict(type="DefaultSampler", shuffle=True),
            collate_fn=dict(type="default_collate"),
            batch_size=5,
        ),
        train_cfg=dict(by_epoch=True, max_epochs=3),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9), accumulative_counts=2),
        param_scheduler=dict(type="MultiStepLR", milestones=[2]),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1), logger=dict(type="LoggerHook", interval=2)),
        randomness=dict(seed=5),
    )


@pytest.fixture
def mm_regression(mmengine):
    """The config's model and data set registered in mmengine's registries too (for its Runner.from_cfg)."""
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.registry import DATASETS as MM_DATASETS
    from mmengine.registry import MODELS as MM_MODELS

    class MMRegression(MMBaseModel):
        forward = Regression.forward

        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))

    MM_MODELS.register_module(name="RunnerTestRegression", module=MMRegression, force=True)
    MM_DATASETS.register_module(name="RunnerTestRegressionSet", module=RegressionSet, force=True)
    return mmengine


def test_from_cfg_with_dataloader_configs_and_resume_equal_mmengine(mm_regression, tmp_path, monkeypatch):
    mmengine = mm_regression
    from mmengine.runner import Runner as MMRunner

    ref = MMRunner.from_cfg(mmengine.config.Config(config(tmp_path / "mmengine")))
    ref.train()
    runner = Runner.from_cfg(dict(config(tmp_path / "ours"), trainer_cfg=quiet()["trainer_cfg"]))
    runner.train()
    assert runner.trainer.log_every_n_steps == 2
    ref_model = getattr(ref.model, "module", ref.model)
    for (name, p), q in zip(runner.model.state_dict().items(), ref_model.state_dict().values()):
        assert (p - q).abs().max().item() <= 1e-6, name

    # Resume from MMEngine's own epoch_1.pth (momentum, scheduler, accumulation count, sampler epoch) to the end,
    # against MMEngine resuming from it (which, on torch >= 2.6, needs unsafe loading: mmengine_spec section 8).
    # Epoch 1 ends mid-window (5 iterations, accumulative_counts=2): both lose that window's gradients.
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    ref_resumed = MMRunner.from_cfg(
        mmengine.config.Config(dict(config(tmp_path / "mm_resumed"), resume=True,
                                    load_from=str(tmp_path / "mmengine" / "epoch_1.pth")))
    )
    ref_resumed.train()
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    ref_model = getattr(ref_resumed.model, "module", ref_resumed.model)
    resumed = Runner.from_cfg(
        dict(config(tmp_path / "resumed"), resume=True, load_from=str(tmp_path / "mmengine" / "epoch_1.pth"),
             trainer_cfg=quiet()["trainer_cfg"])
    )
    resumed.train()
    assert resumed.trainer.global_step == runner.trainer.global_step == 15  # 3 epochs of 5 batches (24 samples)
    assert not list((tmp_path / "resumed").glob(".resume_from_mmengine*")), "the converted file is removed"
    for (name, p), q in zip(resumed.model.state_dict().items(), ref_model.state_dict().values()):
        assert (p - q).abs().max().item() <= 1e-6, name


# ------------------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(train_cfg=None), ValueError, "train_dataloader, train_cfg and optim_wrapper must be all given"),
        (dict(launcher="mpirun"), ValueError, r"launcher must be one of \['none', 'pytorch', 'slurm', 'mpi'\]"),
        (dict(param_scheduler=None, optim_wrapper=None, train_cfg=None, train_dataloader=None,
              val_cfg=dict(fp17=True), val_dataloader=[1], val_evaluator=NegMSE()), ValueError, "val_cfg has unknown keys"),
        (dict(randomness=dict(sed=1)), ValueError, "randomness has unknown keys"),
    ],
    ids=["incomplete-train-triple", "launcher", "val-cfg-typo", "randomness-typo"],
)
def test_constructor_errors(tmp_path, change, error, match):
    with pytest.raises(error, match=match):
        regression_runner(tmp_path, **change)


@pytest.mark.parametrize(
    "change, error, match",
    [
        (dict(train_cfg=dict(max_epochs=2)), ValueError, "needs 'by_epoch'"),
        (dict(train_cfg=dict(by_epoch=True, max_epoch=2)), ValueError, "needs 'max_epochs'"),
        (dict(train_cfg=dict(by_epoch=True, max_epochs=2, val_intervals=1)), ValueError, "unknown keys"),
        (dict(custom_hooks=[dict(type="NoSuchHook")]), KeyError, r"custom_hooks\[0\]: 'NoSuchHook' is not registered in the 'hook'"),
        (dict(default_hooks=dict(visual=dict(type="NoSuchHook"))), KeyError, r"default_hooks\['visual'\]: 'NoSuchHook'"),
        (dict(default_hooks=dict(checkpoint=dict(type="CheckpointHook", filename_tpl="e{}.pth"))),
         ValueError, r"CheckpointHook has no options \['filename_tpl'\]; MMEngine's are \[.*'filename_tmpl'"),
        (dict(default_hooks=dict(checkpoint=dict(type="CheckpointHook", save_best="mse"))),
         ValueError, "cannot infer the rule for save_best='mse'"),
        (dict(default_hooks=dict(checkpoint=dict(interval=2))), ValueError, r"default_hooks\['checkpoint'\] has no 'type'"),
    ],
    ids=["no-by_epoch", "max_epochs-typo", "unknown-loop-key", "unknown-custom-hook", "unknown-default-hook",
         "checkpoint-hook-typo", "save_best-rule", "hook-without-type"],
)
def test_loop_and_hook_config_errors(tmp_path, change, error, match):
    with pytest.raises(error, match=match):  # as MMEngine: when the Runner is built
        regression_runner(tmp_path, **change)


def test_launcher_pytorch_outside_torchrun_names_the_missing_variables(tmp_path, monkeypatch):
    for name in ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "RANK", "LOCAL_RANK"):
        monkeypatch.delenv(name, raising=False)
    runner = regression_runner(tmp_path, launcher="pytorch")
    with pytest.raises(RuntimeError, match="torchrun .* WORLD_SIZE, LOCAL_WORLD_SIZE, RANK, LOCAL_RANK is not set"):
        runner.trainer  # noqa: B018


# ---------------------------------------------------------------------- launcher='pytorch' under torchrun
@pytest.mark.parametrize("wrapper", ["MMSeparateDistributedDataParallel", "TwiceSeparateDDP"])
def test_gan_with_separate_wrapper_under_torchrun(tmp_path, wrapper):
    """The migration guide's GAN setup: cfg=dict(model_wrapper_cfg=dict(type='MMSeparateDistributedDataParallel'))
    and launcher='pytorch', 2 processes started by torchrun, equals one process on the concatenated batches; a
    registered subclass with its own train_step (two updates per batch) is the one that runs."""
    import os
    import socket
    import subprocess

    script = Path(__file__).with_name("torchrun_gan.py")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RANK", "WORLD_SIZE", "LOCAL_", "MASTER_"))}
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}",
         str(script), str(tmp_path), wrapper],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=False) for r in (0, 1)]
    updates_per_batch = 2 if wrapper == "TwiceSeparateDDP" else 1
    for seen in ranks:
        assert seen["strategy"] == "SeparateDDPStrategy" and seen["world_size"] == 2
        assert seen["wrapper"] == wrapper  # the wrapper's train_step ran
        assert seen["plain_after_fit"]
        assert seen["global_step"] == 2 * 48 // (2 * 4)  # each rank: half of the data, 4 per batch
        assert seen["generator_steps"] == updates_per_batch * seen["global_step"]
    for p, q in zip(ranks[0]["params"], ranks[1]["params"]):
        assert torch.equal(p, q)
    if wrapper != "MMSeparateDistributedDataParallel":
        return

    sys.path.insert(0, str(script.parent))
    import torchrun_gan

    # One process, batches of 8 = both ranks' batches (DefaultSampler splits round-robin), and both noise streams.
    single = torchrun_gan.runner(str(tmp_path / "single"), [100, 101], 8, "none", "MMSeparateDistributedDataParallel")
    single.train()
    assert single.trainer.global_step == ranks[0]["global_step"]
    for p, q in zip(single.model.parameters(), ranks[0]["params"]):
        assert (p.detach() - q).abs().max().item() <= 1e-6


@pytest.mark.parametrize(
    "checkpoint, match",
    [
        (dict(meta=dict(epoch=0), state_dict={}, optimizer={}), "resumes from a checkpoint after an iteration"),
        (dict(meta=dict(epoch=1, iter=6), state_dict={}), "no optimizer state"),
        ({"body.0.weight": torch.zeros(8, 4)}, "holds only weights"),
    ],
    ids=["mmengine-iteration-based-without-iter", "mmengine-weights-only", "bare-state-dict"],
)
def test_resume_refuses_checkpoints_without_epoch_end_training_state(tmp_path, checkpoint, match):
    path = tmp_path / "given.pth"
    torch.save(checkpoint, path)
    iteration_based = dict(train_cfg=dict(by_epoch=False, max_iters=20)) if "optimizer" in checkpoint else {}
    runner = regression_runner(tmp_path / "run", resume=True, load_from=path, **iteration_based)
    before = params(runner.model)
    with pytest.raises(ValueError, match=match):
        runner.train()
    assert all(torch.equal(p, q) for p, q in zip(params(runner.model), before))  # nothing was loaded
    assert not list((tmp_path / "run").glob("*.ckpt")) and not list((tmp_path / "run").glob(".resume*"))


def test_auto_scale_lr_scales_by_total_batch_over_base_batch(tmp_path):
    runner = regression_runner(tmp_path, max_epochs=1, param_scheduler=None,
                               auto_scale_lr=dict(enable=True, base_batch_size=16))
    runner.train()
    assert runner.module.optim_wrapper.get_lr()["lr"] == [pytest.approx(0.05 * 4 / 16)]  # 1 process x batch 4
    with pytest.raises(ValueError, match="auto_scale_lr needs base_batch_size"):
        regression_runner(tmp_path, auto_scale_lr=dict(enable=True))
    adam = regression_runner(tmp_path / "adam", max_epochs=1, param_scheduler=None, optim_wrapper=dict(
        optimizer=dict(type="Adam")), auto_scale_lr=dict(enable=True, base_batch_size=2))
    adam.train()
    assert adam.module.optim_wrapper.get_lr()["lr"] == [pytest.approx(1e-3 * 4 / 2)]  # Adam's default lr, scaled


def test_slurm_launcher_maps_srun_variables_to_devices_and_nodes(tmp_path, monkeypatch):
    from lightning.pytorch.plugins.environments import SLURMEnvironment

    from mm2lightning.lightning.runner_args import launcher_trainer_args

    monkeypatch.setenv("SLURM_NTASKS", "8")
    monkeypatch.setenv("SLURM_NNODES", "2")
    monkeypatch.setenv("SLURM_NTASKS_PER_NODE", "4(x2)")
    monkeypatch.setenv("SLURM_PROCID", "5")
    world = launcher_trainer_args("slurm")
    assert (world["devices"], world["num_nodes"]) == (4, 2)
    assert isinstance(world["plugins"][0], SLURMEnvironment)
    monkeypatch.delenv("SLURM_NNODES")
    with pytest.raises(RuntimeError, match="launcher='slurm' expects to run under srun, but SLURM_NNODES is not set"):
        launcher_trainer_args("slurm")


def test_max_keep_ckpts_and_best_go_on_after_resume(tmp_path):
    hooks = dict(checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=2, save_best="acc"))
    regression_runner(tmp_path, max_epochs=4, default_hooks=hooks, custom_hooks=[StopAfterEpoch(3)],
                      **eval_kwargs()).train()
    assert sorted(p.name for p in tmp_path.glob("epoch_*.ckpt")) == ["epoch_2.ckpt", "epoch_3.ckpt"]
    best_before = {p.name for p in tmp_path.glob("best_*.ckpt")}
    assert len(best_before) == 1
    resumed = regression_runner(tmp_path, max_epochs=4, default_hooks=hooks, resume=True, **eval_kwargs())
    resumed.train()
    # epoch_2 is deleted by the resumed run, which knows what the interrupted one kept
    assert sorted(p.name for p in tmp_path.glob("epoch_*.ckpt")) == ["epoch_3.ckpt", "epoch_4.ckpt"]
    best_after = {p.name for p in tmp_path.glob("best_*.ckpt")}
    assert len(best_after) == 1  # a better epoch 4 replaces the old best; a worse one keeps it
    (callback,) = [c for c in resumed.trainer.callbacks if type(c).__name__ == "MMCheckpoint"]
    assert callback.best_checkpoints["acc"].name in best_after


class CustomWholeModelDDP(__import__("mm2lightning.model", fromlist=["x"]).MMDistributedDataParallel):
    pass


class CustomSeparateDDP(__import__("mm2lightning.model", fromlist=["x"]).MMSeparateDistributedDataParallel):
    pass


def test_model_wrapper_cfg_chooses_the_strategy():
    from lightning.pytorch.strategies import DDPStrategy

    from mm2lightning import MMDDPStrategy, SeparateDDPStrategy
    from mm2lightning.lightning.runner_args import runner_strategy
    from mm2lightning.registry import MODEL_WRAPPERS, RegistryError

    default = runner_strategy(dict(find_unused_parameters=True))  # MMEngine's default path
    assert type(default) is DDPStrategy
    assert default._ddp_kwargs == dict(find_unused_parameters=True, broadcast_buffers=False)
    whole = runner_strategy(dict(model_wrapper_cfg=dict(type="MMDistributedDataParallel", find_unused_parameters=True)))
    assert type(whole) is DDPStrategy and whole._ddp_kwargs == dict(find_unused_parameters=True)
    custom = runner_strategy(dict(model_wrapper_cfg=dict(type=CustomWholeModelDDP)))
    assert type(custom) is MMDDPStrategy and custom._wrapper_cls is CustomWholeModelDDP
    no_type = runner_strategy(dict(model_wrapper_cfg=dict(find_unused_parameters=True)))  # MMEngine's default type
    assert type(no_type) is DDPStrategy and no_type._ddp_kwargs == dict(find_unused_parameters=True)
    separate = runner_strategy(dict(model_wrapper_cfg=dict(type="MMSeparateDistributedDataParallel")))
    assert type(separate) is SeparateDDPStrategy
    MODEL_WRAPPERS.register_module(name="RunnerTestSeparateDDP", module=CustomSeparateDDP, force=True)
    by_name = runner_strategy(dict(model_wrapper_cfg=dict(type="RunnerTestSeparateDDP", broadcast_buffers=False)))
    assert type(by_name) is SeparateDDPStrategy and by_name._wrapper_cls is CustomSeparateDDP
    assert by_name._ddp_kwargs["broadcast_buffers"] is False
    with pytest.raises(RegistryError, match="NoSuchWrapper"):
        runner_strategy(dict(model_wrapper_cfg=dict(type="NoSuchWrapper")))
    with pytest.raises(ValueError, match="not an MMDistributedDataParallel or MMSeparateDistributedDataParallel"):
        runner_strategy(dict(model_wrapper_cfg=dict(type=nn.Linear)))


def test_randomness_seeds_before_building_and_sets_deterministic(tmp_path):
    first = regression_runner(tmp_path, model=dict(type="RunnerTestRegression"), randomness=dict(seed=3))
    second = regression_runner(tmp_path, model=dict(type="RunnerTestRegression"), randomness=dict(seed=3))
    other = regression_runner(tmp_path, model=dict(type="RunnerTestRegression"), randomness=dict(seed=4))
    assert all(torch.equal(p, q) for p, q in zip(params(first.model), params(second.model)))
    assert not all(torch.equal(p, q) for p, q in zip(params(first.model), params(other.model)))
    assert first.seed == 3
    runner = regression_runner(tmp_path, randomness=dict(seed=3, deterministic=True))
    assert not torch.are_deterministic_algorithms_enabled()
    try:
        runner.trainer  # noqa: B018
        assert torch.are_deterministic_algorithms_enabled()
    finally:
        torch.use_deterministic_algorithms(False)


def test_custom_imports(tmp_path, monkeypatch):
    from mm2lightning.config import import_custom_modules

    (tmp_path / "user_models_for_runner_test.py").write_text("LOADED = True\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import_custom_modules(dict(imports=["user_models_for_runner_test"]))
    assert sys.modules["user_models_for_runner_test"].LOADED
    with pytest.raises(ImportError, match="custom_imports: cannot import 'no_such_user_module'"):
        import_custom_modules(dict(imports=["no_such_user_module"]))
    with pytest.warns(UserWarning, match="'no_such_user_module' failed to import and is skipped"):
        import_custom_modules(dict(imports="no_such_user_module", allow_failed_imports=True))


def test_iteration_checkpoints_in_an_epoch_based_run_save_the_last_iteration(tmp_path):
    runner = regression_runner(
        tmp_path, max_epochs=2, default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=5, by_epoch=False))
    )
    runner.train()  # 2 epochs x 6 iterations: iterations 5, 10 and the last, 12 (as MMEngine's is_last_train_iter)
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == ["iter_10.ckpt", "iter_12.ckpt", "iter_5.ckpt"]
    assert type(runner.cfg).__name__ == "Config" and runner.cfg.to_dict() == {}  # a Config, as MMEngine's runner.cfg


def test_extra_trainer_arguments_callbacks_and_loggers(tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    record = RecordValidation()
    logger = CSVLogger(tmp_path / "my_logs", name="exp")
    runner = regression_runner(
        tmp_path / "work", max_epochs=2, callbacks=[record], loggers=[logger],
        trainer_cfg=dict(enable_progress_bar=False, limit_train_batches=3),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", save_best="acc", rule="less"),
                           logger=dict(type="LoggerHook", interval=1)),
        **eval_kwargs(),
    )
    runner.train()
    assert runner.trainer.global_step == 6  # limit_train_batches from trainer_cfg wins
    assert record.at == [(1, 3), (2, 6)]
    assert runner.trainer.loggers == [logger] and (tmp_path / "my_logs" / "exp").is_dir()
    assert not list((tmp_path / "work").glob("*/metrics.csv"))  # no default CSV logger when loggers= is given
    (callback,) = [c for c in runner.trainer.callbacks if type(c).__name__ == "MMCheckpoint"]
    assert len(set(record.acc)) == 2
    best = min(record.acc)  # rule='less' keeps the lowest 'acc' (the inferred rule would keep the highest)
    assert callback.best_checkpoints["acc"].name == f"best_acc_epoch_{record.acc.index(best) + 1}.ckpt"


def test_resume_restores_a_random_seed_so_shuffling_goes_on_as_uninterrupted(tmp_path):
    """randomness seed=None: a random seed, saved in the checkpoint's meta and restored on resume, as MMEngine."""
    cfg = dict(config(tmp_path / "full"), randomness=dict(seed=None), trainer_cfg=quiet()["trainer_cfg"])
    cfg["train_cfg"] = dict(by_epoch=True, max_epochs=4)
    cfg["optim_wrapper"] = dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9))  # no mid-window state
    full = Runner.from_cfg(cfg)
    full.train()
    torch.manual_seed(0)
    interrupted = Runner.from_cfg(dict(cfg, work_dir=str(tmp_path / "run"), custom_hooks=[StopAfterEpoch(2)]))
    interrupted.train()
    assert torch.load(tmp_path / "run" / "epoch_2.ckpt", weights_only=True)["meta"]["seed"] == interrupted.seed
    interrupted_model = Runner.from_cfg(dict(cfg, work_dir=str(tmp_path / "run"), resume=True))
    assert interrupted_model.seed != interrupted.seed  # a fresh random seed, until resume restores the saved one
    interrupted_model.train()
    assert interrupted_model.seed == interrupted.seed
    # the same model init (config built after seeding) and the same shuffling: equal only if the seeds agree
    cfg_same_seed = dict(cfg, work_dir=str(tmp_path / "ref"), randomness=dict(seed=interrupted.seed))
    reference = Runner.from_cfg(cfg_same_seed)
    reference.train()
    for p, q in zip(params(interrupted_model.model), params(reference.model)):
        assert torch.equal(p, q)


@pytest.mark.parametrize("stop_at", [8, 10], ids=["mid-epoch", "epoch-end"])
def test_iteration_based_resume_sees_the_batches_of_the_uninterrupted_run(tmp_path, stop_at):
    """MMEngine's IterBasedTrainLoop resumes at the interrupted batch; so does the Runner (shuffled data)."""
    cfg = dict(config(tmp_path / "full"), trainer_cfg=quiet()["trainer_cfg"])
    cfg.update(
        train_cfg=dict(type="IterBasedTrainLoop", max_iters=17),  # 5 batches of the 24 samples per epoch
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9)),
        param_scheduler=dict(type="MultiStepLR", milestones=[9], by_epoch=False),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=2, by_epoch=False)),
    )
    full = Runner.from_cfg(cfg)
    full.train()
    Runner.from_cfg(dict(cfg, work_dir=str(tmp_path / "run"), custom_hooks=[StopAtIteration(stop_at)])).train()
    resumed = Runner.from_cfg(dict(cfg, work_dir=str(tmp_path / "run"), resume=True, custom_hooks=[RecordStart()]))
    resumed.train()
    (start,) = [c for c in resumed.trainer.callbacks if isinstance(c, RecordStart)]  # from_cfg copies the config
    assert start.global_step == stop_at and resumed.trainer.global_step == 17
    for p, q in zip(params(resumed.model), params(full.model)):
        assert torch.equal(p, q)


# ------------------------------------------------------------------------------- CheckpointHook details
SCRIPTED = {"values": [], "calls": 0}


class ScriptedAcc(BaseMetric):
    """Returns the next of SCRIPTED['values'] at each evaluation, across runners (an interrupted run and its resume)."""

    def process(self, data_batch, data_samples) -> None:
        self.results.append(0)

    def compute_metrics(self, results) -> dict:
        value = SCRIPTED["values"][SCRIPTED["calls"]]
        SCRIPTED["calls"] += 1
        return dict(acc=value)


def scripted(values: list[float]) -> dict:
    SCRIPTED.update(values=values, calls=0)
    return dict(val_dataloader=DataLoader(regression_data(4, seed=4), batch_size=4), val_cfg=dict(),
                val_evaluator=ScriptedAcc())


@pytest.mark.parametrize(
    "hook, expected",
    [
        (dict(interval=2), ["epoch_2", "epoch_4", "epoch_5"]),
        (dict(interval=2, save_last=False), ["epoch_2", "epoch_4"]),
        (dict(interval=2, save_begin=1, save_last=False), ["epoch_1", "epoch_3", "epoch_5"]),
        (dict(interval=-1), ["epoch_5"]),
    ],
    ids=["interval", "no-save-last", "save-begin", "last-only"],
)
def test_checkpoint_hook_interval_save_begin_and_save_last(tmp_path, hook, expected):
    regression_runner(tmp_path, max_epochs=5, default_hooks=dict(checkpoint=dict(type="CheckpointHook", **hook))).train()
    assert sorted(p.stem for p in tmp_path.glob("*.ckpt")) == expected


def test_save_best_auto_keeps_its_best_across_resume(tmp_path):
    hooks = dict(checkpoint=dict(type="CheckpointHook", interval=1, save_best="auto"))
    regression_runner(tmp_path, default_hooks=hooks, custom_hooks=[StopAfterEpoch(3)], **scripted([1, 3, 2, 2.5])).train()
    assert [p.name for p in tmp_path.glob("best_*.ckpt")] == ["best_acc_epoch_2.ckpt"]  # 3 at epoch 2 beat 1
    SCRIPTED["calls"] = 3
    regression_runner(tmp_path, default_hooks=hooks, resume=True, **eval_kwargs_scripted()).train()
    assert [p.name for p in tmp_path.glob("best_*.ckpt")] == ["best_acc_epoch_2.ckpt"]  # 2.5 at epoch 4 is worse


def test_save_best_replaces_the_previous_best(tmp_path):
    hooks = dict(checkpoint=dict(type="CheckpointHook", interval=1, max_keep_ckpts=1, save_best="acc"))
    regression_runner(tmp_path, default_hooks=hooks, **scripted([1, 3, 2, 5])).train()
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == ["best_acc_epoch_4.ckpt", "epoch_4.ckpt"]


def eval_kwargs_scripted() -> dict:
    return dict(val_dataloader=DataLoader(regression_data(4, seed=4), batch_size=4), val_cfg=dict(),
                val_evaluator=ScriptedAcc())


def test_iteration_mode_best_is_saved_in_the_regular_checkpoint_of_its_step(tmp_path):
    """The iteration's regular checkpoint is written before its validation; it is written again after a new best."""
    kwargs = dict(
        train_cfg=dict(by_epoch=False, max_iters=12, val_interval=4),
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=4, by_epoch=False, save_best="acc")),
    )
    regression_runner(tmp_path, custom_hooks=[StopAtIteration(8)], **kwargs, **scripted([1, 3, 2])).train()
    assert [p.name for p in tmp_path.glob("best_*.ckpt")] == ["best_acc_iter_8.ckpt"]
    SCRIPTED["calls"] = 2
    regression_runner(tmp_path, resume=True, **kwargs, **eval_kwargs_scripted()).train()
    assert [p.name for p in tmp_path.glob("best_*.ckpt")] == ["best_acc_iter_8.ckpt"]  # 2 at iteration 12 is worse


def test_iteration_based_loop_with_epoch_checkpoints_saves_once_at_the_end(tmp_path):
    """Under IterBasedTrainLoop MMEngine's whole run is one epoch: CheckpointHook(by_epoch=True) writes epoch_1."""
    runner = regression_runner(tmp_path, train_cfg=dict(type="IterBasedTrainLoop", max_iters=14),
                               default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1)))
    runner.train()  # 6 batches per pass over the data: 3 passes
    assert sorted(p.name for p in tmp_path.glob("*.ckpt")) == ["epoch_1.ckpt"]
    assert torch.load(tmp_path / "epoch_1.ckpt", weights_only=True)["global_step"] == 14


def test_resume_when_the_last_checkpoint_is_gone_or_moved(tmp_path):
    regression_runner(tmp_path / "a", max_epochs=1).train()
    (tmp_path / "a").rename(tmp_path / "b")  # last_checkpoint names a path under a/
    start = RecordStart()
    moved = regression_runner(tmp_path / "b", max_epochs=2, resume=True, custom_hooks=[start])
    moved.train()
    assert start.global_step == 6  # found epoch_1.ckpt in the moved work_dir
    for name in ("epoch_1.ckpt", "epoch_2.ckpt"):
        (tmp_path / "b" / name).unlink()
    with pytest.raises(FileNotFoundError, match="epoch_2.ckpt"):  # not a silent fresh start
        regression_runner(tmp_path / "b", max_epochs=3, resume=True).train()


def test_weights_only_checkpoints_are_refused_for_resume_and_load_for_test(tmp_path):
    from mm2lightning.runner import CheckpointError

    hooks = dict(checkpoint=dict(type="CheckpointHook", interval=1, save_optimizer=False))
    trained = regression_runner(tmp_path, max_epochs=1, default_hooks=hooks, **eval_kwargs())
    trained.train()
    with pytest.raises(CheckpointError, match="holds only weights .* save_optimizer=False"):
        regression_runner(tmp_path, max_epochs=2, resume=True, **eval_kwargs()).train()
    evaluator = regression_runner(tmp_path, max_epochs=2, resume=True, **eval_kwargs())
    assert evaluator.val() == trained.val()  # val() loads the weights of the checkpoint it would resume from


def test_seed_restored_on_resume_keeps_the_rank_offset(tmp_path, monkeypatch):
    monkeypatch.setenv("RANK", "1")
    runner = regression_runner(tmp_path, launcher="pytorch", randomness=dict(seed=5, diff_rank_seed=True))
    assert runner.seed == 6
    with warnings_recorded() as recorded:
        runner._restore_seed(dict(meta=dict(seed=5)), tmp_path / "ckpt")
    assert runner.seed == 6 and not recorded  # the checkpoint's seed is the one configured: nothing changes
    with pytest.warns(UserWarning, match="saved with seed 7, not randomness seed 5"):
        runner._restore_seed(dict(meta=dict(seed=7)), tmp_path / "ckpt")
    assert runner.seed == 8 and runner._meta["seed"] == 7


def warnings_recorded():
    import warnings

    return warnings.catch_warnings(record=True)


def test_experiment_name_and_log_directory_follow_mmengine(tmp_path):
    runner = regression_runner(tmp_path, max_epochs=1, experiment_name="exp",
                               default_hooks=dict(logger=dict(type="LoggerHook", interval=1)))
    runner.train()
    assert runner.experiment_name == f"exp_{runner.timestamp}"
    assert (tmp_path / runner.timestamp / "metrics.csv").is_file()
    assert torch.load(tmp_path / "epoch_1.ckpt", weights_only=True)["meta"] == dict(
        seed=1, experiment_name=runner.experiment_name
    )


def test_the_early_iterator_draw_is_a_callback_of_iteration_based_runs_only(tmp_path):
    """MMEngine's IterBasedTrainLoop draws its iterator's seed before init_weights; an epoch-based run has nothing
    to draw, so its Trainer carries no callback for it (no hook calls per iteration)."""
    from mm2lightning.lightning.iterator_seed import IteratorSeed

    def has_it(runner: Runner) -> bool:
        return any(isinstance(c, IteratorSeed) for c in runner.trainer.callbacks)

    assert not has_it(regression_runner(tmp_path / "epochs"))
    assert has_it(regression_runner(tmp_path / "iters", train_cfg=dict(by_epoch=False, max_iters=4),
                                    param_scheduler=None))


def _resumed_from_mmengines_iter_7(mmengine, make_cfg, tmp_path: Path, monkeypatch) -> tuple:
    """MMEngine trains ``make_cfg``'s run saving ``iter_7.pth``; then MMEngine and mm2lightning resume from it."""
    from mmengine.runner import Runner as MMRunner

    MMRunner.from_cfg(mmengine.config.Config(make_cfg(tmp_path / "mmengine"))).train()
    saved = str(tmp_path / "mmengine" / "iter_7.pth")
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # MMEngine loads its own file with torch.load
    ref = MMRunner.from_cfg(mmengine.config.Config(make_cfg(tmp_path / "mm_resumed", resume=True, load_from=saved)))
    ref.train()
    monkeypatch.delenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD")
    ours = Runner.from_cfg(dict(make_cfg(tmp_path / "resumed", resume=True, load_from=saved), **quiet()))
    ours.train()
    return ours, ref


def _assert_same_weights(ours: Runner, ref) -> None:
    ref_model = getattr(ref.model, "module", ref.model)
    for (name, p), q in zip(ours.model.state_dict().items(), ref_model.state_dict().values()):
        assert (p - q).abs().max().item() <= 1e-6, name


def test_resume_from_an_mmengine_checkpoint_saved_within_an_epoch_ends_where_mmengines_does(mm_regression, tmp_path,
                                                                                            monkeypatch):
    """An iteration checkpoint of an epoch-based run (iter_7: epoch 2 of 5 batches, 2 in): MMEngine's loop runs
    that epoch again from its first batch, counting on from iteration 7, and so does the resumed run here."""
    mmengine = mm_regression

    def within_epochs(work_dir: Path, **extra) -> dict:
        cfg = dict(config(work_dir), **extra)
        cfg["optim_wrapper"] = dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9))
        cfg["default_hooks"] = dict(checkpoint=dict(type="CheckpointHook", interval=7, by_epoch=False))
        return cfg

    ours, ref = _resumed_from_mmengines_iter_7(mmengine, within_epochs, tmp_path, monkeypatch)
    assert ours.iter == ref.iter == 17  # 7, then epoch 2 again and epoch 3: 5 + 5
    _assert_same_weights(ours, ref)


@pytest.mark.parametrize("sampler", ["InfiniteSampler", "DefaultSampler"])
def test_resume_from_an_mmengine_iteration_based_checkpoint_ends_where_mmengines_does(mm_regression, tmp_path,
                                                                                    monkeypatch, sampler):
    """IterBasedTrainLoop's iter_7 (5 batches a pass): MMEngine's resumed loop skips the 7 batches seen (across
    passes with a finite sampler), and so does the resumed run here."""
    mmengine = mm_regression

    def iteration_based(work_dir: Path, **extra) -> dict:
        cfg = dict(config(work_dir), **extra)
        cfg["train_dataloader"]["sampler"] = dict(type=sampler, shuffle=True)
        cfg["train_cfg"] = dict(by_epoch=False, max_iters=13)
        cfg["optim_wrapper"] = dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9))
        cfg["param_scheduler"] = dict(type="MultiStepLR", milestones=[9], by_epoch=False)
        cfg["default_hooks"] = dict(checkpoint=dict(type="CheckpointHook", interval=7, by_epoch=False))
        return cfg

    ours, ref = _resumed_from_mmengines_iter_7(mmengine, iteration_based, tmp_path, monkeypatch)
    assert ours.iter == ref.iter == 13
    _assert_same_weights(ours, ref)


def test_load_checkpoint_marks_the_weights_loaded_so_load_from_does_not_overwrite_them(tmp_path):
    """As MMEngine's: after runner.load_checkpoint(B), train() does not load the config's load_from (A)."""
    regression_runner(tmp_path / "a", max_epochs=1).train()
    regression_runner(tmp_path / "b", max_epochs=2).train()
    runner = regression_runner(tmp_path / "c", max_epochs=1, load_from=tmp_path / "a" / "epoch_1.ckpt")
    runner.load_checkpoint(tmp_path / "b" / "epoch_2.ckpt")
    runner.train()
    reference = regression_runner(tmp_path / "d", max_epochs=1, load_from=tmp_path / "b" / "epoch_2.ckpt")
    reference.train()
    from_a = regression_runner(tmp_path / "e", max_epochs=1, load_from=tmp_path / "a" / "epoch_1.ckpt")
    from_a.train()
    assert all(torch.equal(p, q) for p, q in zip(params(runner.model), params(reference.model)))
    assert not all(torch.equal(p, q) for p, q in zip(params(runner.model), params(from_a.model)))
