"""Hook, priorities, registration order, misuse errors, checkpoint points and MMLightningModule(hooks=...)."""

from __future__ import annotations

from types import SimpleNamespace

import lightning.pytorch as pl
from lightning.pytorch.callbacks import ModelCheckpoint
import pytest
import torch
from torch.utils.data import DataLoader

from mm2lightning.hooks import HOOKS, Hook
from mm2lightning.hooks.hook_list import HookList
from mm2lightning.lightning import HookDriver, MMLightningModule
from mm2lightning.model import BaseModel
from mm2lightning.registry import RegistryError
from mm2lightning.runner import Priority, Runner, get_priority, load_checkpoint_file
from mm2lightning.runner.priority import PriorityError

from test_hook_parity import make_model_cls  # noqa: E402 - tests/hooks is on sys.path


# ------------------------------------------------------------------- priorities and order, against mmengine
@pytest.mark.parametrize("value", [0, 37, 100, "HIGHEST", "very_high", "Normal", "LOWEST", Priority.LOW])
def test_get_priority_equals_mmengine(mmengine, value):
    from mmengine.runner import Priority as MMPriority
    from mmengine.runner import get_priority as mm_get_priority

    mm_value = MMPriority[value.name] if isinstance(value, Priority) else value
    assert get_priority(value) == mm_get_priority(mm_value)
    assert {p.name: p.value for p in Priority} == {p.name: p.value for p in MMPriority}


@pytest.mark.parametrize("value, mm_error", [(-1, ValueError), (101, ValueError), ("URGENT", KeyError)])
def test_bad_priorities_fail_as_mmengine_and_name_the_value(mmengine, value, mm_error):
    from mmengine.runner import get_priority as mm_get_priority

    with pytest.raises(mm_error):
        mm_get_priority(value)
    with pytest.raises(mm_error, match=str(value)):  # PriorityError is both a ValueError and a KeyError
        get_priority(value)
    with pytest.raises(TypeError):
        get_priority(1.5)


def test_registration_order_equals_mmengine_register_hook(mmengine):
    from mmengine.runner import Runner as MMRunner

    priorities = ["NORMAL", "LOW", 10, "HIGH", "NORMAL", 70, 0, "LOWEST", "NORMAL", Priority.VERY_LOW, 45]
    hooks = []
    for index, priority in enumerate(priorities):
        hook = mmengine.hooks.Hook()
        hook.priority = priority.name if isinstance(priority, Priority) else priority
        hook.index = index
        hooks.append(hook)
    reference = SimpleNamespace(_hooks=[])
    for hook in hooks:
        MMRunner.register_hook(reference, hook)
    ours = HookList(hooks)
    assert [h.index for h in ours] == [h.index for h in reference._hooks]


@HOOKS.register_module(force=True)
class CountingHook(Hook):
    def __init__(self, start: int = 0) -> None:
        self.count = start

    def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
        self.count += 1


def test_configs_are_built_through_hooks_with_their_priority():
    hooks = HookList([dict(type="CountingHook", start=5, priority="LOWEST"), Hook(), dict(type=CountingHook)])
    built = list(hooks)
    assert isinstance(built[0], Hook) and type(built[0]) is Hook  # NORMAL, registered second
    assert built[1].count == 0 and built[2].count == 5 and built[2].priority == "LOWEST"
    assert hooks.at("after_train_iter") == [built[1], built[2]]
    assert hooks.at("before_train") == []


# ---------------------------------------------------------------------------------------- misuse errors
class TypoHook(Hook):
    def after_train_iteration(self, runner, batch_idx, data_batch=None, outputs=None) -> None:  # never called
        pass


def test_a_method_that_is_no_hook_point_is_refused_naming_it():
    with pytest.raises(AttributeError, match=r"TypoHook.after_train_iteration is not a hook point.*'after_train_iter'"):
        HookList([TypoHook()])


def test_unknown_priority_and_unknown_type_are_refused_naming_them():
    with pytest.raises(PriorityError, match="'SOON'"):
        HookList([dict(type="CountingHook", priority="SOON")])
    with pytest.raises(RegistryError, match="'CountingHok'.*hook.*'CountingHook'"):
        HookList([dict(type="CountingHok")])
    with pytest.raises(TypeError, match="Hook instance"):
        HookList([CountingHook])  # the class, not an instance
    with pytest.raises(TypeError, match="Hook instance"):
        HookList([object()])


# --------------------------------------------------------------------------------- a model to train
Regression = make_model_cls(BaseModel)


def loader() -> DataLoader:
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(12, 4, generator=gen)
    return DataLoader(list(zip(x, x.sum(1, keepdim=True).sin())), batch_size=4)


def runner(work_dir, **kwargs) -> Runner:
    torch.manual_seed(0)
    args = dict(
        model=Regression(), work_dir=work_dir, train_dataloader=loader(), train_cfg=dict(by_epoch=True, max_epochs=2),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
        trainer_cfg=dict(enable_progress_bar=False, enable_model_summary=False, logger=False),
    )
    args.update(kwargs)
    return Runner(**args)


class UsesMissingAttribute(Hook):
    def before_train(self, runner) -> None:
        runner.train_looop  # noqa: B018 - a typo


def test_an_attribute_the_runner_view_lacks_names_the_hook_and_the_attribute(tmp_path):
    with pytest.raises(AttributeError, match=r"UsesMissingAttribute used runner.train_looop.*runner.train_loop"):
        runner(tmp_path, custom_hooks=[UsesMissingAttribute()]).train()


def test_the_runner_view_gives_what_mmengine_runner_gives(tmp_path):
    seen = {}

    class Look(Hook):
        def before_train(self, runner) -> None:
            seen.update(
                model=runner.model, optim_wrapper=runner.optim_wrapper, work_dir=runner.work_dir,
                experiment_name=runner.experiment_name, timestamp=runner.timestamp, seed=runner.seed,
                rank=runner.rank, world_size=runner.world_size, distributed=runner.distributed, cfg=runner.cfg,
                train_dataloader=runner.train_dataloader, visualizer=runner.visualizer,
                schedulers=runner.param_schedulers, hasattr_missing=hasattr(runner, "no_such_thing"),
            )

    run = runner(tmp_path, custom_hooks=[Look()], randomness=dict(seed=7))
    run.train()
    assert seen["model"] is run.model and seen["optim_wrapper"] is run.module.optim_wrapper
    assert seen["work_dir"] == str(tmp_path.absolute()) and seen["experiment_name"] == run.experiment_name
    assert seen["timestamp"] == run.timestamp and seen["seed"] == 7 and seen["cfg"] is run.cfg
    assert (seen["rank"], seen["world_size"], seen["distributed"]) == (0, 1, False)
    assert len(seen["train_dataloader"]) == 3 and seen["visualizer"] is None and seen["schedulers"] == []
    assert seen["hasattr_missing"] is False


# --------------------------------------------------------------------------------- checkpoint points
class EditCheckpoints(Hook):
    """Adds an entry and a meta key when saving; zeroes a bias when a checkpoint is loaded."""

    def __init__(self) -> None:
        self.loaded_keys = None
        self.bias_at_train_start = None

    def before_save_checkpoint(self, runner, checkpoint) -> None:
        checkpoint["extra"] = dict(iter=runner.iter)
        checkpoint["meta"]["hook_was_here"] = True
        checkpoint["state_dict"]["body.2.bias"] = checkpoint["state_dict"]["body.2.bias"] + 100

    def after_load_checkpoint(self, runner, checkpoint) -> None:
        self.loaded_keys = sorted(checkpoint["state_dict"])
        self.resume = runner._resume
        checkpoint["state_dict"]["body.2.bias"] = torch.zeros(1)

    def before_train(self, runner) -> None:
        self.bias_at_train_start = runner.model.body[2].bias.detach().clone()


def test_checkpoint_points_see_mmengine_layout_and_their_changes_are_saved_and_resumed(tmp_path):
    first = runner(tmp_path, custom_hooks=[EditCheckpoints()])
    first.train()
    saved = load_checkpoint_file(tmp_path / "epoch_2.ckpt")
    assert saved["extra"] == dict(iter=6) and saved["meta"]["hook_was_here"] is True
    assert saved["meta"]["seed"] == first.seed  # the Runner's meta is kept
    bias = first.model.body[2].bias.detach()
    assert torch.allclose(saved["state_dict"]["model.body.2.bias"], bias + 100)
    assert "model.body.0.weight" in saved["state_dict"]

    hook = EditCheckpoints()
    resumed = runner(tmp_path, custom_hooks=[hook], resume=True, load_from=tmp_path / "epoch_1.ckpt")
    resumed.train()
    assert hook.resume is True and hook.loaded_keys == sorted(first.model.state_dict())
    assert torch.equal(hook.bias_at_train_start, torch.zeros(1))  # the hook's change is what the run resumed

    hook = EditCheckpoints()
    loading = runner(tmp_path / "b", custom_hooks=[hook], load_from=tmp_path / "epoch_1.ckpt")
    loading.train()
    assert hook.resume is False and torch.equal(hook.bias_at_train_start, torch.zeros(1))


def test_default_hooks_beyond_the_built_ins_and_custom_hook_configs_run(tmp_path):
    run = runner(tmp_path, default_hooks=dict(counter=dict(type="CountingHook", start=100)),
                 custom_hooks=[dict(type="CountingHook", priority="HIGHEST")])
    run.train()
    first, second = run._hook_driver.hooks
    assert (first.count, second.count) == (6, 106)  # 2 epochs x 3 iterations each, HIGHEST first


# ----------------------------------------------------------------------- MMLightningModule(hooks=...)
def test_module_hooks_run_under_a_plain_trainer_and_no_callback_without_hooks(tmp_path):
    counter = CountingHook()
    stages = []

    class Stages(Hook):
        def _before_epoch(self, runner, mode="train") -> None:
            stages.append(("before_epoch", mode, runner.epoch))

        def after_train(self, runner) -> None:
            stages.append(("after_train", runner.epoch, runner.iter, runner.work_dir))

    torch.manual_seed(0)
    module = MMLightningModule(Regression(), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)),
                               hooks=[counter, Stages()])
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path)
    trainer.fit(module, loader())
    assert counter.count == 6
    assert stages == [("before_epoch", "train", 0), ("before_epoch", "train", 1), ("after_train", 2, 6, str(tmp_path))]
    assert sum(isinstance(c, HookDriver) for c in trainer.callbacks) == 1

    plain = MMLightningModule(Regression(), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)))
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(plain, loader())
    assert plain.hook_driver is None and not any(isinstance(c, HookDriver) for c in trainer.callbacks)


def test_a_hook_driver_given_to_the_trainer_drives_every_point(tmp_path):
    seen = []

    class Points(Hook):
        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            seen.append(("after_train_iter", runner.epoch, runner.iter))

        def after_train_epoch(self, runner) -> None:
            seen.append(("after_train_epoch", runner.epoch, runner.iter))

        def before_save_checkpoint(self, runner, checkpoint) -> None:
            seen.append(("before_save_checkpoint", sorted(checkpoint["state_dict"])[:1]))

    torch.manual_seed(0)
    module = MMLightningModule(Regression(), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)))
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[HookDriver([Points()]), ModelCheckpoint(dirpath=tmp_path)])
    trainer.fit(module, loader())
    assert seen == [("after_train_iter", 0, 0), ("after_train_iter", 0, 1), ("after_train_iter", 0, 2),
                    ("after_train_epoch", 0, 3), ("before_save_checkpoint", ["body.0.bias"])]
    assert module.active_hook_driver is None  # the Trainer's driver acted for that Trainer's run only
    seen.clear()
    pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
               enable_model_summary=False).fit(module, loader())
    assert seen == []


def test_hooks_in_two_places_are_refused_and_a_failed_run_starts_over(tmp_path):
    calls = []

    class Boom(Hook):
        def before_run(self, runner) -> None:
            calls.append("before_run")

        def after_train_iter(self, runner, batch_idx, data_batch=None, outputs=None) -> None:
            raise RuntimeError("boom")

    module = MMLightningModule(Regression(), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)), hooks=[Boom()])
    with pytest.raises(ValueError, match="give the hooks in one place"):
        pl.Trainer(max_epochs=1, logger=False, enable_progress_bar=False, enable_model_summary=False,
                   callbacks=[HookDriver([CountingHook()])]).fit(module, loader())
    for _ in range(2):  # the hook fails; the next run starts with before_run again (no after_run, as MMEngine)
        with pytest.raises(RuntimeError, match="boom"):
            pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                       enable_model_summary=False).fit(module, loader())
    assert calls == ["before_run", "before_run"]
    view = module.hook_driver.view
    assert not view._in_after_iter and view._current_hook is None and module.active_hook_driver is None


def test_runner_load_checkpoint_calls_after_load_checkpoint_before_any_run(tmp_path):
    runner(tmp_path / "a").train()
    hook = EditCheckpoints()
    fresh = runner(tmp_path / "b", custom_hooks=[hook])
    fresh.load_checkpoint(tmp_path / "a" / "epoch_2.ckpt")
    assert hook.resume is False and hook.loaded_keys == sorted(fresh.model.state_dict())
    assert torch.equal(fresh.model.body[2].bias.detach(), torch.zeros(1))


# ---------------------------------------------------------------------------------------- helpers
@pytest.mark.parametrize("epoch, iteration", [(0, 0), (1, 5), (2, 11), (3, 3)])
def test_helpers_equal_mmengine(mmengine, epoch, iteration):
    view = SimpleNamespace(epoch=epoch, iter=iteration, max_epochs=3, max_iters=12)
    ours, ref = Hook(), mmengine.hooks.Hook()
    for n in (1, 2, 3, 0):
        for start in (0, 1, 4):
            assert ours.every_n_epochs(view, n, start) == ref.every_n_epochs(view, n, start)
            assert ours.every_n_train_iters(view, n, start) == ref.every_n_train_iters(view, n, start)
        assert ours.every_n_inner_iters(iteration, n) == ref.every_n_inner_iters(iteration, n)
    assert ours.end_of_epoch(range(iteration + 1), iteration) == ref.end_of_epoch(range(iteration + 1), iteration)
    assert ours.is_last_train_epoch(view) == ref.is_last_train_epoch(view)
    assert ours.is_last_train_iter(view) == ref.is_last_train_iter(view)


def test_triggered_stages_equal_mmengine(mmengine):
    def stages(base):
        class Some(base):
            def before_train(self, runner):
                pass

            def _after_iter(self, runner, batch_idx, data_batch=None, outputs=None, mode="train"):
                pass

        return sorted(Some().get_triggered_stages())

    assert stages(Hook) == stages(mmengine.hooks.Hook)


def test_checkpoints_read_outside_training_leave_hooks_and_training_state_alone(tmp_path):
    """validate(ckpt_path=...) does not feed a later fit's optimizer or hub; load_from_checkpoint runs no hook."""
    from mm2lightning.evaluator import BaseMetric
    from mm2lightning.logging import MessageHub

    from test_hook_parity import make_metric_cls

    torch.manual_seed(0)
    module = MMLightningModule(Regression(), optim_wrapper=dict(optimizer=dict(type="Adam", lr=0.01)))
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[ModelCheckpoint(dirpath=tmp_path, filename="last")], enable_checkpointing=True)
    trainer.fit(module, loader())

    fresh = MMLightningModule(Regression(), optim_wrapper=dict(optimizer=dict(type="Adam", lr=0.01)),
                              val_evaluator=[make_metric_cls(BaseMetric)()])
    fresh.message_hub = MessageHub.get_instance(f"fresh_{tmp_path.name}")
    quiet = dict(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    pl.Trainer(**quiet).validate(fresh, loader(), ckpt_path=tmp_path / "last.ckpt", weights_only=False)
    pl.Trainer(max_epochs=1, **quiet).fit(fresh, loader())
    assert len(fresh.message_hub.get_scalar("train/loss").data[0]) == 3  # this fit's 3 iterations only
    assert fresh.optim_wrapper.optimizer.state_dict()["state"][0]["step"].item() == 3  # not resumed from 6 steps

    seen = []

    class Loads(Hook):
        def after_load_checkpoint(self, runner, checkpoint) -> None:
            seen.append(runner.iter)

    loaded = MMLightningModule.load_from_checkpoint(tmp_path / "last.ckpt", model=Regression(), hooks=[Loads()],
                                                    weights_only=False)
    assert seen == [] and torch.equal(loaded.model.body[0].weight, module.model.body[0].weight)
