"""The option list (mm2lightning.runner.options) against mmengine's own signatures, each refusal by name, the README.

A new argument in MMEngine's Runner, loops, default hooks or LogProcessor, or a toolbox flag, that the list does
not name fails here: nothing can be accepted and silently ignored.
"""

from __future__ import annotations

import ast
import inspect
import re
import sysconfig
from pathlib import Path

import pytest
import torch
from torch.utils.data import DataLoader

from mm2lightning.cli import main
from mm2lightning.runner import Runner
from mm2lightning.runner.options import OPTIONS, UnsupportedOptionError, markdown_table

ROOT = Path(__file__).resolve().parents[2]
# The flags of the OpenMMLab toolboxes' tools/train.py and tools/test.py (mmpretrain 1.2, mmdet 3.3, mmseg 1.2),
# as their argparse parsers define them; installed toolboxes' own files are read too (test below).
TOOLBOX_FLAGS = {
    "tools/train.py": "config --work-dir --resume --amp --no-validate --auto-scale-lr --no-pin-memory "
    "--no-persistent-workers --cfg-options --launcher --local_rank",
    "tools/test.py": "config checkpoint --work-dir --out --out-item --cfg-options --amp --show-dir --show --interval "
    "--wait-time --no-pin-memory --tta --launcher --local_rank",
}
# Where each MMEngine signature's arguments are given (the runner, dataloader and evaluator are the Runner's).
SIGNATURES = {
    "Runner": ("mmengine.runner", "Runner"),
    "train_cfg": ("mmengine.runner", "EpochBasedTrainLoop", "IterBasedTrainLoop"),
    "val_cfg": ("mmengine.runner", "ValLoop"),
    "test_cfg": ("mmengine.runner", "TestLoop"),
    "CheckpointHook": ("mmengine.hooks", "CheckpointHook"),
    "LoggerHook": ("mmengine.hooks", "LoggerHook"),
    "LogProcessor": ("mmengine.runner", "LogProcessor"),
}
NOT_OPTIONS = {"self", "runner", "dataloader", "evaluator", "args", "kwargs"}


def names_at(place: str) -> set[str]:
    return {o.name for o in OPTIONS if o.place == place}


@pytest.mark.parametrize("place", sorted(SIGNATURES))
def test_every_mmengine_argument_is_listed(mmengine, place):
    import importlib

    module_name, *classes = SIGNATURES[place]
    module = importlib.import_module(module_name)
    arguments = {
        name for cls in classes for name in inspect.signature(getattr(module, cls).__init__).parameters
    } - NOT_OPTIONS
    if place == "train_cfg":
        arguments |= {"type", "by_epoch"}  # how the Runner chooses the loop
    if place in ("val_cfg", "test_cfg", "CheckpointHook", "LoggerHook"):
        arguments |= {"type"} if place.endswith("_cfg") else {"priority"}  # a hook config's priority
    listed = names_at(place) | ({"type"} if place in ("val_cfg", "test_cfg") else set())
    assert arguments <= listed, f"{place}: not in the option list: {sorted(arguments - listed)}"
    assert listed <= arguments, f"{place}: listed but not MMEngine's: {sorted(listed - arguments)}"


def test_env_cfg_and_default_hooks_entries_are_listed(mmengine):
    from mmengine.runner import Runner as MMRunner

    source = inspect.getsource(MMRunner.setup_env)
    assert set(re.findall(r"env_cfg\.get\('(\w+)'", source)) == names_at("env_cfg")
    default_hooks = inspect.getsource(MMRunner.register_default_hooks)
    assert set(re.findall(r"(\w+)=dict\(type='\w+Hook'", default_hooks)) == names_at("default_hooks")
    config_keys = set(re.findall(r"self\.cfg\.get\('(\w+)'", inspect.getsource(MMRunner)))
    assert config_keys <= names_at("cfg"), sorted(config_keys - names_at("cfg"))


@pytest.mark.parametrize("place", sorted(TOOLBOX_FLAGS))
def test_every_toolbox_flag_is_listed_and_parsed(place):
    flags = set(TOOLBOX_FLAGS[place].split())
    installed = _installed_toolbox_flags(place)
    assert installed <= flags, f"an installed toolbox's {place} has flags {sorted(installed - flags)} not listed"
    assert flags == names_at(place)


def _installed_toolbox_flags(place: str) -> set[str]:
    """The flags of the installed toolboxes' own scripts (mmpretrain/mmdet/mmseg ship them in .mim/tools)."""
    flags: set[str] = set()
    for script in Path(sysconfig.get_paths()["purelib"]).glob(f"mm*/.mim/{place}"):
        for node in ast.walk(ast.parse(script.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument" and node.args:
                flags.add(node.args[0].value)
    return flags


def test_every_option_has_a_status_and_refusals_a_reason():
    assert len({(o.place, o.name) for o in OPTIONS}) == len(OPTIONS)
    for option in OPTIONS:
        assert option.status in ("same", "partly", "refused")
        if option.status != "same" or option.place == "cfg":
            assert option.note, option


def test_the_readme_holds_the_option_table():
    readme = (ROOT / "README.md").read_text()
    assert markdown_table() in readme, "README.md's Runner table is not markdown_table()'s: paste it again"


# ------------------------------------------------------------------------ each refused value, refused by name
def _runner(tmp_path, **kwargs) -> Runner:
    data = [(torch.randn(2), torch.randn(1)) for _ in range(4)]
    from mm2lightning.model import BaseModel

    class Model(BaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(2, 1)

        def forward(self, x, y, mode="tensor"):
            return dict(loss=(self.linear(x) - y).pow(2).mean())

    args = dict(model=Model(), work_dir=str(tmp_path), train_dataloader=DataLoader(data, batch_size=2),
                train_cfg=dict(by_epoch=True, max_epochs=1), optim_wrapper=dict(optimizer=dict(type="SGD", lr=0.1)))
    args.update(kwargs)
    return Runner(**args)


REFUSED_RUNNER = {  # (place, option): the Runner arguments that give it a value MMEngine would carry out
    ("Runner", "load_from"): dict(load_from="s3://bucket/epoch_1.pth"),
    ("train_cfg", "type"): dict(train_cfg=dict(type="MyTrainLoop", max_epochs=1)),
    ("CheckpointHook", "priority"): dict(default_hooks=dict(checkpoint=dict(type="CheckpointHook", priority="LOW"))),
    ("CheckpointHook", "file_client_args"): dict(default_hooks=dict(checkpoint=dict(type="CheckpointHook", file_client_args=dict(backend="disk")))),
    ("CheckpointHook", "backend_args"): dict(default_hooks=dict(checkpoint=dict(type="CheckpointHook", backend_args=dict(backend="local")))),
    ("LoggerHook", "priority"): dict(default_hooks=dict(logger=dict(type="LoggerHook", priority="VERY_HIGH"))),
    # MMEngine's own check refuses file_client_args without out_dir (which is refused): its ValueError
    ("LoggerHook", "file_client_args"): dict(default_hooks=dict(logger=dict(type="LoggerHook", file_client_args=dict(backend="disk")))),
    ("LoggerHook", "backend_args"): dict(default_hooks=dict(logger=dict(type="LoggerHook", backend_args=dict(backend="local")))),
    ("default_hooks", "runtime_info"): dict(default_hooks=dict(runtime_info=None)),
    ("env_cfg", "dist_cfg"): dict(env_cfg=dict(dist_cfg=dict(backend="gloo", init_method="tcp://x:1"))),
    ("cfg", "strategy"): dict(launcher="pytorch", cfg=dict(strategy=dict(type="DeepSpeedStrategy"))),
    ("cfg", "runner_type"): dict(cfg=dict(runner_type="MyRunner")),
}
REFUSED_RUNNER[("Runner", "train_cfg")] = REFUSED_RUNNER[("train_cfg", "type")]
MMENGINE_ERRORS = {("LoggerHook", "file_client_args"): ValueError}


def test_every_refusal_has_a_case_here():
    cases = set(REFUSED_RUNNER) | {("tools/train.py", "--launcher"), ("tools/test.py", "--launcher")}
    # test_runner_surface.py: every refused Runner attribute (parametrized over the list), hooks and resume
    cases |= {(o.place, o.name) for o in OPTIONS if o.place == "Runner attribute" and o.status == "refused"}
    cases |= {("Runner attribute", "hooks"), ("Runner attribute", "resume")}
    # test_runner_surface.py::test_loop_builders_as_mmengines: what the loop builders refuse
    cases |= {("Runner attribute", f"build_{stage}_loop") for stage in ("train", "val", "test")}
    listed = {(o.place, o.name) for o in OPTIONS if o.status != "same"}
    assert listed <= cases, f"refused or partly-carried options without a test case: {sorted(listed - cases)}"


@pytest.mark.parametrize("key", sorted(REFUSED_RUNNER), ids=lambda key: f"{key[0]}.{key[1]}")
def test_a_refused_value_raises_an_error_naming_the_option(tmp_path, monkeypatch, key):
    for variable, value in dict(WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", RANK="0", LOCAL_RANK="0").items():
        monkeypatch.setenv(variable, value)
    kwargs = dict(REFUSED_RUNNER[key])
    runner_type_cfg = kwargs.get("cfg", {}).get("runner_type")
    with pytest.raises(MMENGINE_ERRORS.get(key, UnsupportedOptionError)) as error:
        if runner_type_cfg is not None:
            Runner.from_cfg(dict(kwargs["cfg"], model=dict(type="NoModelNeeded"), work_dir=str(tmp_path)))
        else:
            runner = _runner(tmp_path, **kwargs)
            runner.trainer  # noqa: B018 - strategies are built with the Trainer
    message = str(error.value)
    assert key[1] in message, message


def test_launcher_mpi_outside_mpirun_exits_2_naming_what_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(str(ROOT / "tests" / "cli"))  # the config's custom_imports
    monkeypatch.delenv("OMPI_COMM_WORLD_SIZE", raising=False)
    config = ROOT / "tests" / "cli" / "configs" / "toy.yaml"
    assert main(["train", str(config), "--work-dir", str(tmp_path), "--launcher", "mpi"]) == 2
    err = capsys.readouterr().err
    assert "launcher='mpi' expects the processes to be started by Open MPI's mpirun" in err, err
