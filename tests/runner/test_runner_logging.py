"""Runner logging against mmengine's Runner: what the loggers get at each log step, the MessageHub, the text log."""

from __future__ import annotations

import csv
import json
import re
import uuid
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader

from mm2lightning.evaluator import BaseMetric
from mm2lightning.model import BaseModel
from mm2lightning.runner import Runner

LOGGED = ("loss", "loss_aux", "acc", "lr", "grad_norm")  # the keys both write at a log step (no timer hook here)


def make_model_class(base: type) -> type:
    class TwoLosses(base):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 1))

        def forward(self, x, y, mode="tensor"):
            out = self.body(x)
            error = out - y
            if mode == "loss":
                return dict(loss=error.pow(2).mean(), loss_aux=0.1 * error.abs().mean(), acc=(error.abs() < 0.5).float().mean())
            return list(error.pow(2).mean(1))

    return TwoLosses


def make_metric(base: type):
    class MSE(base):
        def process(self, data_batch, data_samples) -> None:
            self.results.extend(float(x) for x in data_samples)

        def compute_metrics(self, results) -> dict:
            return dict(mse=sum(results) / len(results), errors=np.array(results))  # errors: not a scalar

    return MSE()


def _data() -> list:
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(40, 4, generator=gen)
    return list(zip(x, x.sum(1, keepdim=True).sin()))


def _run(runner_cls, base, metric_base, work_dir: Path, log_processor, **overrides):
    torch.manual_seed(0)
    model = make_model_class(base)()
    kwargs = dict(
        model=model,
        work_dir=str(work_dir),
        train_dataloader=DataLoader(_data(), batch_size=4),  # 10 iterations per epoch: log steps 5 and 10 agree
        train_cfg=dict(by_epoch=True, max_epochs=3),
        optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9), clip_grad=dict(max_norm=0.5)),
        param_scheduler=[dict(type="LinearLR", start_factor=0.1, by_epoch=False, end=12)],  # lr changes per iteration
        val_dataloader=DataLoader(_data()[:12], batch_size=4),
        val_cfg=dict(),
        val_evaluator=[make_metric(metric_base)],
        default_hooks=dict(logger=dict(type="LoggerHook", interval=5), checkpoint=None),
        randomness=dict(seed=0),
        experiment_name=f"logging_{uuid.uuid4().hex[:8]}",  # a MessageHub of its own
    )
    if log_processor is not None:
        kwargs["log_processor"] = log_processor
    kwargs.update(overrides)
    if runner_cls is Runner:
        kwargs["trainer_cfg"] = dict(enable_progress_bar=False, enable_model_summary=False)
    runner = runner_cls(**kwargs)
    runner.train()
    return runner


CUSTOM = dict(
    window_size=3,
    custom_cfg=[
        dict(data_src="loss", log_name="loss_global", method_name="mean", window_size="global"),
        dict(data_src="loss_aux", log_name="loss_aux_epoch", method_name="mean", window_size="epoch"),
        dict(data_src="acc", method_name="max", window_size=4),  # replaces acc's default (latest value)
    ],
)


@pytest.mark.parametrize("log_processor", [None, CUSTOM], ids=["default", "custom"])
def test_logged_values_hub_and_text_log_equal_mmengine(mmengine, tmp_path, log_processor):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    ours = _run(Runner, BaseModel, BaseMetric, tmp_path / "ours", log_processor)
    ref = _run(MMRunner, MMBaseModel, MMBaseMetric, tmp_path / "mmengine", log_processor)

    # what LoggerHook hands the visualizer at iterations 5, 10, ..., 30 = what the CSV logger got (step = iter - 1)
    with open(next((tmp_path / "mmengine").glob("*/vis_data/scalars.json"))) as f:
        written = list(map(json.loads, f))
    with open(next((tmp_path / "ours").glob("*/metrics.csv"))) as f:
        csv_rows = list(csv.DictReader(f))
    expected = {row["step"]: row for row in written if "lr" in row}
    rows = {int(row["step"]) + 1: row for row in csv_rows if row.get("loss")}
    assert sorted(rows) == sorted(expected) == list(range(5, 31, 5))
    val_expected = [row["mse"] for row in written if "mse" in row]  # after each epoch (step = epoch)
    val_logged = [float(row["val/mse"]) for row in csv_rows if row.get("val/mse")]
    assert len(val_logged) == 3 and np.allclose(val_logged, val_expected, rtol=0, atol=1e-6)
    keys = set(LOGGED) | {"loss_global", "loss_aux_epoch"} if log_processor else set(LOGGED)
    for step, row in rows.items():
        assert keys <= set(expected[step]) and keys <= set(row)
        for key in keys:
            assert abs(float(row[key]) - expected[step][key]) <= 1e-6, (step, key)

    # the hub: every iteration's values, the metrics of each validation and the runtime information, as MMEngine's
    for key in ("train/loss", "train/loss_aux", "train/acc", "train/lr", "train/grad_norm", "val/mse"):
        mine, theirs = ours.message_hub.get_scalar(key).data, ref.message_hub.get_scalar(key).data
        assert len(mine[0]) == (3 if key == "val/mse" else 30) and mine[0].dtype == theirs[0].dtype
        np.testing.assert_allclose(mine[0], theirs[0], rtol=0, atol=1e-6, err_msg=key)
        np.testing.assert_array_equal(mine[1], theirs[1])
    for key in ("iter", "epoch", "max_iters", "max_epochs", "seed"):
        assert ours.message_hub.get_info(key) == ref.message_hub.get_info(key), key
    np.testing.assert_allclose(ours.message_hub.get_info("val/errors"), ref.message_hub.get_info("val/errors"), atol=1e-6)
    assert ours.message_hub.get_info("experiment_name") == ours.experiment_name
    assert ours.message_hub.get_info("iter") == 29 and ours.message_hub.get_info("epoch") == 2

    # the text log: MMEngine's line head and the same formatted losses
    pattern = re.compile(r"(Epoch\(train\) *\[\d+\]\[ ?\d+/10\]).*?  loss: (\S+)  loss_aux: (\S+)")
    ours_log = next((tmp_path / "ours").glob("*/*.log")).read_text()
    ref_log = next((tmp_path / "mmengine").glob("*/*.log")).read_text()
    assert len(pattern.findall(ours_log)) == 6 and pattern.findall(ours_log) == pattern.findall(ref_log)
    val_pattern = re.compile(r"(Epoch\(val\) \[\d\]\[3/3\]) +mse: (\S+)")
    assert len(val_pattern.findall(ours_log)) == 3 and val_pattern.findall(ours_log) == val_pattern.findall(ref_log)


def test_a_resumed_run_logs_and_holds_the_hub_of_the_uninterrupted_run(tmp_path):
    """The hub is in the checkpoint (MMEngine's message_hub entry): the windows go on across a resume."""
    import lightning.pytorch as pl

    class StopAfterEpoch2(pl.Callback):
        def on_train_epoch_end(self, trainer, pl_module) -> None:
            trainer.should_stop = trainer.current_epoch == 1

    hooks = dict(logger=dict(type="LoggerHook", interval=5), checkpoint=dict(type="CheckpointHook", interval=1))
    full = _run(Runner, BaseModel, BaseMetric, tmp_path / "full", None, default_hooks=hooks)
    _run(Runner, BaseModel, BaseMetric, tmp_path / "run", None, default_hooks=hooks, custom_hooks=[StopAfterEpoch2()])
    resumed = _run(Runner, BaseModel, BaseMetric, tmp_path / "run", None, default_hooks=hooks, resume=True,
                   experiment_name=f"resumed_{uuid.uuid4().hex[:8]}")  # a new, empty hub, filled by the resume
    assert resumed.trainer.global_step == 30
    for key in ("train/loss", "train/lr", "val/mse"):
        np.testing.assert_array_equal(resumed.message_hub.get_scalar(key).data[0], full.message_hub.get_scalar(key).data[0])

    def logged(run_dir: Path) -> dict:
        rows = {}
        for path in run_dir.glob("*/metrics.csv"):
            with open(path) as f:
                rows.update({int(r["step"]) + 1: float(r["loss"]) for r in csv.DictReader(f) if r.get("loss")})
        return rows

    after_resume = {step: value for step, value in logged(tmp_path / "run").items() if step > 20}
    assert sorted(after_resume) == [25, 30]  # window means over iterations 16-25 and 21-30, half before the resume
    assert after_resume == {step: logged(tmp_path / "full")[step] for step in (25, 30)}


@pytest.mark.parametrize("removed", ["param_scheduler", "logger"])
def test_a_default_hook_set_to_none_does_no_work_as_in_mmengine(mmengine, tmp_path, removed):
    """default_hooks=dict(param_scheduler=None): schedulers built and never stepped; dict(logger=None): the hub
    is fed, nothing is written (no text lines, no logged rows)."""
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    hooks = {**dict(logger=dict(type="LoggerHook", interval=5), checkpoint=None), removed: None}
    ours = _run(Runner, BaseModel, BaseMetric, tmp_path / "ours", None, default_hooks=hooks)
    ref = _run(MMRunner, MMBaseModel, MMBaseMetric, tmp_path / "mmengine", None, default_hooks=hooks)

    for mine, theirs in zip(ours.model.parameters(), ref.model.parameters()):
        assert torch.allclose(mine, theirs, rtol=0, atol=1e-6)
    rates = ours.message_hub.get_scalar("train/lr").data[0]
    np.testing.assert_allclose(rates, ref.message_hub.get_scalar("train/lr").data[0], rtol=0, atol=1e-12)
    ours_log = next((tmp_path / "ours").glob("*/*.log")).read_text()
    ref_log = next((tmp_path / "mmengine").glob("*/*.log")).read_text()
    lines = re.compile(r"Epoch\((?:train|val)\)")
    if removed == "param_scheduler":
        assert len(set(rates)) == 1 and rates[0] == pytest.approx(0.005)  # LinearLR's start (0.1 x 0.05), never stepped
        assert len(lines.findall(ours_log)) == len(lines.findall(ref_log)) == 9  # 6 train + 3 val lines
    else:
        assert len(set(rates)) > 1  # the schedulers step
        assert lines.findall(ours_log) == lines.findall(ref_log) == []
        assert len(ours.message_hub.get_scalar("train/loss").data[0]) == 30  # the hub is fed
        logged = [row for path in (tmp_path / "ours").glob("*/metrics.csv") for row in csv.DictReader(open(path))]
        assert logged == []


@pytest.mark.parametrize("name", ["runtime_info"])
def test_a_built_in_hook_whose_work_is_always_done_cannot_be_set_to_none(tmp_path, name):
    with pytest.raises(ValueError, match=rf"default_hooks\['{name}'\]=None is not supported yet"):
        Runner(model=make_model_class(BaseModel)(), work_dir=str(tmp_path), default_hooks={name: None})


def test_logger_hook_options_act_as_in_mmengine(mmengine, tmp_path):
    """ignore_last=False (epochs of 10, interval 4: values at 4, 8 and 10), interval_exp_name=7 (the line
    'Exp name: ...' at iterations 7, 14, ... and at each epoch's end), log_metric_by_epoch=False (validation
    scalars against the iteration)."""
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    logger = dict(type="LoggerHook", interval=4, ignore_last=False, interval_exp_name=7, log_metric_by_epoch=False)
    overrides = dict(default_hooks=dict(logger=logger, checkpoint=None),
                     visualizer=dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend")]))
    _run(Runner, BaseModel, BaseMetric, tmp_path / "ours", None, **overrides)
    _run(MMRunner, MMBaseModel, MMBaseMetric, tmp_path / "mmengine", None, **overrides)

    def written(root: Path) -> list[tuple[int, bool]]:
        with open(next(root.glob("*/vis_data/scalars.json"))) as f:
            return [(row["step"], "mse" in row) for row in map(json.loads, f)]

    train_steps = [4, 8, 10, 14, 18, 20, 24, 28, 30]
    assert written(tmp_path / "ours") == written(tmp_path / "mmengine")
    assert [step for step, val in written(tmp_path / "ours") if not val] == train_steps
    assert [step for step, val in written(tmp_path / "ours") if val] == [10, 20, 30]  # iterations, not epochs
    lines = re.compile(r"Exp name: |Epoch\(train\) *\[\d+\]\[ ?\d+/10\]")
    ours_log = next((tmp_path / "ours").glob("*/*.log")).read_text()
    ref_log = next((tmp_path / "mmengine").glob("*/*.log")).read_text()
    assert lines.findall(ours_log) == lines.findall(ref_log)
    assert lines.findall(ours_log).count("Exp name: ") == 7  # iterations 7, 10, 14, 20, 21, 28, 30


@pytest.mark.parametrize(
    "options, error, message",
    [
        (dict(interval=0), ValueError, "interval must be greater than 0"),
        (dict(interval=2.0), TypeError, "interval must be an integer"),
        (dict(ignore_last=1), TypeError, "ignore_last must be a boolean"),
        (dict(interval_exp_name=0), ValueError, "interval_exp_name must be greater than 0"),
        (dict(keep_local="yes"), TypeError, "keep_local must be a boolean"),
        (dict(out_suffix=3), TypeError, "out_suffix should be a string or a sequence of string"),
    ],
)
def test_logger_hook_refuses_what_mmengine_refuses(mmengine, tmp_path, options, error, message):
    from mmengine.hooks import LoggerHook as MMLoggerHook

    with pytest.raises(error, match=message):
        MMLoggerHook(**options)
    with pytest.raises(error, match=message):
        Runner(model=make_model_class(BaseModel)(), work_dir=str(tmp_path),
               default_hooks=dict(logger=dict(type="LoggerHook", **options)))


def test_logger_hook_instances_and_what_is_not_supported(mmengine, tmp_path):
    from mmengine.hooks import LoggerHook as MMLoggerHook

    from mm2lightning.hooks import LoggerHook

    for hook in (MMLoggerHook(interval=3, ignore_last=False), LoggerHook(interval=3, ignore_last=False)):
        runner = Runner(model=make_model_class(BaseModel)(), work_dir=str(tmp_path), default_hooks=dict(logger=hook))
        assert runner.module.logger_hook.interval == 3 and runner.module.logger_hook.ignore_last is False
    with pytest.raises(NotImplementedError, match="backend_args"):  # file backends: not carried
        Runner(model=make_model_class(BaseModel)(), work_dir=str(tmp_path),
               default_hooks=dict(logger=dict(type="LoggerHook", out_dir="x", backend_args=dict(backend="local"))))
    with pytest.raises(TypeError, match="unexpected keyword argument 'colour'"):
        Runner(model=make_model_class(BaseModel)(), work_dir=str(tmp_path),
               default_hooks=dict(logger=dict(type="LoggerHook", colour=True)))


@pytest.mark.parametrize("keep_local", [True, False])
def test_logger_hook_out_dir_copies_the_logs_as_mmengine(mmengine, tmp_path, keep_local):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    copied = {}
    for name, runner_cls, base, metric in (("ours", Runner, BaseModel, BaseMetric),
                                           ("mmengine", MMRunner, MMBaseModel, MMBaseMetric)):
        out_dir = tmp_path / f"out_{name}"
        hook = dict(type="LoggerHook", interval=5, out_dir=str(out_dir), out_suffix=(".log", ".json"),
                    keep_local=keep_local)
        runner = _run(runner_cls, base, metric, tmp_path / name / "exp", None,
                      default_hooks=dict(logger=hook, checkpoint=None),
                      visualizer=dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend")]))
        target = out_dir / "exp"  # out_dir/<work_dir's name>/<the log dir's files, by their relative paths>
        copied[name] = sorted(str(p.relative_to(target)).replace(runner.timestamp, "T")
                              for p in target.rglob("*") if p.is_file())
        local = Path(runner.log_dir) / f"{runner.timestamp}.log"
        assert local.exists() == keep_local, name
    assert copied["ours"] == copied["mmengine"] == ["T.log", "vis_data/T.json", "vis_data/scalars.json"]


def test_timer_none_logs_no_times_as_mmengine(mmengine, tmp_path):
    """default_hooks=dict(timer=None): no time, data_time or eta in the hub or the log lines, as MMEngine's."""
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    hooks = dict(default_hooks=dict(timer=None, logger=dict(type="LoggerHook", interval=5), checkpoint=None))
    lines = {}
    for name, runner_cls, base, metric in (("ours", Runner, BaseModel, BaseMetric),
                                           ("mmengine", MMRunner, MMBaseModel, MMBaseMetric)):
        runner = _run(runner_cls, base, metric, tmp_path / name, None, **hooks)
        assert "train/time" not in runner.message_hub.log_scalars and "eta" not in runner.message_hub.runtime_info
        text = next((tmp_path / name).glob("*/*.log")).read_text()
        lines[name] = [line.split(" - ")[-1] for line in text.splitlines() if "(train)" in line or "(val)" in line]
    assert lines["ours"] == lines["mmengine"] and lines["ours"]
    assert not any("time" in line for line in lines["ours"])
