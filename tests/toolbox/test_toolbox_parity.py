"""A toolbox config (default_scope='minitb', a miniature toolbox on mmengine's registries) through the
``mm2lightning`` command ends where MMEngine's Runner ends, and ``mm2lightning test`` reports MMEngine's metric."""

from __future__ import annotations

import json
import os
import pickle
import socket
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from mm2lightning.runner.checkpoint import load_checkpoint_file

pytest.importorskip("mmengine", reason="the toolbox parity tests compare with mmengine's Runner")

HERE = Path(__file__).resolve().parent
CONFIGS = HERE / "minitb" / ".mim" / "configs" / "mini"
COMMAND = Path(sys.executable).with_name("mm2lightning")
sys.path.insert(0, str(HERE))
from minitb_data import write_minitb_data  # noqa: E402

# config -> its last checkpoint. Epoch-based, and iteration-based (MMEngine's loop makes its data iterator before
# the weights are initialised; a pass over the data ends mid-run and between validations).
RUNS = {"mini_cls.py": "epoch_3", "mini_cls_iter.py": "iter_14"}


def torchrun(*args: str) -> list[str]:
    """``python -m torch.distributed.run`` with 2 processes on a free port, then ``args``."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", f"--master_port={port}", *args]


@pytest.fixture(scope="module", params=list(RUNS))
def runs(request, tmp_path_factory):
    """MMEngine's and mm2lightning's runs of the same toolbox config, data and seed."""
    root = tmp_path_factory.mktemp("minitb")
    config = CONFIGS / request.param
    env = dict(
        os.environ,
        MINITB_DATA=str(write_minitb_data(root / "data")),
        PYTHONPATH=os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
        TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1",  # MMEngine 0.10.7 loads its own checkpoints with torch.load
    )

    def run(*args: str) -> subprocess.CompletedProcess:
        done = subprocess.run(args, capture_output=True, text=True, timeout=300, env=env)
        assert done.returncode == 0, done.stderr[-4000:]
        return done

    reference = run(sys.executable, str(HERE / "mmengine_train.py"), str(config), str(root / "mmengine"))
    ours = run(str(COMMAND), "train", str(config), "--work-dir", str(root / "ours"))
    return root, run, config, RUNS[request.param], reference, ours


def test_training_a_toolbox_config_equals_mmengines_runner(runs):
    """init_cfg, a backbone's own train() (norm_eval), data order through a toolbox sampler and a batch sampler
    that cleans up after its last batch, augmentation draws, the constructor, a hook, the schedulers."""
    root, _, _, last, _, _ = runs
    reference = load_checkpoint_file(root / "mmengine" / f"{last}.pth")["state_dict"]
    ours = torch.load(root / "ours" / f"{last}.ckpt", weights_only=True)["state_dict"]
    assert set(ours) == {f"model.{name}" for name in reference}
    for name, value in reference.items():
        torch.testing.assert_close(ours[f"model.{name}"], value, rtol=0, atol=1e-5, msg=name)


def test_metric_names_and_best_checkpoint_follow_mmengine(runs):
    root, _, _, _, reference, ours = runs
    mmengine_best = sorted(p.stem for p in (root / "mmengine").glob("best_*.pth"))
    assert len(mmengine_best) == 1 and mmengine_best[0].startswith("best_mini_top1_")
    assert sorted(p.stem for p in (root / "ours").glob("best_*.ckpt")) == mmengine_best

    def val_lines(done: subprocess.CompletedProcess) -> list[str]:
        lines = (done.stdout + done.stderr).splitlines()
        return [line.split(" - ")[-1].split("data_time")[0] for line in lines if "(val) [" in line and "top1" in line]

    assert val_lines(ours) == val_lines(reference) and val_lines(ours)


def test_mm2lightning_test_reports_mmengines_metric(runs):
    root, run, config, last, _, _ = runs
    run(sys.executable, str(HERE / "mmengine_train.py"), str(config), str(root / "mmengine_test"), "test",
        str(root / "mmengine" / f"{last}.pth"))
    expected = json.loads((root / "mmengine_test" / "metrics.json").read_text())
    assert list(expected) == ["mini/top1"]
    done = run(str(COMMAND), "test", str(config), str(root / "ours" / f"{last}.ckpt"), "--work-dir", str(root / "test"))
    line = done.stdout.strip().splitlines()[-1]
    name, value = line.split("=")
    assert name == "mini/top1" and float(value) == pytest.approx(expected["mini/top1"], abs=1e-4)
    assert_same_test_json(root / "test", root / "mmengine_test")


def assert_same_test_json(ours: Path, reference: Path) -> None:
    """LoggerHook's ``<log_dir>/<timestamp>.json`` after a test: the test epoch's tag, as MMEngine's."""
    (theirs_file,) = reference.glob("*/*.json")
    (our_file,) = ours.glob("*/*.json")
    assert our_file.name == f"{our_file.parent.name}.json"
    theirs, mine = json.loads(theirs_file.read_text()), json.loads(our_file.read_text())
    assert list(mine) == list(theirs) and "time" in theirs
    for key, value in theirs.items():
        if key not in ("time", "data_time"):  # IterTimerHook's clock
            assert mine[key] == pytest.approx(value, abs=1e-4), key


def test_a_toolbox_test_loop_runs_its_own_run_as_mmengines(runs):
    """test_cfg naming a toolbox's loop (LOOPS): built in its scope with the runner, run by its own run()."""
    root, run, config, last, _, _ = runs
    user = root / f"tta_{config.name}"
    user.write_text(f"_base_ = [{str(config)!r}]\ntest_cfg = dict(type='MiniTwicePassTestLoop', passes=2)\n")
    run(sys.executable, str(HERE / "mmengine_train.py"), str(user), str(root / "mmengine_loop"), "test",
        str(root / "mmengine" / f"{last}.pth"))
    expected = json.loads((root / "mmengine_loop" / "metrics.json").read_text())
    assert list(expected) == ["mini/top1", "passes"] and expected["passes"] == 2
    done = run(str(COMMAND), "test", str(user), str(root / "ours" / f"{last}.ckpt"), "--work-dir", str(root / "loop"))
    reported = dict(item.split("=") for item in done.stdout.strip().splitlines()[-1].split())
    assert list(reported) == list(expected)
    for name, value in expected.items():
        assert float(reported[name]) == pytest.approx(value, abs=1e-4), name
    assert_same_test_json(root / "loop", root / "mmengine_loop")


def test_training_with_a_toolbox_val_loop_equals_mmengines(runs):
    """val_cfg naming a toolbox's loop: it validates where MMEngine's training loop does, its metrics choose the
    best checkpoint and reach the log as MMEngine's."""
    root, run, config, _, _, _ = runs
    user = root / f"val_loop_{config.name}"
    user.write_text(f"_base_ = [{str(config)!r}]\nval_cfg = dict(type='MiniTwicePassValLoop', passes=2)\n")
    reference = run(sys.executable, str(HERE / "mmengine_train.py"), str(user), str(root / "mmengine_val_loop"))
    ours = run(str(COMMAND), "train", str(user), "--work-dir", str(root / "val_loop"))

    def val_lines(done: subprocess.CompletedProcess) -> list[str]:
        lines = (done.stdout + done.stderr).splitlines()
        return [line.split(" - ")[-1].split("data_time")[0] for line in lines if "(val) [" in line and "top1" in line]

    assert val_lines(ours) == val_lines(reference) and all("passes: 2" in line for line in val_lines(ours))
    best = sorted(p.stem for p in (root / "mmengine_val_loop").glob("best_*.pth"))
    assert len(best) == 1 and sorted(p.stem for p in (root / "val_loop").glob("best_*.ckpt")) == best


def test_mm2lightning_test_tta_reports_mmengines_tta_metric(runs):
    """--tta: the config's tta_model (a toolbox's, on MMEngine's BaseTTAModel) around the model, its tta_pipeline
    giving each sample's views: MMEngine's TTA metric on the same checkpoint."""
    root, run, config, last, _, _ = runs
    user = root / f"tta_model_{config.name}"
    user.write_text(f"_base_ = [{str(config)!r}]\ntta_model = dict(type='MiniAverageTTA')\n"
                    "tta_pipeline = [dict(type='LoadNpyImage'), dict(type='MiniFlipTTA')]\n")
    run(sys.executable, str(HERE / "mmengine_train.py"), str(user), str(root / "mmengine_tta"), "tta",
        str(root / "mmengine" / f"{last}.pth"))
    expected = json.loads((root / "mmengine_tta" / "metrics.json").read_text())
    checkpoint = str(root / "ours" / f"{last}.ckpt")
    done = run(str(COMMAND), "test", str(user), checkpoint, "--work-dir", str(root / "tta"), "--tta",
               "--out", str(root / "tta.pkl"))
    name, value = done.stdout.strip().splitlines()[-1].split("=")
    assert name == "mini/top1" and float(value) == pytest.approx(expected["mini/top1"], abs=1e-4)
    run(str(COMMAND), "test", str(user), checkpoint, "--work-dir", str(root / "no_tta"), "--out", str(root / "plain.pkl"))
    with open(root / "tta.pkl", "rb") as f, open(root / "plain.pkl", "rb") as g:
        tta, plain = pickle.load(f), pickle.load(g)
    assert len(tta) == len(plain) > 0 and any(not torch.allclose(a["score"], b["score"]) for a, b in zip(tta, plain))


def test_local_vis_backend_writes_mmengines_scalar_lines(runs):
    """visualizer=dict(vis_backends=[LocalVisBackend]): vis_data/scalars.json and <timestamp>.json as MMEngine's."""
    root, _, _, _, _, _ = runs

    def lines(run: str, name: str) -> list[dict]:
        (vis_data,) = (root / run).glob("*/vis_data")
        path = vis_data / name if name == "scalars.json" else vis_data / f"{vis_data.parent.name}.json"
        return [json.loads(line) for line in path.read_text().splitlines()]

    for name in ("scalars.json", "timestamp"):
        reference, ours = lines("mmengine", name), lines("ours", name)
        assert len(ours) == len(reference) > 2
        for mine, theirs in zip(ours, reference):
            assert list(mine) == list(theirs)
            for key, value in theirs.items():
                if key not in ("time", "data_time"):  # IterTimerHook's clock
                    assert mine[key] == pytest.approx(value, rel=0, abs=1e-6), (key, mine, theirs)


# The three ways toolboxes' tools/test.py turn their visualization hook on: the flags, and the hook as the toolbox's
# script leaves it (mmpretrain's merge_args, mmdet's and mmseg's trigger_visualization_hook). {show} is a directory.
SHOW_STYLES = {
    "mmpretrain": ("MiniClsVisualizationHook", ["--show", "--show-dir", "{show}", "--interval", "4"],
                   "dict(type='MiniClsVisualizationHook', enable=True, show=True, wait_time=2, out_dir={show!r}, "
                   "interval=4)", ""),
    "mmdet": ("MiniDetVisualizationHook", ["--show-dir", "shown", "--show", "--wait-time", "0.5"],
              "dict(type='MiniDetVisualizationHook', draw=True, show=True, wait_time=0.5, test_out_dir='shown')", ""),
    "mmseg": ("MiniSegVisualizationHook", ["--show-dir", "{show}"], "dict(type='MiniSegVisualizationHook', draw=True)",
              "visualizer.update(save_dir={show!r})\n"),
}  # fmt: skip


@pytest.mark.parametrize("style", list(SHOW_STYLES))
def test_show_flags_draw_as_the_toolboxs_test_script(runs, style):
    """--show/--show-dir/--wait-time/--interval turn the config's visualization hook on as its toolbox's tools/test.py
    does: the same images in the same places, the same windows, as MMEngine's Runner with the hook so set."""
    root, run, config, last, _, _ = runs
    if config.name != "mini_cls.py":
        pytest.skip("one config is enough: the hooks act after each test iteration alike")
    hook, flags, turned_on, visualizer = SHOW_STYLES[style]
    drawn = {}
    for who in ("mmengine", "ours"):
        show = root / f"show_{style}_{who}"
        show.mkdir()
        on = turned_on.format(show=str(show / "images")) if who == "mmengine" else f"dict(type={hook!r})"
        user = root / f"show_{style}_{who}.py"
        user.write_text(f"_base_ = [{str(config)!r}]\nvisualizer = dict(type='MiniVisualizer', vis_backends=["
                        f"dict(type='LocalVisBackend')], show_log={str(show / 'windows.txt')!r})\n"
                        f"default_hooks = dict(visualization={on})\n"
                        + (visualizer.format(show=str(show / "images")) if who == "mmengine" else ""))
        if who == "mmengine":
            run(sys.executable, str(HERE / "mmengine_train.py"), str(user), str(show / "work"), "test",
                str(root / "mmengine" / f"{last}.pth"))
        else:
            run(str(COMMAND), "test", str(user), str(root / "mmengine" / f"{last}.pth"), "--work-dir", str(show / "work"),
                *[flag.format(show=str(show / "images")) for flag in flags])
        images = sorted(p for p in show.rglob("*.png"))
        names = ["/".join(p.relative_to(show).parts[2 if p.parts[len(show.parts)] == "work" else 0:]) for p in images]
        windows = (show / "windows.txt").read_text().splitlines() if (show / "windows.txt").exists() else []
        drawn[who] = names, [np.asarray(cv2.imread(str(p))) for p in images], windows
    (names, images, windows), (our_names, our_images, our_windows) = drawn["mmengine"], drawn["ours"]
    assert our_names == names and names
    assert our_windows == windows and (windows or style == "mmseg")
    for mine, theirs in zip(our_images, images):
        np.testing.assert_array_equal(mine, theirs)


def test_toolbox_loops_under_a_launcher_share_the_data_as_mmengines_loops(runs):
    """Two processes under torchrun: a toolbox's test loop splits the data by its sampler and its evaluator gathers
    them (the one-process metrics); a toolbox's val loop during training gives the built-in loop's metrics and best
    checkpoint on the same two-process training."""
    root, run, config, last, _, _ = runs
    if config.name != "mini_cls.py":
        pytest.skip("one config is enough: the loops do not depend on the train loop's kind")
    cli = ("-m", "mm2lightning.cli")
    user = root / "dist_loops.py"
    user.write_text(f"_base_ = [{str(config)!r}]\ntest_cfg = dict(type='MiniTwicePassTestLoop', passes=2)\n"
                    "val_cfg = dict(type='MiniTwicePassValLoop', passes=3)\n")
    checkpoint = str(root / "ours" / f"{last}.ckpt")
    one = run(str(COMMAND), "test", str(user), checkpoint, "--work-dir", str(root / "dist_one"))
    two = run(*torchrun(*cli), "test", str(user), checkpoint, "--work-dir", str(root / "dist_two"),
              "--launcher", "pytorch")
    metrics = [line for line in two.stdout.splitlines() if line.startswith("mini/top1=")]
    assert len(metrics) == 2 and set(metrics) == {one.stdout.strip().splitlines()[-1]}  # each rank: all the data

    def val_lines(done: subprocess.CompletedProcess) -> list[str]:
        lines = (done.stdout + done.stderr).splitlines()
        return [line.split(" - ")[-1].split("  ")[1] for line in lines if "(val) [" in line and "top1" in line]

    custom = run(*torchrun(*cli), "train", str(user), "--work-dir", str(root / "dist_custom"), "--launcher", "pytorch")
    built_in = run(*torchrun(*cli), "train", str(config), "--work-dir", str(root / "dist_built_in"),
                   "--launcher", "pytorch")
    assert val_lines(custom) == val_lines(built_in) and len(val_lines(custom)) == 3
    assert all("passes: 3" in line for line in (custom.stdout + custom.stderr).splitlines() if "(val) [" in line)
    best = [sorted(p.name for p in (root / run_dir).glob("best_*.ckpt")) for run_dir in ("dist_custom", "dist_built_in")]
    assert best[0] == best[1] and len(best[0]) == 1


def test_resuming_mmengines_iteration_checkpoint_under_a_launcher_ends_as_mmengine(runs):
    """MMEngine's IterBasedTrainLoop's checkpoint of iteration 7, resumed by mm2lightning, ends where MMEngine's own
    resumed run ends: the batches seen are loaded again (the augmentation's random draws too), in one process and
    in two under torchrun (each rank its share)."""
    root, run, config, _, _, _ = runs
    if config.name != "mini_cls_iter.py":
        pytest.skip("MMEngine's iteration checkpoints come from the iteration-based config")
    one = root / "iter_resumed.py"
    one.write_text(f"_base_ = [{str(config)!r}]\nresume = True\nload_from = {str(root / 'mmengine' / 'iter_7.pth')!r}\n")
    run(sys.executable, str(HERE / "mmengine_train.py"), str(one), str(root / "mmengine_resumed"))
    run(str(COMMAND), "train", str(config), "--resume", str(root / "mmengine" / "iter_7.pth"), "--work-dir",
        str(root / "ours_resumed"))
    reference = load_checkpoint_file(root / "mmengine_resumed" / "iter_14.pth")["state_dict"]
    ours = torch.load(root / "ours_resumed" / "iter_14.ckpt", weights_only=True)["state_dict"]
    for name, value in reference.items():
        torch.testing.assert_close(ours[f"model.{name}"], value, rtol=0, atol=1e-5, msg=name)

    user = root / "iter_launcher.py"
    user.write_text(f"_base_ = [{str(config)!r}]\nlauncher = 'pytorch'\n"  # DDP of a CPU module: no device ids
                    "model_wrapper_cfg = dict(type='MMDistributedDataParallel', broadcast_buffers=False, device_ids=None)\n")
    run(*torchrun(str(HERE / "mmengine_train.py")), str(user), str(root / "mmengine_dist"))
    first = root / "mmengine_dist" / "iter_7.pth"
    resumed = root / "iter_launcher_resumed.py"
    resumed.write_text(f"_base_ = [{str(user)!r}]\nresume = True\nload_from = {str(first)!r}\n")
    run(*torchrun(str(HERE / "mmengine_train.py")), str(resumed), str(root / "mmengine_dist_resumed"))
    run(*torchrun("-m", "mm2lightning.cli"), "train", str(config), "--launcher", "pytorch", "--resume", str(first),
        "--work-dir", str(root / "ours_dist_resumed"))
    reference = load_checkpoint_file(root / "mmengine_dist_resumed" / "iter_14.pth")["state_dict"]
    ours = torch.load(root / "ours_dist_resumed" / "iter_14.ckpt", weights_only=True)["state_dict"]
    for name, value in reference.items():
        torch.testing.assert_close(ours[f"model.{name}"], value, rtol=0, atol=1e-5, msg=name)
