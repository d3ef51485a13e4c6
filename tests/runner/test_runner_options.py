"""Runner options against mmengine's Runner: env_cfg, cfg.compile, CheckpointHook's file names, rules and contents."""

from __future__ import annotations

import datetime
import multiprocessing as mp
import resource
import uuid
import warnings

import pytest
import torch
from test_runner_logging import _run, make_model_class  # the same tiny experiment as the logging tests

from mm2lightning.evaluator import BaseMetric
from mm2lightning.model import BaseModel
from mm2lightning.runner import Runner, to_mmengine
from mm2lightning.runner.options import UnsupportedOptionError


@pytest.fixture
def process_state():
    """Restore what env_cfg changes in this process: cuDNN's benchmark flag, the start method, the file limit."""
    saved = torch.backends.cudnn.benchmark, mp.get_start_method(allow_none=True), resource.getrlimit(resource.RLIMIT_NOFILE)

    def restore() -> None:
        torch.backends.cudnn.benchmark = saved[0]
        mp.set_start_method(saved[1], force=True)
        resource.setrlimit(resource.RLIMIT_NOFILE, saved[2])

    yield restore
    restore()


def test_env_cfg_sets_the_process_up_as_mmengine(mmengine, tmp_path, process_state):
    from mmengine.runner import Runner as MMRunner

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    env_cfg = dict(cudnn_benchmark=True, mp_cfg=dict(mp_start_method="spawn", opencv_num_threads=1),
                   resource_limit=min(soft + 100, hard) if hard != resource.RLIM_INFINITY else soft + 100)
    states = {}
    from mmengine.model import BaseModel as MMBaseModel

    for name, runner_cls, base in (("ours", Runner, BaseModel), ("mmengine", MMRunner, MMBaseModel)):
        process_state()
        runner_cls(model=make_model_class(base)(), work_dir=str(tmp_path / name), env_cfg=env_cfg,
                   experiment_name=f"env_{uuid.uuid4().hex[:8]}")
        states[name] = (torch.backends.cudnn.benchmark, mp.get_start_method(), resource.getrlimit(resource.RLIMIT_NOFILE))
    assert states["ours"] == states["mmengine"]
    assert states["ours"][:2] == (True, "spawn") and states["ours"][2][0] == env_cfg["resource_limit"]


def tiny() -> BaseModel:
    return make_model_class(BaseModel)()


@pytest.fixture
def torchrun_variables(monkeypatch):
    for variable, value in dict(WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", RANK="0", LOCAL_RANK="0").items():
        monkeypatch.setenv(variable, value)


def test_dist_cfg_backend_and_timeout_reach_the_process_group(tmp_path, torchrun_variables, process_state):
    runner = Runner(model=tiny(), work_dir=str(tmp_path), launcher="pytorch",
                    env_cfg=dict(dist_cfg=dict(backend="gloo", timeout=123)))
    strategy = runner.trainer.strategy
    assert strategy.process_group_backend == "gloo" and strategy._timeout == datetime.timedelta(seconds=123)
    with pytest.raises(TypeError, match="Timeout for distributed training must be provided as timeout in seconds"):
        Runner(model=tiny(), work_dir=str(tmp_path), launcher="pytorch",
               env_cfg=dict(dist_cfg=dict(timeout="30"))).trainer  # noqa: B018


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the CPU fallback of MMEngine's default backend")
def test_nccl_without_cuda_becomes_gloo_with_a_warning(tmp_path, torchrun_variables, process_state):
    runner = Runner(model=tiny(), work_dir=str(tmp_path), launcher="pytorch",
                    env_cfg=dict(dist_cfg=dict(backend="nccl")))
    with pytest.warns(UserWarning, match="backend='nccl' needs CUDA devices: using 'gloo'"):
        assert runner.trainer.strategy.process_group_backend == "gloo"


@pytest.mark.parametrize("env_cfg, match", [
    (dict(cudnn_benchmrk=True), r"env_cfg has unknown keys \['cudnn_benchmrk'\]"),
    (dict(mp_cfg=dict(start_method="fork")), r"env_cfg.mp_cfg has unknown keys \['start_method'\]"),
    (dict(dist_cfg=dict(init_backend="colossalai")), "init_backend='colossalai'"),
])
def test_env_cfg_keys_mmengine_does_not_read_are_refused(tmp_path, env_cfg, match):
    with pytest.raises(UnsupportedOptionError, match=match):
        Runner(model=tiny(), work_dir=str(tmp_path), env_cfg=env_cfg)


def _trained(runner) -> dict[str, torch.Tensor]:
    model = getattr(runner.model, "module", runner.model)
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_compile_compiles_train_step_and_trains_as_mmengine(mmengine, tmp_path):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    torch._dynamo.reset()
    compiled = dict(cfg=dict(compile=dict(backend="eager")))
    ours = _run(Runner, BaseModel, BaseMetric, tmp_path / "ours", None, **compiled)
    ref = _run(MMRunner, MMBaseModel, MMBaseMetric, tmp_path / "mmengine", None, **compiled)
    assert hasattr(ours.module._step_model.train_step, "_torchdynamo_orig_callable")  # compiled, as MMEngine's
    assert hasattr(ref.model.train_step, "_torchdynamo_orig_callable")
    theirs = _trained(ref)
    for name, value in _trained(ours).items():
        assert (value - theirs[name]).abs().max().item() <= 1e-6, name


@pytest.mark.parametrize("value", [3, "eager"])
def test_compile_of_another_type_is_mmengines_assertion(tmp_path, value):
    with pytest.raises(AssertionError, match="`compile` should be a dict or bool"):
        Runner(model=tiny(), work_dir=str(tmp_path), cfg=dict(compile=value))


@pytest.mark.parametrize("keys", [dict(less_keys=["mse"]), dict(greater_keys="mse")], ids=["less", "greater"])
def test_checkpoint_names_rules_and_contents_equal_mmengine(mmengine, tmp_path, keys):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    hook = dict(type="CheckpointHook", interval=1, filename_tmpl="ep_{}.pth", save_param_scheduler=False,
                save_best="mse", max_keep_ckpts=2, **keys)
    hooks = dict(default_hooks=dict(logger=dict(type="LoggerHook", interval=5), checkpoint=hook))
    _run(Runner, BaseModel, BaseMetric, tmp_path / "ours", None, **hooks)
    _run(MMRunner, MMBaseModel, MMBaseMetric, tmp_path / "mmengine", None, **hooks)

    def names(work_dir):
        return sorted(p.name.rsplit(".", 1)[0] for p in work_dir.glob("*.*") if p.suffix in (".pth", ".ckpt"))

    assert names(tmp_path / "ours") == names(tmp_path / "mmengine")  # ep_2, ep_3 and the same best epoch
    ref = torch.load(tmp_path / "mmengine" / "ep_3.pth", map_location="cpu", weights_only=False)
    ours = torch.load(tmp_path / "ours" / "ep_3.pth", map_location="cpu", weights_only=True)
    assert "param_schedulers" not in ref and "param_schedulers" not in ours["mm2lightning"]
    assert set(to_mmengine(ours)) == set(ref)


def test_a_checkpoint_without_schedulers_resumes_with_the_schedulers_as_built(tmp_path):
    hook = dict(type="CheckpointHook", interval=1, save_param_scheduler=False)
    hooks = dict(default_hooks=dict(checkpoint=hook), train_cfg=dict(by_epoch=True, max_epochs=1))
    first = _run(Runner, BaseModel, BaseMetric, tmp_path, None, **hooks)
    assert first.module.param_schedulers[0].last_step > 0
    resumed = _run(Runner, BaseModel, BaseMetric, tmp_path, None, resume=True, **dict(hooks, train_cfg=dict(
        by_epoch=True, max_epochs=2)))
    assert resumed.trainer.current_epoch == 2  # went on from epoch 1


@pytest.mark.parametrize("hook, match", [
    (dict(type="CheckpointHook", priority="VERY_LOW"), None),
    (dict(type="CheckpointHook", priority=90), None),  # VERY_LOW's value
    (dict(type="CheckpointHook", priority="LOW"), "CheckpointHook priority='LOW'"),
    (dict(type="IterTimerHook", interval=3), r"IterTimerHook takes no options, but got \['interval'\]"),
])
def test_built_in_hooks_take_their_own_priority_and_no_options(tmp_path, hook, match):
    name = "checkpoint" if hook["type"] == "CheckpointHook" else "timer"
    if match is None:
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            Runner(model=tiny(), work_dir=str(tmp_path), default_hooks={name: hook},
                   experiment_name=f"priority_{uuid.uuid4().hex[:8]}")
        return
    with pytest.raises(UnsupportedOptionError, match=match):
        Runner(model=tiny(), work_dir=str(tmp_path), default_hooks={name: hook})


@pytest.mark.parametrize(
    "train_cfg, expected",
    [
        (dict(by_epoch=True, max_epochs=5, val_interval=1, dynamic_intervals=[(2, 2), (4, 3)]), [2, 3, 5]),
        (dict(by_epoch=False, max_iters=24, val_interval=5, dynamic_intervals=[(10, 4)]), [5, 12, 16, 20, 24]),
    ],
    ids=["epochs", "iterations"],
)
def test_dynamic_intervals_validate_when_mmengines_loops_do(mmengine, tmp_path, train_cfg, expected):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    class RecordValidation(Hook):
        def __init__(self) -> None:
            self.at: list[int] = []

        def after_val_epoch(self, runner, metrics=None) -> None:
            self.at.append(runner.epoch if train_cfg["by_epoch"] else runner.iter)

    seen = {}
    for name, runner_cls, base, metric in (("ours", Runner, BaseModel, BaseMetric),
                                           ("mmengine", MMRunner, MMBaseModel, MMBaseMetric)):
        hook = RecordValidation()
        _run(runner_cls, base, metric, tmp_path / name, None, train_cfg=dict(train_cfg), custom_hooks=[hook])
        seen[name] = hook.at
    assert seen["ours"] == seen["mmengine"] == expected


def test_dynamic_intervals_are_mmengines_list_of_tuples(tmp_path):
    with pytest.raises(AssertionError, match="list of \\(milestone, interval\\) tuples"):
        Runner(model=tiny(), work_dir=str(tmp_path), train_dataloader=[1], optim_wrapper=dict(optimizer=dict(type="SGD")),
               train_cfg=dict(by_epoch=True, max_epochs=2, dynamic_intervals=[[1, 2]]))


def test_published_checkpoints_equal_mmengines(mmengine, tmp_path, monkeypatch):
    import re

    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    hook = dict(type="CheckpointHook", interval=1, save_best="mse", rule="less", published_keys=["meta", "state_dict"])
    hooks = dict(default_hooks=dict(logger=dict(type="LoggerHook", interval=5), checkpoint=hook))
    _run(Runner, BaseModel, BaseMetric, tmp_path / "ours", None, **hooks)
    # MMEngine publishes by reloading its file with torch.load's default, weights-only since torch 2.6, which refuses
    # MMEngine's own checkpoints: run it as on the torch it was written for
    monkeypatch.setenv("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")
    _run(MMRunner, MMBaseModel, MMBaseMetric, tmp_path / "mmengine", None, **hooks)

    def published(work_dir):
        files = {re.sub(r"-[0-9a-f]{8}\.pth$", "", p.name): p for p in work_dir.glob("*-*.pth")}
        return {name: torch.load(path, map_location="cpu", weights_only=False) for name, path in files.items()}

    ours, theirs = published(tmp_path / "ours"), published(tmp_path / "mmengine")
    assert sorted(ours) == sorted(theirs) and len(ours) == 2  # the last and the best, by MMEngine's names
    for name, checkpoint in ours.items():
        assert set(checkpoint) == set(theirs[name]) == {"meta", "state_dict"}
        assert checkpoint["meta"]["epoch"] == theirs[name]["meta"]["epoch"]
        for key, value in checkpoint["state_dict"].items():
            assert (value - theirs[name]["state_dict"][key]).abs().max().item() <= 1e-6, (name, key)
    with pytest.raises(TypeError, match='"published_keys" should be a str or a sequence of str'):
        Runner(model=tiny(), work_dir=str(tmp_path), default_hooks=dict(checkpoint=dict(type="CheckpointHook",
                                                                                         published_keys=3)))


def test_fp16_evaluation_runs_under_autocast_as_mmengines_loops(mmengine, tmp_path):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    def metrics(runner_cls, base, metric, name, fp16):
        runner = _run(runner_cls, base, metric, tmp_path / name, None, val_cfg=dict(fp16=fp16),
                      train_cfg=dict(by_epoch=True, max_epochs=1))
        return runner.val()["mse"]

    ours = metrics(Runner, BaseModel, BaseMetric, "ours", True)
    theirs = metrics(MMRunner, MMBaseModel, MMBaseMetric, "mmengine", True)
    full = metrics(Runner, BaseModel, BaseMetric, "fp32", False)
    assert ours == pytest.approx(theirs, abs=1e-6)  # bfloat16 on CPU, as MMEngine's autocast
    assert abs(ours - full) > 1e-5  # and not the float32 result


def _bn_model(base):
    class BatchNormed(make_model_class(base)):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.SyncBatchNorm(8), torch.nn.Tanh(),
                                            torch.nn.Linear(8, 1))

    torch.manual_seed(0)
    return BatchNormed()


def test_sync_batchnorm_is_reverted_without_a_launcher_as_mmengine(mmengine, tmp_path):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    ours = _run(Runner, BaseModel, BaseMetric, tmp_path / "ours", None, model=_bn_model(BaseModel))
    ref = _run(MMRunner, MMBaseModel, MMBaseMetric, tmp_path / "mmengine", None, model=_bn_model(MMBaseModel))
    assert type(ours.model.body[1]).__name__ == type(ref.model.body[1]).__name__ == "_BatchNormXd"
    theirs = _trained(ref)
    for name, value in _trained(ours).items():
        assert (value.float() - theirs[name].float()).abs().max().item() <= 1e-6, name


def test_sync_bn_converts_batch_norms_under_a_launcher(tmp_path, torchrun_variables, process_state):
    from mm2lightning.model import convert_sync_batchnorm

    class Normed(make_model_class(BaseModel)):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.BatchNorm1d(8), torch.nn.Linear(8, 1))

    model = Normed()
    weight = model.body[1].weight
    runner = Runner(model=model, work_dir=str(tmp_path), launcher="pytorch", cfg=dict(sync_bn="torch"))
    assert isinstance(runner.model.body[1], torch.nn.SyncBatchNorm) and runner.model.body[1].weight is weight
    with pytest.raises(ValueError, match='sync_bn should be "torch" or "mmcv", but got apex'):
        convert_sync_batchnorm(Normed(), "apex")


def test_activation_checkpointing_recomputes_and_trains_as_mmengine(mmengine, tmp_path):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    calls = []
    torch.manual_seed(0)  # the initial weights _run's own model gets
    model = make_model_class(BaseModel)()
    forward = model.body[2].forward
    model.body[2].forward = lambda *args: calls.append(1) or forward(*args)  # the forward the checkpoint reruns

    checkpointed = dict(cfg=dict(activation_checkpointing=["body.2"]), train_cfg=dict(by_epoch=True, max_epochs=1))
    ours = _run(Runner, BaseModel, BaseMetric, tmp_path / "ours", None, model=model, **checkpointed)
    assert len(calls) == 10 * 2 + 3  # 10 iterations, each forward run again in the backward; 3 validation batches
    ref = _run(MMRunner, MMBaseModel, MMBaseMetric, tmp_path / "mmengine", None, **checkpointed)
    plain = _run(Runner, BaseModel, BaseMetric, tmp_path / "plain", None, train_cfg=dict(by_epoch=True, max_epochs=1))
    theirs, without = _trained(ref), _trained(plain)
    for name, value in _trained(ours).items():
        assert (value - theirs[name]).abs().max().item() <= 1e-6, name
        assert (value - without[name]).abs().max().item() <= 1e-6, name  # the same gradients as without it


@pytest.mark.parametrize("sampler_seed", [dict(type="DistSamplerSeedHook"), None], ids=["hook", "none"])
def test_sampler_seed_none_keeps_the_samplers_epoch_as_mmengine(mmengine, tmp_path, sampler_seed):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.hooks import Hook
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    from test_runner_logging import _data

    class RecordBatches(Hook):
        def __init__(self) -> None:
            self.targets: list[list[float]] = []

        def before_train_iter(self, runner, batch_idx, data_batch=None) -> None:
            self.targets.append([round(float(y), 5) for y in data_batch[1].flatten()])

    loader = dict(dataset=_data(), sampler=dict(type="DefaultSampler", shuffle=True), batch_size=4,
                  collate_fn=dict(type="default_collate"))
    seen = {}
    for name, runner_cls, base, metric in (("ours", Runner, BaseModel, BaseMetric),
                                           ("mmengine", MMRunner, MMBaseModel, MMBaseMetric)):
        hook = RecordBatches()
        _run(runner_cls, base, metric, tmp_path / name, None, train_dataloader=loader, custom_hooks=[hook],
             default_hooks=dict(sampler_seed=sampler_seed, checkpoint=None))
        seen[name] = [hook.targets[i : i + 10] for i in (0, 10, 20)]  # the 3 epochs' batches
    assert seen["ours"] == seen["mmengine"]
    assert (seen["ours"][0] == seen["ours"][1]) == (sampler_seed is None)  # alike without the hook


def test_a_train_loop_object_is_refused_naming_the_loop_and_others_must_be_loops(mmengine, tmp_path):
    from mmengine.runner import ValLoop

    class MyValLoop(ValLoop):
        def __init__(self) -> None:  # a loop object built by the user
            pass

    with pytest.raises(UnsupportedOptionError, match="train_cfg a MyValLoop object: .*other loops are refused"):
        Runner(model=tiny(), work_dir=str(tmp_path), train_dataloader=[1], train_cfg=MyValLoop(),
               optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)))
    with pytest.raises(TypeError, match="val_loop should be a Loop object or dict, but got 3"):  # MMEngine's words
        Runner(model=tiny(), work_dir=str(tmp_path), val_dataloader=[1], val_cfg=3,
               val_evaluator=dict(type="DumpResults", out_file_path="x.pkl"))


def test_runner_type_runner_and_flexible_runner_build_this_runner(tmp_path):
    for runner_type in ("Runner", "FlexibleRunner", "mmengine.FlexibleRunner"):
        runner = Runner.from_cfg(dict(model=tiny(), work_dir=str(tmp_path / runner_type), runner_type=runner_type,
                                      experiment_name=f"{runner_type}_{uuid.uuid4().hex[:6]}"))
        assert isinstance(runner, Runner)


def _conv_bn_model(base):
    class ConvBN(make_model_class(base)):
        def __init__(self) -> None:
            torch.manual_seed(0)
            super().__init__()
            self.backbone = torch.nn.Sequential(torch.nn.Conv2d(1, 4, 2, padding=1), torch.nn.BatchNorm2d(4),
                                                torch.nn.ReLU())
            self.head = torch.nn.Linear(4, 1)
            with torch.no_grad():  # the statistics of a pretrained backbone
                self.backbone[1].running_mean.uniform_(-1, 1)
                self.backbone[1].running_var.uniform_(0.5, 2)

        def train(self, mode=True):  # norm_eval, as toolbox backbones: the batch norm stays in eval mode
            super().train(mode)
            self.backbone[1].eval()
            return self

        def forward(self, x, y, mode="tensor"):
            out = self.head(self.backbone(x.view(-1, 1, 2, 2)).mean((2, 3)))
            if mode == "loss":
                return dict(loss=(out - y).pow(2).mean())
            return list((out - y).pow(2).mean(1))

    return ConvBN()


def test_efficient_conv_bn_eval_trains_as_mmengine(mmengine, tmp_path):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    fused = dict(cfg=dict(efficient_conv_bn_eval=["backbone"]), train_cfg=dict(by_epoch=True, max_epochs=1))
    ours = _run(Runner, BaseModel, BaseMetric, tmp_path / "ours", None, model=_conv_bn_model(BaseModel), **fused)
    assert "conv_bn" in ours.model.backbone.forward.__self__.code  # the pair runs as one convolution
    ref = _run(MMRunner, MMBaseModel, MMBaseMetric, tmp_path / "mmengine", None, model=_conv_bn_model(MMBaseModel),
               **fused)
    plain = _run(Runner, BaseModel, BaseMetric, tmp_path / "plain", None, model=_conv_bn_model(BaseModel),
                 train_cfg=dict(by_epoch=True, max_epochs=1))
    theirs, unfused = _trained(ref), _trained(plain)
    for name, value in _trained(ours).items():
        assert (value - theirs[name]).abs().max().item() <= 1e-6, name
        assert (value - unfused[name]).abs().max().item() <= 1e-5, name  # the same function, in another order


def test_resume_checks_the_gpu_count_of_the_checkpoints_config_as_mmengine(tmp_path):
    first = _run(Runner, BaseModel, BaseMetric, tmp_path / "first", None, train_cfg=dict(by_epoch=True, max_epochs=1),
                 default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1)))
    assert first.iter == 10
    mmengine_style = to_mmengine(torch.load(tmp_path / "first" / "epoch_1.ckpt", weights_only=True))
    mmengine_style["meta"]["config"] = "gpu_ids = [0, 1]\n"  # written on 2 GPUs (MMEngine reads meta.config)
    torch.save(mmengine_style, tmp_path / "two_gpus.pth")
    again = dict(train_cfg=dict(by_epoch=True, max_epochs=2), resume=True, load_from=str(tmp_path / "two_gpus.pth"))
    with pytest.raises(RuntimeError, match="Number of GPUs used for current experiment is not consistent"):
        _run(Runner, BaseModel, BaseMetric, tmp_path / "second", None, **again)
    resumed = _run(Runner, BaseModel, BaseMetric, tmp_path / "third", None, **again,
                   auto_scale_lr=dict(enable=True, base_batch_size=4))  # the rates are rescaled: allowed
    assert resumed.iter == 20
