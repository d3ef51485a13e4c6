"""MMEngine's visualizer backends as Lightning loggers, against mmengine's LocalVisBackend / Visualizer."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lightning.pytorch import loggers as pl_loggers
from lightning.pytorch.utilities import rank_zero_only

from mm2lightning.config import Config
from mm2lightning.lightning import vis_loggers
from mm2lightning.lightning.vis_loggers import (
    LocalVisLogger,
    LoggerVisBackend,
    build_visualizer,
    loggers_from_vis_backends,
)
from mm2lightning.registry import VISUALIZERS

TS = "20240101_000000"
# what LoggerHook hands add_scalars: train tags at log steps (step = iter + 1), val tags after epochs (step = epoch)
CALLS = [
    ({"lr": 0.01, "data_time": 0.0012, "loss": 1.2345678901234567, "time": 0.05, "epoch": 1, "iter": 5,
      "memory": 12}, 5),
    ({"lr": 0.01, "loss": np.float64(0.5), "acc": np.float32(0.25), "epoch": 1, "iter": 10}, 10),
    ({"accuracy/top1": 81.25, "data_time": 0.001, "time": 0.01}, 1),
    ({"loss": 0.1, "step": 99}, 11),  # a 'step' key in the dict wins, as MMEngine's setdefault
]


def _lines(path):
    return path.read_text().splitlines()


def test_scalars_equal_mmengine_local_vis_backend(mmengine, tmp_path):
    from mmengine.visualization import LocalVisBackend

    theirs = LocalVisBackend(save_dir=str(tmp_path / "mmengine" / "vis_data"))
    (ours,) = loggers_from_vis_backends([dict(type="LocalVisBackend")], tmp_path / "ours" / TS, "exp")
    for tag, step in CALLS:
        theirs.add_scalars(dict(tag), step=step, file_path=f"{TS}.json")
        ours.log_metrics(dict(tag), step=step)
    for name in ("scalars.json", f"{TS}.json"):
        expected = _lines(tmp_path / "mmengine" / "vis_data" / name)
        assert _lines(tmp_path / "ours" / TS / "vis_data" / name) == expected
    assert len(expected) == len(CALLS)


def test_log_scalars_and_visualizer_path_equal_mmengine(mmengine, tmp_path):
    from mmengine.visualization import Visualizer

    theirs = Visualizer(name="vis_theirs", vis_backends=[dict(type="LocalVisBackend")], save_dir=str(tmp_path / "a"))
    loggers = loggers_from_vis_backends([dict(type="LocalVisBackend")], tmp_path / "b", "vis_ours")
    ours = build_visualizer(dict(type="Visualizer", vis_backends=[dict(type="LocalVisBackend")]), "vis_ours",
                            tmp_path / "b", loggers=loggers)
    for visualizer in (theirs, ours):
        visualizer.add_scalars({"loss": 0.5}, step=3, file_path="other.json")
        visualizer.add_scalar("mAP", torch.tensor(0.75).item(), step=4)
    for name in ("scalars.json", "other.json"):
        assert _lines(tmp_path / "b" / "vis_data" / name) == _lines(tmp_path / "a" / "vis_data" / name)
    with pytest.raises(ValueError, match="scalar_save_file"):
        loggers[0].log_scalars({"a": 1}, 0, file_path="scalars.json")
    with pytest.raises(ValueError, match=".json"):
        loggers[0].log_scalars({"a": 1}, 0, file_path="x.txt")


def test_tensor_values_and_missing_step(tmp_path):
    logger = LocalVisLogger(tmp_path)
    logger.log_metrics({"loss": torch.tensor(0.5), "v": torch.tensor([1, 2])})
    assert _lines(tmp_path / "scalars.json") == ['{"loss": 0.5, "v": [1, 2], "step": 0}']


def test_layout_and_backend_args(tmp_path):
    log_dir = tmp_path / "work" / TS
    (default,) = loggers_from_vis_backends([dict(type="mmengine.LocalVisBackend", name="local")], log_dir, "exp")
    assert default.save_dir == default.log_dir == str(log_dir / "vis_data")
    assert (default.name, default.version, default.json_log_path) == ("", "", f"{TS}.json")
    assert default.experiment is default and (log_dir / "vis_data").is_dir()
    (custom,) = loggers_from_vis_backends(
        [dict(type="LocalVisBackend", save_dir=str(tmp_path / "mine"), img_save_dir="imgs",
              config_save_file="cfg.py", scalar_save_file="s.json")], log_dir, "exp")
    assert custom.save_dir == str(tmp_path / "mine")
    assert (custom.img_save_dir, custom.config_save_file, custom.scalar_save_file) == (
        str(tmp_path / "mine" / "imgs"), str(tmp_path / "mine" / "cfg.py"), str(tmp_path / "mine" / "s.json"))
    custom.log_metrics({"a": 1}, step=2)
    assert _lines(tmp_path / "mine" / "s.json") == _lines(tmp_path / "mine" / f"{TS}.json") == ['{"a": 1, "step": 2}']
    with pytest.raises(ValueError, match="scalar_save_file"):
        LocalVisLogger(tmp_path, scalar_save_file="s.txt")
    with pytest.raises(ValueError, match="config_save_file"):
        LocalVisLogger(tmp_path, config_save_file="c.yaml")


def test_mmengine_backend_class_as_type(mmengine, tmp_path):
    from mmengine.visualization import LocalVisBackend

    (logger,) = loggers_from_vis_backends([dict(type=LocalVisBackend)], tmp_path, "exp")
    assert isinstance(logger, LocalVisLogger)


def test_config_file_equals_mmengine_add_config(mmengine, tmp_path):
    from mmengine.config import Config as MMConfig
    from mmengine.visualization import LocalVisBackend

    values = dict(model=dict(type="ResNet", depth=50, out=(1, 2)), lr=0.1, name="x", flags=[True, None])
    LocalVisBackend(save_dir=str(tmp_path / "a")).add_config(MMConfig(values))
    LocalVisLogger(tmp_path / "b").log_hyperparams(Config(values))
    LocalVisLogger(tmp_path / "c").log_hyperparams(dict(values))  # a dict is written as a Config
    expected = MMConfig.fromfile(str(tmp_path / "a" / "config.py")).to_dict()
    for name in ("b", "c"):
        assert MMConfig.fromfile(str(tmp_path / name / "config.py")).to_dict() == expected
    LoggerVisBackend(LocalVisLogger(tmp_path / "d")).add_config(MMConfig(values))  # mmengine's Config too
    assert MMConfig.fromfile(str(tmp_path / "d" / "config.py")).to_dict() == expected


def test_images_equal_mmengine(mmengine, tmp_path):
    cv2 = pytest.importorskip("cv2")
    from mmengine.visualization import Visualizer

    image = np.random.default_rng(0).integers(0, 256, size=(8, 6, 3), dtype=np.uint8)
    theirs = Visualizer(name="img_theirs", vis_backends=[dict(type="LocalVisBackend")], save_dir=str(tmp_path / "a"))
    loggers = loggers_from_vis_backends([dict(type="LocalVisBackend", img_save_dir="imgs")], tmp_path / "b", "e")
    ours = build_visualizer(dict(type="Visualizer"), "img_ours", tmp_path / "b", loggers=loggers)
    theirs.add_image("sample", image, step=7)
    ours.add_image("sample", image, step=7)
    written = cv2.imread(str(tmp_path / "b" / "vis_data" / "imgs" / "sample_7.png"))
    np.testing.assert_array_equal(written, cv2.imread(str(tmp_path / "a" / "vis_data" / "vis_image" / "sample_7.png")))
    with pytest.raises(ValueError, match="uint8"):
        loggers[0].log_image("bad", image.astype(np.float32))


def test_rank_other_than_zero_writes_nothing(monkeypatch, tmp_path):
    logger = LocalVisLogger(tmp_path / "vis")
    monkeypatch.setattr(rank_zero_only, "rank", 1)
    logger.log_metrics({"loss": 1.0}, step=1)
    logger.log_scalars({"loss": 1.0}, 1, "x.json")
    logger.log_hyperparams(dict(a=1))
    logger.log_image("img", np.zeros((2, 2, 3), np.uint8))
    assert not isinstance(logger.experiment, LocalVisLogger)  # Lightning's dummy experiment
    assert not (tmp_path / "vis").exists()


@pytest.mark.parametrize(
    ("cfg", "error", "match"),
    [
        (dict(type="LocalVisBackend", bogus=1), TypeError, "LocalVisBackend got an unknown argument 'bogus'"),
        (dict(type="TensorboardVisBackend", log_graph=True), TypeError, "unknown argument 'log_graph'"),
        (dict(type="mmdet.DetLocalVisBackend"), ValueError, "'mmdet.DetLocalVisBackend' is not supported yet"),
        (dict(type="NoSuchBackend"), ValueError, "not supported yet.*Runner\\(loggers="),
        (dict(type="ClearMLVisBackend"), ValueError, "ClearMLVisBackend: Lightning has no logger.*ClearML"),
        (dict(type="DVCLiveVisBackend"), ValueError, "DVCLiveLogger"),
        (dict(type="AimVisBackend", init_kwargs=dict(repo=".")), ValueError, "AimLogger"),
        (dict(type="NeptuneVisBackend", init_kwargs=dict(project="p")), ValueError,
         "NeptuneVisBackend: Lightning has no logger.*NeptuneLogger"),
        (dict(type="WandbVisBackend", define_metric_cfg={"acc": "max"}), ValueError, "'define_metric_cfg'"),
        (dict(type="WandbVisBackend", commit=False), ValueError, "'commit'"),
        (dict(type="WandbVisBackend", log_code_name="code"), ValueError, "'log_code_name'"),
        (dict(type="WandbVisBackend", watch_kwargs=dict(idx=1)), ValueError, "'watch_kwargs.idx'"),
        (dict(type="MLflowVisBackend", artifact_suffix=".py"), ValueError, "'artifact_suffix'"),
        (dict(type="MLflowVisBackend", tracked_config_keys=dict(a=1)), ValueError, "'tracked_config_keys'"),
    ],
)
def test_errors(tmp_path, cfg, error, match):
    with pytest.raises(error, match=match):
        loggers_from_vis_backends([cfg], tmp_path, "exp")


@pytest.mark.parametrize(
    ("cfg", "package"),
    [(dict(type="TensorboardVisBackend"), "tensorboard"), (dict(type="WandbVisBackend"), "wandb"),
     (dict(type="MLflowVisBackend"), "mlflow")],
)
def test_missing_package(monkeypatch, tmp_path, cfg, package):
    monkeypatch.setattr(vis_loggers, "_installed", lambda name: False)
    with pytest.raises(ImportError, match=f"pip install {package}"):
        loggers_from_vis_backends([cfg], tmp_path, "exp")


class _Recorder:
    """Stands for a Lightning logger class whose package is not installed: records its arguments."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        self.hyperparams = []
        self.watched = []

    def log_hyperparams(self, params):
        self.hyperparams.append(params)

    def watch(self, model, **kwargs):
        self.watched.append((model, kwargs))


def test_tensorboard_logger_writes_to_vis_data(monkeypatch, tmp_path):
    import lightning.fabric.loggers.tensorboard as fabric_tensorboard

    monkeypatch.setattr(vis_loggers, "_installed", lambda name: True)
    monkeypatch.setattr(fabric_tensorboard, "_TENSORBOARD_AVAILABLE", True)
    (logger,) = loggers_from_vis_backends([dict(type="TensorboardVisBackend")], tmp_path / TS, "exp")
    assert isinstance(logger, pl_loggers.TensorBoardLogger)
    assert logger.log_dir.rstrip("/") == str(tmp_path / TS / "vis_data")


def test_wandb_logger_arguments(monkeypatch, tmp_path):
    monkeypatch.setattr(vis_loggers, "_installed", lambda name: True)
    monkeypatch.setattr(pl_loggers, "WandbLogger", _Recorder)
    cfg = dict(type="WandbVisBackend", init_kwargs=dict(project="proj", entity="team"), commit=True,
               watch_kwargs=dict(log="all", log_freq=10))
    (logger,) = loggers_from_vis_backends([cfg], tmp_path / TS, "exp")
    assert logger.kwargs == dict(save_dir=str(tmp_path / TS / "vis_data"), name="exp", project="proj", entity="team")
    LoggerVisBackend(logger).add_graph(model := torch.nn.Linear(1, 1), None)
    assert logger.watched == [(model, dict(log="all", log_freq=10))]
    (named,) = loggers_from_vis_backends(
        [dict(type="WandbVisBackend", init_kwargs=dict(name="run", dir=str(tmp_path / "w")))], tmp_path, "exp")
    assert named.kwargs == dict(save_dir=str(tmp_path / "w"), name="run")


def test_mlflow_logger_arguments(monkeypatch, tmp_path):
    monkeypatch.setattr(vis_loggers, "_installed", lambda name: True)
    monkeypatch.setattr(pl_loggers, "MLFlowLogger", _Recorder)
    cfg = dict(type="MLflowVisBackend", exp_name="e", tags=dict(a="1"), params=dict(lr=0.1),
               tracking_uri="http://x", artifact_location="/art")
    (logger,) = loggers_from_vis_backends([cfg], tmp_path / TS, "exp")
    assert logger.kwargs == dict(experiment_name="e", run_name="exp", tracking_uri="http://x", tags=dict(a="1"),
                                 save_dir=str(tmp_path / TS / "vis_data"), artifact_location="/art")
    assert logger.hyperparams == [dict(lr=0.1)]
    (default,) = loggers_from_vis_backends([dict(type="MLflowVisBackend", run_name="r")], tmp_path, "exp")
    assert (default.kwargs["experiment_name"], default.kwargs["run_name"], default.kwargs["tracking_uri"]) == (
        "Default", "r", None)
    assert default.hyperparams == []


def test_backend_adapter_forwards_to_other_loggers(tmp_path):
    logger = pl_loggers.CSVLogger(tmp_path, name="", version="v")
    backend = LoggerVisBackend(logger)
    backend.add_scalars({"loss": 0.5}, step=3, file_path="ignored.json")
    backend.add_scalar("acc", 0.25, step=4)
    backend.add_config(Config(dict(model=dict(depth=50))))
    backend.add_graph(torch.nn.Linear(1, 1), None)  # no graph for backends other than wandb
    logger.save()
    assert (tmp_path / "v" / "metrics.csv").read_text().splitlines() == ["acc,loss,step", ",0.5,3", "0.25,,4"]
    assert "depth: 50" in (tmp_path / "v" / "hparams.yaml").read_text()
    assert backend.experiment is logger.experiment


def test_no_backends():
    assert loggers_from_vis_backends(None, "unused", "exp") == []
    assert loggers_from_vis_backends([], "unused", "exp") == []


def test_build_visualizer_as_mmengine_runner(mmengine, tmp_path):
    from mmengine.visualization import Visualizer

    default = build_visualizer(None, "exp_default", tmp_path)
    assert type(default) is Visualizer and default.instance_name == "exp_default"
    assert Visualizer.get_current_instance() is default and default._vis_backends == {}
    cfg = dict(type="mmengine.Visualizer", vis_backends=[dict(type="LocalVisBackend")])
    loggers = loggers_from_vis_backends(cfg["vis_backends"], tmp_path, "exp_cfg")
    built = build_visualizer(cfg, "exp_cfg", tmp_path, loggers=loggers)
    assert built.instance_name == "exp_cfg" and set(built._vis_backends) == {"LocalVisLogger"}
    assert built.get_backend("LocalVisLogger").experiment is loggers[0]
    assert cfg["vis_backends"] == [dict(type="LocalVisBackend")]  # the config is not changed
    built.add_config(mmengine.Config(dict(a=1)))
    assert not (tmp_path / "vis_data" / "scalars.json").exists() and (tmp_path / "vis_data" / "config.py").exists()
    assert build_visualizer(default, "other", tmp_path) is default
    with pytest.raises(TypeError, match="visualizer should be Visualizer object"):
        build_visualizer(42, "exp", tmp_path)


def test_build_visualizer_through_our_registry(tmp_path):
    @VISUALIZERS.register_module(name="_VisLoggersTestVisualizer", force=True)
    class Recorded:
        def __init__(self, **kwargs):
            self.kwargs = kwargs
            self._vis_backends = {}

    logger = LocalVisLogger(tmp_path)
    built = build_visualizer(dict(type="_VisLoggersTestVisualizer", save_dir="elsewhere", fig_save_cfg={}),
                             "exp", tmp_path, loggers=[logger])
    assert built.kwargs == dict(name="exp", save_dir="elsewhere", fig_save_cfg={}, vis_backends=None)
    assert built._vis_backends["LocalVisLogger"].logger is logger


def test_build_visualizer_without_mmengine(monkeypatch, tmp_path):
    monkeypatch.setattr(vis_loggers, "_installed", lambda name: name != "mmengine")
    assert build_visualizer(None, "exp", tmp_path) is None
    assert build_visualizer(dict(type="Visualizer"), "exp", tmp_path) is None
