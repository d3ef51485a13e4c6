"""Checkpoint interop: safe loading of MMEngine's and our checkpoints, conversion to MMEngine's layout."""

from __future__ import annotations

import collections
import copy
import itertools
import logging
import os
import pickle
import shlex
import sys
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn
from torch.utils.data import DataLoader

from mm2lightning import MMLightningModule
from mm2lightning.model import BaseModel
from mm2lightning.runner.checkpoint import (
    CheckpointError,
    HistoryBufferData,
    checkpoint_kind,
    convert_checkpoint,
    load_checkpoint_file,
    model_state_dict,
    save_checkpoint_atomic,
    to_mmengine,
)

TESTS = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(TESTS / "lightning"), str(TESTS)]
from gan import GAN_OPTIM, GAN_SCHEDULERS, make_gan_class, mmengine_optim_wrapper_dict, ring_dataset  # noqa: E402
from models import net_data  # noqa: E402

OPTIM = dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9))
SCHEDULERS = [dict(type="LinearLR", start_factor=0.2, by_epoch=False, end=7), dict(type="MultiStepLR", milestones=[2])]


def make_net_class(base: type) -> type:
    """tests/lightning/models.py's Net, on mm2lightning's or mmengine's BaseModel."""

    class Net(base):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.body = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))

        def forward(self, x, y, mode="tensor"):
            out = self.body(x)
            if mode == "loss":
                return dict(loss_mse=(out - y).pow(2), loss_l1=(out - y).abs() * 0.1)
            return out

    return Net


def fit(module: MMLightningModule, data: DataLoader, tmp_path: Path, max_epochs: int, **checkpoint) -> L.Trainer:
    """Train; ``checkpoint``: ModelCheckpoint arguments (files named ``{epoch}`` or ``{step}``)."""
    callbacks = [ModelCheckpoint(dirpath=tmp_path, save_top_k=-1, **checkpoint)] if checkpoint else []
    trainer = L.Trainer(
        accelerator="cpu", devices=1, logger=False, enable_checkpointing=bool(checkpoint), enable_progress_bar=False,
        enable_model_summary=False, max_epochs=max_epochs, callbacks=callbacks, default_root_dir=tmp_path,
    )
    trainer.fit(module, data)
    return trainer


def assert_same(a, b, where="checkpoint") -> None:
    """Equal nested content, tensors compared exactly."""
    assert type(a) is type(b), (where, type(a), type(b))
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b), where
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), (where, list(a), list(b))
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    else:
        assert a == b, (where, a, b)


_experiments = itertools.count()


def runner(work_dir: Path, model, **kwargs):
    """An mmengine Runner with a unique experiment name (its MessageHub instance is looked up by that name)."""
    from mmengine.runner import Runner

    return Runner(
        model=model, work_dir=str(work_dir), experiment_name=f"checkpoint_test_{os.getpid()}_{next(_experiments)}",
        log_level="WARNING", **kwargs,
    )


def run(mm_runner, method: str = "train") -> None:
    getattr(mm_runner, method)()
    logging.getLogger("mmengine").handlers.clear()


def resume_recorder():
    """An mmengine hook recording, in before_train (right after load_or_resume), what the Runner resumed."""
    from mmengine.hooks import Hook

    class ResumeRecord(Hook):
        def __init__(self) -> None:
            self.seen: dict = {}

        def before_train(self, runner) -> None:
            schedulers = runner.param_schedulers
            self.seen = dict(
                epoch=runner.epoch,
                iter=runner.iter,
                weights={k: v.clone() for k, v in runner.model.state_dict().items()},
                optimizer=copy.deepcopy(runner.optim_wrapper.state_dict()),
                schedulers=(
                    {name: [s.state_dict() for s in group] for name, group in schedulers.items()}
                    if isinstance(schedulers, dict)
                    else [s.state_dict() for s in schedulers]
                ),
            )

    return ResumeRecord()


# ---------------------------------------------------------------------------------------------- loading
def test_mmengine_runner_checkpoint_loads_without_unpickling_its_objects(mmengine, tmp_path):
    from mmengine.model import BaseModel as MMBaseModel

    model = make_net_class(MMBaseModel)()
    mm = runner(
        tmp_path, model, train_dataloader=DataLoader(net_data(), batch_size=8),
        train_cfg=dict(by_epoch=True, max_epochs=2), optim_wrapper=OPTIM, param_scheduler=copy.deepcopy(SCHEDULERS),
    )
    run(mm)
    path = tmp_path / "epoch_2.pth"
    with pytest.raises(Exception, match="Weights only load failed"):  # what mmengine 0.10.7 itself runs into
        torch.load(path, weights_only=True)

    import numpy as np

    torch.serialization.add_safe_globals([np.dtype])  # a user's own entry, which a load must not remove
    try:
        allowed_before = set(map(repr, torch.serialization.get_safe_globals()))
        checkpoint = load_checkpoint_file(path)
        assert set(map(repr, torch.serialization.get_safe_globals())) == allowed_before  # torch's state untouched
    finally:
        torch.serialization.clear_safe_globals()

    assert checkpoint_kind(checkpoint) == "mmengine"
    weights = model_state_dict(checkpoint)
    assert list(weights) == list(model.state_dict())
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())
    assert checkpoint["meta"]["epoch"] == 2 and checkpoint["meta"]["iter"] == 10

    trusted = torch.load(path, weights_only=False)  # our own file: the reference for the stand-ins' content
    scalars = checkpoint["message_hub"]["log_scalars"]
    assert list(scalars) == list(trusted["message_hub"]["log_scalars"]) and "train/loss" in scalars
    for key, buffer in trusted["message_hub"]["log_scalars"].items():
        assert isinstance(scalars[key], HistoryBufferData)
        assert (scalars[key].log_history == buffer._log_history).all()
        assert (scalars[key].count_history == buffer._count_history).all()
        assert scalars[key].max_length == buffer.max_length
    assert checkpoint["message_hub"]["runtime_info"] == trusted["message_hub"]["runtime_info"]  # numpy scalars too
    assert_same(checkpoint["optimizer"], trusted["optimizer"])
    assert_same(checkpoint["param_schedulers"], trusted["param_schedulers"])


def _write_marker(path: str) -> None:
    Path(path).write_text("code from the checkpoint ran")


class _RunsFunction:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (_write_marker, (str(self.marker),))


class _RunsShell:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(str(self.marker))}",))


@pytest.mark.parametrize(
    "payload, refused",
    [(_RunsFunction, f"{__name__}._write_marker"), (_RunsShell, "posix.system" if os.name == "posix" else "nt.system")],
    ids=["function", "os.system"],
)
def test_code_running_pickle_is_refused(tmp_path, payload, refused):
    marker = tmp_path / "MARKER"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "meta": payload(marker)}, path)
    with pytest.raises(CheckpointError) as err:
        load_checkpoint_file(path)
    message = str(err.value)
    assert "\n" not in message and str(path) in message and refused in message
    assert "could run code from the file" in message
    assert not marker.exists()
    torch.load(path, weights_only=False)  # the file really is harmful: an unsafe load runs the payload
    assert marker.exists()


def test_a_plain_pickle_file_is_not_read(tmp_path):
    marker = tmp_path / "MARKER"
    path = tmp_path / "protocol4.pth"
    path.write_bytes(pickle.dumps(_RunsFunction(marker), protocol=4))  # a plain pickle, not torch.save's archive
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint .*zip archive"):
        load_checkpoint_file(path)
    assert not marker.exists()


def test_allowlisted_getattr_serves_history_buffer_statistics_only(tmp_path):
    class Reach:
        def __reduce__(self):
            return (getattr, (collections.OrderedDict, "fromkeys"))

    torch.save({"x": Reach()}, tmp_path / "getattr.pth")
    with pytest.raises(CheckpointError, match=r"builtins\.getattr\(OrderedDict, 'fromkeys'\)"):
        load_checkpoint_file(tmp_path / "getattr.pth")


def test_files_that_are_not_checkpoints(tmp_path):
    (tmp_path / "notes.txt").write_text("hello, not a checkpoint\n")
    (tmp_path / "empty.pth").write_bytes(b"")
    torch.save({"w": torch.ones(3)}, tmp_path / "good.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "good.pth").read_bytes()[:200])
    torch.save([torch.ones(1)], tmp_path / "list.pth")
    for name, match in [
        ("notes.txt", "not a PyTorch checkpoint"),
        ("empty.pth", "not a PyTorch checkpoint"),
        ("cut.pth", "not a PyTorch checkpoint"),  # its zip directory is cut off
        ("list.pth", "holds a list, not a checkpoint dict"),
    ]:
        with pytest.raises(CheckpointError, match=match) as err:
            load_checkpoint_file(tmp_path / name)
        assert str(tmp_path / name) in str(err.value)
    with pytest.raises(FileNotFoundError, match=f"checkpoint not found: {tmp_path / 'missing.pth'}"):
        load_checkpoint_file(tmp_path / "missing.pth")


# ---------------------------------------------------------------------------------------------- layouts
def test_layouts_and_model_weights(tmp_path):
    weights = {"body.0.weight": torch.randn(2, 2), "body.0.bias": torch.randn(2)}
    ddp = {f"module.{k}": v for k, v in weights.items()}
    assert checkpoint_kind(ddp) == "state_dict" and model_state_dict(ddp) == weights
    mm = {"meta": {"epoch": 1}, "state_dict": ddp}
    assert checkpoint_kind(mm) == "mmengine" and model_state_dict(mm) == weights

    module = MMLightningModule(make_net_class(BaseModel)(), optim_wrapper=OPTIM)
    trainer = fit(module, DataLoader(net_data(), batch_size=8), tmp_path, 1)
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    ours = load_checkpoint_file(tmp_path / "last.ckpt")
    assert checkpoint_kind(ours) == "lightning"
    loaded = model_state_dict(ours)
    assert list(loaded) == list(module.model.state_dict())
    assert all(torch.equal(loaded[k], v) for k, v in module.model.state_dict().items())

    foreign = {"pytorch-lightning_version": "2.6.6", "state_dict": {"net.weight": torch.ones(1)}}
    with pytest.raises(CheckpointError, match="no 'model.' entries.*not saved from an MMLightningModule"):
        model_state_dict(foreign)
    for odd in ({"meta": {}, "weights": weights}, {}, {"w": 1.0}):
        with pytest.raises(CheckpointError, match=r"unrecognised checkpoint layout: found \[.*\]; expected an MMEng"):
            checkpoint_kind(odd)


# ---------------------------------------------------------------------------------------------- conversion
def test_meta_epoch_and_iter_match_what_mmengine_saves_at_the_same_points(mmengine, tmp_path):
    """Checkpoints after every epoch and every 3 iterations (5 per epoch), by both; meta must agree."""
    from mmengine.model import BaseModel as MMBaseModel

    data = DataLoader(net_data(), batch_size=8)
    ours = tmp_path / "ours"
    fit(MMLightningModule(make_net_class(BaseModel)(), optim_wrapper=OPTIM), data, ours, 2,
        every_n_epochs=1, filename="{epoch}")
    fit(MMLightningModule(make_net_class(BaseModel)(), optim_wrapper=OPTIM), data, ours, 2,
        every_n_train_steps=3, filename="{step}")
    converted = {
        path.name: to_mmengine(load_checkpoint_file(path))["meta"] for path in ours.glob("*.ckpt")
    }
    mm = runner(
        tmp_path / "mm", make_net_class(MMBaseModel)(), train_dataloader=data,
        train_cfg=dict(by_epoch=True, max_epochs=2), optim_wrapper=OPTIM,
        default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1)),
        custom_hooks=[dict(type="CheckpointHook", interval=3, by_epoch=False)],
    )
    run(mm)
    reference = {path.name: torch.load(path, weights_only=False)["meta"] for path in (tmp_path / "mm").glob("*.pth")}
    pairs = {
        "epoch=0.ckpt": "epoch_1.pth", "epoch=1.ckpt": "epoch_2.pth",
        "step=3.ckpt": "iter_3.pth", "step=6.ckpt": "iter_6.pth", "step=9.ckpt": "iter_9.pth",
    }
    assert set(pairs) == set(converted) and set(pairs.values()) <= set(reference)
    for name, ref_name in pairs.items():
        assert (converted[name]["epoch"], converted[name]["iter"]) == (
            reference[ref_name]["epoch"], reference[ref_name]["iter"]
        ), (name, ref_name)
    assert converted["step=6.ckpt"] == dict(epoch=1, iter=6, converted_from="mm2lightning")


def test_converted_checkpoint_resumes_mmengine_runner(mmengine, tmp_path):
    """Ours with a wrapper and schedulers: mmengine resumes the epoch-1 checkpoint and ends where we end."""
    from mmengine.model import BaseModel as MMBaseModel

    data = DataLoader(net_data(), batch_size=8)  # 5 iterations per epoch
    ours = MMLightningModule(make_net_class(BaseModel)(), optim_wrapper=OPTIM, param_scheduler=SCHEDULERS)
    fit(ours, data, tmp_path, 3, every_n_epochs=1, filename="{epoch}")
    source = load_checkpoint_file(tmp_path / "epoch=0.ckpt")
    path = convert_checkpoint(tmp_path / "epoch=0.ckpt", tmp_path / "mm" / "epoch_1.pth")
    converted = torch.load(path, weights_only=True)  # plain content: no allowlist needed
    assert sorted(converted) == ["message_hub", "meta", "optimizer", "param_schedulers", "state_dict"]

    model = make_net_class(MMBaseModel)()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)  # the checkpoint must overwrite everything
    record = resume_recorder()
    mm = runner(
        tmp_path / "mm", model, train_dataloader=data, train_cfg=dict(by_epoch=True, max_epochs=3),
        optim_wrapper=OPTIM, param_scheduler=copy.deepcopy(SCHEDULERS), load_from=str(path), resume=True,
        default_hooks=dict(checkpoint=None), custom_hooks=[record],
    )
    run(mm)
    seen = record.seen
    assert (seen["epoch"], seen["iter"]) == (1, 5)
    assert_same(seen["weights"], model_state_dict(source), "weights")
    assert_same(seen["optimizer"], source["optimizer_states"][0], "optimizer")
    assert_same(seen["schedulers"], source["mm2lightning"]["param_schedulers"], "schedulers")
    for (name, p), q in zip(ours.model.named_parameters(), model.parameters()):
        assert torch.equal(p, q), name  # the same 2 remaining epochs


@pytest.mark.parametrize("weights_only", [False, True], ids=["full", "weights-only"])
def test_converted_checkpoint_loads_through_load_from(mmengine, tmp_path, weights_only):
    from mmengine.model import BaseModel as MMBaseModel

    ours = MMLightningModule(make_net_class(BaseModel)(), optim_wrapper=OPTIM)
    trainer = fit(ours, DataLoader(net_data(), batch_size=8), tmp_path, 1)
    trainer.save_checkpoint(tmp_path / "last.ckpt", weights_only=weights_only)
    path = convert_checkpoint(tmp_path / "last.ckpt", tmp_path / "last.pth")
    expected = ["message_hub", "meta", "state_dict"] + ([] if weights_only else ["optimizer"])
    assert sorted(torch.load(path, weights_only=True)) == sorted(expected)
    model = make_net_class(MMBaseModel)()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    mm = runner(tmp_path / "mm", model, load_from=str(path))
    run(mm, "load_or_resume")  # what Runner.train/val/test do first
    assert list(model.state_dict()) == list(ours.model.state_dict())
    assert all(torch.equal(model.state_dict()[k], v) for k, v in ours.model.state_dict().items())


def test_converted_optim_wrapper_dict_resumes_per_name(mmengine, tmp_path):
    from mmengine.model import BaseModel as MMBaseModel

    data = DataLoader(ring_dataset(), batch_size=8)  # 8 iterations per epoch
    ours = MMLightningModule(make_gan_class(BaseModel)(), optim_wrapper=GAN_OPTIM, param_scheduler=GAN_SCHEDULERS)
    fit(ours, data, tmp_path, 1).save_checkpoint(tmp_path / "gan.ckpt")
    source = load_checkpoint_file(tmp_path / "gan.ckpt")
    path = convert_checkpoint(tmp_path / "gan.ckpt", tmp_path / "gan.pth")
    converted = torch.load(path, weights_only=True)
    assert list(converted["optimizer"]) == list(GAN_OPTIM) == list(converted["param_schedulers"])

    model = make_gan_class(MMBaseModel)()
    record = resume_recorder()
    mm = runner(
        tmp_path / "mm", model, train_dataloader=data, train_cfg=dict(by_epoch=True, max_epochs=1),
        optim_wrapper=mmengine_optim_wrapper_dict(model), param_scheduler=copy.deepcopy(GAN_SCHEDULERS),
        load_from=str(path), resume=True, default_hooks=dict(checkpoint=None), custom_hooks=[record],
    )
    run(mm)  # resumed at the end of epoch 1 of 1: nothing left to train
    seen = record.seen
    assert (seen["epoch"], seen["iter"]) == (1, 8)
    assert_same(seen["weights"], model_state_dict(source), "weights")
    names = list(source["mm2lightning"]["optim_wrapper"])
    assert_same(seen["optimizer"], dict(zip(names, source["optimizer_states"])), "optimizer")
    assert_same(seen["schedulers"], source["mm2lightning"]["param_schedulers"], "schedulers")


def test_amp_wrapper_extras_are_carried(tmp_path):
    optim = dict(type="AmpOptimWrapper", dtype="float16", optimizer=dict(type="SGD", lr=0.05),
                 loss_scale=dict(init_scale=2.0**8), paramwise_cfg=dict(bias_lr_mult=2.0))
    module = MMLightningModule(make_net_class(BaseModel)(), optim_wrapper=optim, param_scheduler=SCHEDULERS[1])
    fit(module, DataLoader(net_data(), batch_size=8), tmp_path, 1).save_checkpoint(tmp_path / "amp.ckpt")
    converted = to_mmengine(load_checkpoint_file(tmp_path / "amp.ckpt"))
    assert_same(converted["optimizer"], module.optim_wrapper.state_dict(), "optimizer")  # MMEngine's layout
    assert {"loss_scaler", "base_param_settings"} <= set(converted["optimizer"])


def test_convert_is_repeatable_and_failures_leave_no_file(tmp_path):
    module = MMLightningModule(make_net_class(BaseModel)(), optim_wrapper=OPTIM, param_scheduler=SCHEDULERS)
    fit(module, DataLoader(net_data(), batch_size=8), tmp_path, 1).save_checkpoint(tmp_path / "src.ckpt")
    src = tmp_path / "src.ckpt"
    first = convert_checkpoint(src, tmp_path / "a" / "b" / "one.pth")
    second = convert_checkpoint(src, tmp_path / "two.pth")
    assert_same(torch.load(first, weights_only=True), torch.load(second, weights_only=True))

    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.pth").write_bytes(b"previous")
    source_bytes = src.read_bytes()
    with pytest.raises(ValueError, match=f"would overwrite its source {src}"):
        convert_checkpoint(src, src)
    os.link(src, out / "hardlink.ckpt")
    with pytest.raises(ValueError, match="would overwrite its source"):
        convert_checkpoint(src, out / "hardlink.ckpt")
    assert src.read_bytes() == source_bytes
    (out / "hardlink.ckpt").unlink()

    with pytest.raises(FileNotFoundError, match=f"checkpoint not found: {tmp_path / 'missing.ckpt'}"):
        convert_checkpoint(tmp_path / "missing.ckpt", out / "keep.pth")
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint"):
        convert_checkpoint(tmp_path / "notes.txt", out / "keep.pth")
    torch.save({"meta": {}, "state_dict": {"w": torch.ones(1)}}, tmp_path / "mm.pth")
    with pytest.raises(CheckpointError, match="checkpoints .* this checkpoint's layout is 'mmengine'"):
        convert_checkpoint(tmp_path / "mm.pth", out / "keep.pth")
    assert [p.name for p in out.iterdir()] == ["keep.pth"] and (out / "keep.pth").read_bytes() == b"previous"


def test_atomic_save_refuses_non_plain_content_without_leaving_a_file(tmp_path):
    np = pytest.importorskip("numpy")
    torch.serialization.add_safe_globals([np.ndarray, np.dtype])  # this process's allowlist does not count
    try:
        with pytest.raises(CheckpointError, match=r"not written.*numpy.*weights_only=True"):
            save_checkpoint_atomic({"x": np.zeros(2)}, tmp_path / "x.pth", plain=True)
    finally:
        torch.serialization.clear_safe_globals()
    assert list(tmp_path.iterdir()) == []
    save_checkpoint_atomic({"x": np.zeros(2)}, tmp_path / "x.pth")  # not asked to be plain: written
    assert [p.name for p in tmp_path.iterdir()] == ["x.pth"]


# ------------------------------------------------------------------------------------- crafted numpy data
def _dtype(code, state=None):
    import numpy as np

    class Dtype:
        def __reduce__(self):
            return (np.dtype, (code, False, True), state or (3, "<", None, None, None, -1, -1, 0))

    return Dtype()


def _array(dtype, data: bytes, shape=(1,)):
    import numpy as np

    try:
        from numpy._core import multiarray
    except ImportError:
        from numpy.core import multiarray

    class Array:
        def __reduce__(self):
            return (multiarray._reconstruct, (np.ndarray, (0,), b"b"), (1, shape, dtype, False, data))

    return Array()


@pytest.mark.parametrize(
    "meta, match",
    [
        # A float dtype given an object field without the object flag: numpy would read raw bytes as a pointer.
        (_array(_dtype("f8", (3, "|", None, ("a",), {"a": (_dtype("O"), 0)}, 8, 1, 1)), b"A" * 8),
         r"could run code from the file: the file refers to numpy.dtype\('O'\)"),
        (_array(_dtype("f8", (3, "|", None, None, None, 8, 1, 0)), b"A" * 8),  # an element size that is not its own
         "could run code from the file: the file refers to numpy.dtype with fields or sub-arrays"),
        (_array(_dtype("V8"), b"A" * 8), r"numpy.dtype\('V8'\), and only boolean and numeric dtypes"),
        (_array(_dtype("f8"), b"A" * 4, shape=(4,)), r"not a readable checkpoint .*needs 32 bytes, the file holds 4"),
    ],
    ids=["object-field", "bad-itemsize", "void", "short-data"],
)
def test_crafted_numpy_data_is_refused(tmp_path, meta, match):
    pytest.importorskip("numpy")
    path = tmp_path / "crafted.pth"
    torch.save({"state_dict": {"w": torch.ones(1)}, "meta": {"x": meta}}, path)
    with pytest.raises(CheckpointError, match=match) as err:
        load_checkpoint_file(path)
    assert "\n" not in str(err.value)


def test_numeric_numpy_arrays_and_scalars_load_as_new_arrays(tmp_path):
    np = pytest.importorskip("numpy")
    values = {"f": np.arange(6, dtype=">f4").reshape(2, 3), "i": np.asfortranarray(np.arange(6).reshape(2, 3)),
              "b": np.array([True, False]), "s": np.float64(2.5), "n": np.int32(-3), "e": np.zeros((0, 2))}
    torch.save({"state_dict": {"w": torch.ones(1)}, "meta": values}, tmp_path / "np.pth")
    loaded = load_checkpoint_file(tmp_path / "np.pth")["meta"]
    for key, value in values.items():
        assert type(loaded[key]) is type(value) and loaded[key].dtype == value.dtype
        assert np.array_equal(loaded[key], value)
    assert loaded["i"].flags.f_contiguous and loaded["f"].flags.writeable


def test_invalid_sparse_tensors_are_refused(tmp_path):
    """torch skips sparse invariants on load by default; an index out of range would be written out of bounds later."""
    bad = torch.sparse_coo_tensor(torch.tensor([[10**6]]), torch.tensor([1.0]), (4,), check_invariants=False)
    torch.save({"state_dict": {"w": bad}}, tmp_path / "sparse.pth")
    with pytest.raises(CheckpointError, match="not a readable checkpoint .*size is inconsistent with indices"):
        load_checkpoint_file(tmp_path / "sparse.pth")
    good = torch.sparse_coo_tensor(torch.tensor([[1]]), torch.tensor([2.0]), (4,))
    torch.save({"state_dict": {"w": good}}, tmp_path / "good.pth")
    assert torch.equal(load_checkpoint_file(tmp_path / "good.pth")["state_dict"]["w"].to_dense(), good.to_dense())


def test_concurrent_loads_all_succeed(tmp_path):
    """Loads hold the stand-ins under a lock: one finishing does not take them away from another."""
    from concurrent.futures import ThreadPoolExecutor

    np = pytest.importorskip("numpy")
    torch.save({"state_dict": {"w": torch.ones(2)}, "meta": {"a": np.arange(3), "s": np.float32(1.5)}}, tmp_path / "np.pth")
    with ThreadPoolExecutor(4) as pool:
        loaded = list(pool.map(lambda _: load_checkpoint_file(tmp_path / "np.pth"), range(40)))
    assert all(np.array_equal(c["meta"]["a"], np.arange(3)) and c["meta"]["s"] == np.float32(1.5) for c in loaded)
