"""Checkpoints by URL and model-zoo name (load_from, resume, init_cfg Pretrained), against mmengine's loader."""

from __future__ import annotations

import functools
import http.server
import json
import sys
import threading
import uuid

import pytest
import torch
from test_runner_logging import _run, make_model_class

from mm2lightning.evaluator import BaseMetric
from mm2lightning.model import BaseModel
from mm2lightning.runner import Runner
from mm2lightning.runner.options import UnsupportedOptionError
from mm2lightning.runner.remote import resolve_checkpoint


@pytest.fixture
def server(tmp_path, monkeypatch):
    """A local HTTP server for tmp_path/served, with torch's hub cache and MMEngine's home under tmp_path."""
    served = tmp_path / "served"
    served.mkdir()
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.setenv("MMENGINE_HOME", str(tmp_path / "mmengine_home"))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _weights(seed: int) -> dict[str, torch.Tensor]:
    torch.manual_seed(seed)
    return make_model_class(BaseModel)().state_dict()


def _fresh(runner_cls, base, work_dir):
    return runner_cls(model=make_model_class(base)(), work_dir=str(work_dir), experiment_name=uuid.uuid4().hex[:8])


def test_load_from_a_url_and_an_openmmlab_name_equals_mmengine(mmengine, server, tmp_path):
    from mmengine.model import BaseModel as MMBaseModel
    from mmengine.runner import Runner as MMRunner

    served, url = server
    torch.save(dict(state_dict=_weights(7)), served / "toy_weights.pth")
    (tmp_path / "mmengine_home").mkdir()
    (tmp_path / "mmengine_home" / "open_mmlab.json").write_text(json.dumps({"toy": f"{url}/toy_weights.pth"}))
    for name in (f"{url}/toy_weights.pth", "open-mmlab://toy"):
        ours, ref = _fresh(Runner, BaseModel, tmp_path / "ours"), _fresh(MMRunner, MMBaseModel, tmp_path / "ref")
        ours.load_checkpoint(name)
        ref.load_checkpoint(name)
        for key, value in ref.model.state_dict().items():
            assert torch.equal(ours.model.state_dict()[key], value), (name, key)
            assert torch.equal(value, _weights(7)[key])
    cached = tmp_path / "torch_home" / "hub" / "checkpoints" / "toy_weights.pth"
    assert cached.is_file() and resolve_checkpoint(f"{url}/toy_weights.pth") == cached  # MMEngine's cache place


def test_pretrained_init_cfg_and_resume_from_urls(server, tmp_path):
    served, url = server
    torch.save(dict(state_dict=_weights(3)), served / "pretrained.pth")

    class Pretrained(make_model_class(BaseModel)):
        def __init__(self) -> None:
            super().__init__()
            self.init_cfg = dict(type="Pretrained", checkpoint=f"{url}/pretrained.pth")

    model = Pretrained()
    model.init_weights()
    for key, value in _weights(3).items():
        assert torch.equal(model.state_dict()[key], value), key

    first = _run(Runner, BaseModel, BaseMetric, tmp_path / "first", None, train_cfg=dict(by_epoch=True, max_epochs=1),
                 default_hooks=dict(checkpoint=dict(type="CheckpointHook", interval=1)))
    (served / "epoch_1.ckpt").write_bytes((tmp_path / "first" / "epoch_1.ckpt").read_bytes())
    resumed = _run(Runner, BaseModel, BaseMetric, tmp_path / "second", None, train_cfg=dict(by_epoch=True, max_epochs=2),
                   resume=True, load_from=f"{url}/epoch_1.ckpt", default_hooks=dict(checkpoint=None))
    assert resumed.iter == 20 and first.iter == 10  # went on from the downloaded checkpoint
    assert (tmp_path / "torch_home" / "hub" / "checkpoints" / "epoch_1.ckpt").is_file()  # kept in the cache


@pytest.mark.parametrize("name, error, match", [
    ("s3://bucket/model.pth", UnsupportedOptionError, "the scheme is not supported"),
    ("open-mmlab://no_such_model", KeyError, "'no_such_model' is not in MMEngine's model list"),
])
def test_unsupported_schemes_and_unknown_names_are_named(mmengine, server, name, error, match):
    with pytest.raises(error, match=match):
        resolve_checkpoint(name)


def test_model_zoo_names_without_mmengine_say_what_to_install(server, monkeypatch):
    monkeypatch.setitem(sys.modules, "mmengine.runner", None)  # as if mmengine were not installed
    with pytest.raises(ValueError, match="install mmengine .* or give the checkpoint's https:// URL"):
        resolve_checkpoint("open-mmlab://resnet50")
