"""Real mmsegmentation / mmdetection configs through ``mm2lightning train`` equal MMEngine's Runner on them.

Optional: both toolboxes need full mmcv with its compiled ops (``mmcv._ext``), which has no wheel for this torch;
``tests/toolbox/mmdet_mmseg_venv.sh`` builds the environment these run in. Without it the tests skip. Each config is
read through an ``'mmseg::...'`` / ``'mmdet::...'`` base by us and through the same file's path by MMEngine (whose
``pkg::`` bases need ``pkg_resources``), and overridden only where a small CPU run needs it: a tiny generated dataset,
4 iterations validated every 2, BN for SyncBN, no pretrained weights, small images.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

HERE = Path(__file__).resolve().parent
COMMAND = Path(sys.executable).with_name("mm2lightning")

SEG = """
crop_size = (64, 64)
norm_cfg = dict(type='BN', requires_grad=True)
data_preprocessor = dict(size=crop_size)
model = dict(pretrained=None, data_preprocessor=data_preprocessor, backbone=dict(init_cfg=None, norm_cfg=norm_cfg),
             decode_head=dict(norm_cfg=norm_cfg), auxiliary_head=dict(norm_cfg=norm_cfg))
train_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations'),
    dict(type='RandomResize', scale=(128, 64), ratio_range=(0.5, 2.0), keep_ratio=True),
    dict(type='RandomCrop', crop_size=crop_size, cat_max_ratio=0.75),
    dict(type='RandomFlip', prob=0.5), dict(type='PhotoMetricDistortion'), dict(type='PackSegInputs'),
]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='Resize', scale=(128, 64), keep_ratio=True),
                 dict(type='LoadAnnotations'), dict(type='PackSegInputs')]
loader = dict(num_workers=0, persistent_workers=False)
train_dataloader = dict(loader, batch_size=2, dataset=dict(data_root=data, pipeline=train_pipeline))
val_dataloader = dict(loader, batch_size=1, dataset=dict(data_root=data, pipeline=test_pipeline))
test_dataloader = val_dataloader
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(interval=2))
env_cfg = dict(cudnn_benchmark=False)
train_cfg = dict(max_iters=4, val_interval=2)  # the base's IterBasedTrainLoop, with its pkg:: '_scope_'
"""

DET = """
# heads: the data's 3 classes, score threshold 0 (so that 4 iterations' scores give COCO results to evaluate)
model = dict(heads, backbone=dict(depth=18, init_cfg=None), neck=dict(in_channels=[64, 128, 256, 512]))
train_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='LoadAnnotations', with_bbox=True),
    dict(type='Resize', scale=(128, 128), keep_ratio=True), dict(type='RandomFlip', prob=0.5),
    dict(type='PackDetInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'), dict(type='Resize', scale=(128, 128), keep_ratio=True),
    dict(type='LoadAnnotations', with_bbox=True),
    dict(type='PackDetInputs', meta_keys=('img_id', 'img_path', 'ori_shape', 'img_shape', 'scale_factor')),
]
loader = dict(num_workers=0, persistent_workers=False)
train_dataloader = dict(loader, batch_size=2, dataset=dict(
    data_root=data, ann_file='annotations/train.json', data_prefix=dict(img='train/'), pipeline=train_pipeline))
val_dataloader = dict(loader, dataset=dict(
    data_root=data, ann_file='annotations/val.json', data_prefix=dict(img='val/'), pipeline=test_pipeline))
test_dataloader = val_dataloader
val_evaluator = dict(ann_file=data + '/annotations/val.json')
test_evaluator = val_evaluator
default_hooks = dict(logger=dict(interval=1), checkpoint=dict(by_epoch=False, interval=2))
log_processor = dict(by_epoch=False)
# the base's EpochBasedTrainLoop replaced; its val_cfg/test_cfg keep their pkg:: '_scope_'
train_cfg = dict(_delete_=True, type='IterBasedTrainLoop', max_iters=4, val_interval=2)
"""

# case -> (toolbox, config under its .mim/configs, what the user's file says before the shared overrides)
CASES = {
    "fcn_r18_cityscapes": ("mmseg", "fcn/fcn_r18-d8_4xb2-80k_cityscapes-512x1024.py", SEG),
    "retinanet_r18": (
        "mmdet", "retinanet/retinanet_r18_fpn_1x_coco.py",
        "heads = dict(bbox_head=dict(num_classes=3), test_cfg=dict(score_thr=0.0))\n" + DET),
    "faster_rcnn_r18": (  # two-stage: the model reads train_cfg.rpn / test_cfg.rcnn by attribute
        "mmdet", "faster_rcnn/faster-rcnn_r50_fpn_1x_coco.py",
        "heads = dict(roi_head=dict(bbox_head=dict(num_classes=3)), test_cfg=dict(rcnn=dict(score_thr=0.0)))\n" + DET),
}
TAIL = """
randomness = dict(seed=0, deterministic=True)
"""


def need(module: str) -> None:
    """Skip unless ``module`` imports (mmseg/mmdet assert their mmcv version at import, hence not importorskip)."""
    try:
        importlib.import_module(module)
    except Exception as error:  # noqa: BLE001 - ImportError or the toolboxes' mmcv version assertion
        pytest.skip(f"{module} is an optional toolbox (see tests/toolbox/mmdet_mmseg_venv.sh): {error!r}")


def write_cityscapes(root: Path) -> None:
    """Cityscapes layout: 8 train + 2 val 64x128 noise images, blocky train-id labels 0..18 with ~10% ignore."""
    from PIL import Image

    rng = np.random.RandomState(0)
    for split, n in (("train", 8), ("val", 2)):
        images, labels = root / "leftImg8bit" / split / "city", root / "gtFine" / split / "city"
        images.mkdir(parents=True)
        labels.mkdir(parents=True)
        for i in range(n):
            img = rng.randint(0, 256, (64, 128, 3), dtype=np.uint8)
            lab = rng.randint(0, 19, (8, 16)).astype(np.uint8)
            lab[rng.rand(8, 16) < 0.1] = 255
            Image.fromarray(img).save(images / f"{split}{i:02d}_leftImg8bit.png")
            label = Image.fromarray(np.kron(lab, np.ones((8, 8), np.uint8)))
            label.save(labels / f"{split}{i:02d}_gtFine_labelTrainIds.png")


def write_coco(root: Path) -> None:
    """COCO layout: 6 train + 2 val 128x128 JPEGs, each with 1-3 flat-coloured boxes of 3 categories."""
    from PIL import Image

    rng = np.random.RandomState(0)
    categories = [dict(id=1, name="person"), dict(id=2, name="bicycle"), dict(id=3, name="car")]
    (root / "annotations").mkdir(parents=True)
    for split, n in (("train", 6), ("val", 2)):
        (root / split).mkdir()
        images, annotations = [], []
        for i in range(n):
            img = rng.randint(0, 256, (128, 128, 3), dtype=np.uint8)
            for _ in range(rng.randint(1, 4)):
                w, h = (int(v) for v in rng.randint(20, 70, size=2))
                x, y = int(rng.randint(0, 128 - w)), int(rng.randint(0, 128 - h))
                img[y:y + h, x:x + w] = rng.randint(0, 256, 3, dtype=np.uint8)
                polygon = [x, y, x + w, y, x + w, y + h, x, y + h]
                annotations.append(dict(id=len(annotations) + 1, image_id=i + 1, category_id=int(rng.randint(1, 4)),
                                        bbox=[x, y, w, h], area=w * h, iscrowd=0, segmentation=[polygon]))
            Image.fromarray(img).save(root / split / f"{split}{i:02d}.jpg", quality=95)
            images.append(dict(id=i + 1, file_name=f"{split}{i:02d}.jpg", width=128, height=128))
        text = json.dumps(dict(images=images, annotations=annotations, categories=categories))
        (root / "annotations" / f"{split}.json").write_text(text)


def run(*args: str, env: dict[str, str] | None = None) -> str:
    """Run a command; return its stdout and stderr together (the loggers write to either)."""
    done = subprocess.run(args, capture_output=True, text=True, timeout=900, env=env)
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout + done.stderr


def val_metrics(output: str) -> list[list[tuple[str, str]]]:
    """The metrics of each validation's summary line (``Iter(val) [2/2]  mIoU: ...``), timings left out."""
    found = []
    for line in output.splitlines():
        if "(val) [" in line and "eta:" not in line:
            pairs = re.findall(r"(\S+): (\S+)", line.split("(val) [", 1)[1])
            found.append([(k, v) for k, v in pairs if k not in ("time", "data_time")])
    return found


def configs(tmp_path: Path, data: Path, case: str) -> tuple[Path, Path]:
    """The user's config: ``pkg::`` base (ours) and the same text with the base's path (MMEngine)."""
    toolbox, base, body = CASES[case]
    configs_dir = Path(importlib.import_module(toolbox).__file__).parent / ".mim" / "configs"
    text = f"data = '{data}'\n" + body + TAIL
    ours, theirs = tmp_path / f"{case}.py", tmp_path / "mmengine" / f"{case}.py"
    theirs.parent.mkdir()
    ours.write_text(f"_base_ = ['{toolbox}::{base}']\n" + text)
    theirs.write_text(f"_base_ = ['{configs_dir / base}']\n" + text)
    return ours, theirs


@pytest.mark.parametrize("case", list(CASES))
def test_a_real_mmseg_or_mmdet_config_trains_as_mmengine(tmp_path: Path, case: str) -> None:
    toolbox = CASES[case][0]
    need(toolbox)
    pytest.importorskip("mmcv._ext", reason="mmseg/mmdet models need mmcv's compiled ops (mmcv._ext)")
    from mm2lightning.runner.checkpoint import load_checkpoint_file

    data = tmp_path / "data"
    (write_cityscapes if toolbox == "mmseg" else write_coco)(data)
    ours_cfg, theirs_cfg = configs(tmp_path, data, case)
    theirs_out = run(sys.executable, str(HERE / "mmengine_train.py"), str(theirs_cfg), str(tmp_path / "mmengine_run"))
    ours_out = run(str(COMMAND), "train", str(ours_cfg), "--work-dir", str(tmp_path / "ours"))

    # MMEngine's file of the same iteration (its final model may differ where hooks act after the last checkpoint)
    reference = load_checkpoint_file(tmp_path / "mmengine_run" / "iter_4.pth")["state_dict"]
    state = torch.load(tmp_path / "ours" / "iter_4.ckpt", weights_only=False, map_location="cpu")["state_dict"]
    assert sorted(state) == sorted(f"model.{name}" for name in reference)
    for name, value in reference.items():
        torch.testing.assert_close(state[f"model.{name}"], value, rtol=0, atol=1e-5, msg=name)

    expected = val_metrics(theirs_out)
    metric = "mIoU" if toolbox == "mmseg" else "coco/bbox_mAP"
    assert len(expected) == 2 and all(metric in dict(pairs) for pairs in expected), expected
    assert val_metrics(ours_out) == expected
    check_test_show_dir_is_the_toolboxs(tmp_path, toolbox, ours_cfg, theirs_cfg)


def check_test_show_dir_is_the_toolboxs(tmp_path: Path, toolbox: str, ours_cfg: Path, theirs_cfg: Path) -> None:
    """``mm2lightning test --show-dir`` draws the images the toolbox's own ``tools/test.py --show-dir`` draws from the
    same checkpoint, with the same names: mmdet's under ``work_dir/<timestamp>/<show_dir>``, mmseg's through the
    visualizer's backend under ``<show_dir>/vis_data/vis_image``."""
    import cv2

    script = Path(importlib.import_module(toolbox).__file__).parent / ".mim" / "tools" / "test.py"
    checkpoint = str(tmp_path / "mmengine_run" / "iter_4.pth")
    images = {}
    for who in ("theirs", "ours"):
        work_dir, show_dir = tmp_path / f"test_{who}", "shown" if toolbox == "mmdet" else str(tmp_path / f"shown_{who}")
        flags = [checkpoint, "--work-dir", str(work_dir), "--show-dir", show_dir,
                 "--cfg-options", "default_hooks.visualization.interval=1"]  # mmseg's: every iteration, not every 50th
        if who == "theirs":
            run(sys.executable, str(script), str(theirs_cfg), *flags,
                env=dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1"))  # MMEngine's torch.load of its file
        else:
            run(str(COMMAND), "test", str(ours_cfg), *flags)
        drawn = work_dir.glob("*/shown/*") if toolbox == "mmdet" else Path(show_dir).glob("vis_data/vis_image/*.png")
        images[who] = {p.name: cv2.imread(str(p)) for p in drawn}
    assert len(images["theirs"]) == 2 and sorted(images["ours"]) == sorted(images["theirs"])  # the 2 test images
    for name, pixels in images["theirs"].items():
        np.testing.assert_array_equal(images["ours"][name], pixels, err_msg=name)
