"""Real mmpretrain configs through ``mm2lightning train`` equal MMEngine's Runner on the same config, seed and data.

Optional: mmpretrain needs torchvision (see the README's toolbox section for the venv these run in); without it
the tests skip. Each config is overridden only in its dataset (a tiny folder of PNGs), schedule length, image
size and (for ViT) model width, and read through a ``'mmpretrain::...'`` base by us and through the same file's
path by MMEngine (whose ``pkg::`` bases need ``pkg_resources``, gone from setuptools >= 81).
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

mmpretrain = pytest.importorskip("mmpretrain", reason="mmpretrain is an optional toolbox (needs torchvision)")

HERE = Path(__file__).resolve().parent
COMMAND = Path(sys.executable).with_name("mm2lightning")
CONFIGS = Path(mmpretrain.__file__).parent / ".mim" / "configs"
IMAGENET_32PX = """
draw = False
train_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='RandomResizedCrop', scale=32, backend='pillow', interpolation='bicubic'),
    dict(type='RandomFlip', prob=0.5, direction='horizontal'),
    dict(type='RandAugment', policies='timm_increasing', num_policies=2, total_level=10, magnitude_level=9,
         magnitude_std=0.5, hparams=dict(pad_val=[104, 116, 124], interpolation='bicubic')),
    dict(type='RandomErasing', erase_prob=0.25, mode='rand', min_area_ratio=0.02, max_area_ratio=1 / 3,
         fill_color=[103.53, 116.28, 123.675], fill_std=[57.375, 57.12, 58.395]),
    dict(type='PackInputs'),
]
test_pipeline = [
    dict(type='LoadImageFromFile'),
    dict(type='ResizeEdge', scale=36, edge='short', backend='pillow', interpolation='bicubic'),
    dict(type='CenterCrop', crop_size=32),
    dict(type='PackInputs'),
]
"""

# config -> what its user changes besides the data and the schedule (the ImageNet pipelines at 32 pixels)
CASES = {
    "resnet18_cifar": (
        "resnet/resnet18_8xb16_cifar10.py",
        """
train_pipeline = [dict(type='LoadImageFromFile'), dict(type='RandomCrop', crop_size=32, padding=4),
                  dict(type='RandomFlip', prob=0.5, direction='horizontal'), dict(type='PackInputs')]
test_pipeline = [dict(type='LoadImageFromFile'), dict(type='PackInputs')]
draw = True  # mmpretrain's VisualizationHook draws each validation batch's first image
""",
    ),
    "vit_layer_decay": (  # LearningRateDecayOptimWrapperConstructor, Mixup/CutMix, RandAugment, RandomErasing
        "mae/benchmarks/vit-base-p16_8xb128-coslr-100e_in1k.py",
        IMAGENET_32PX + """
model = dict(backbone=dict(init_cfg=None, img_size=32, patch_size=8,
                           arch=dict(_delete_=True, embed_dims=64, num_layers=4, num_heads=4,
                                     feedforward_channels=128)),
             head=dict(in_channels=64))
""",
    ),
    "convnext_ema": (  # EMAHook; the cosine phase's end pinned to the 300 epochs max_epochs gives it
        "convnext/convnext-tiny_32xb128_in1k.py",
        IMAGENET_32PX + """
param_scheduler = [dict(type='LinearLR', start_factor=1e-3, by_epoch=True, end=20, convert_to_iter_based=True),
                   dict(type='CosineAnnealingLR', eta_min=1e-5, by_epoch=True, begin=20, end=300)]
model = dict(head=dict(num_classes=4))  # the data's classes, for the inferencer's class names
data_preprocessor = dict(num_classes=4)
val_evaluator = dict(topk=(1,))
test_evaluator = val_evaluator
""",
    ),
}

TAIL = """
dataset = dict(_delete_=True, type='CustomDataset', with_label=True)
train_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                        dataset=dict(dataset, data_root=data + '/train', pipeline=train_pipeline))
val_dataloader = dict(batch_size=4, num_workers=0, persistent_workers=False,
                      dataset=dict(dataset, data_root=data + '/val', pipeline=test_pipeline))
test_dataloader = val_dataloader
train_cfg = dict(by_epoch=True, max_epochs=2, val_interval=1)
default_hooks = dict(logger=dict(interval=2), checkpoint=dict(interval=1), visualization=dict(enable=draw))
randomness = dict(seed=0, deterministic=True)
"""


def write_data(root: Path, classes: int = 4, train: int = 8, val: int = 2) -> Path:
    """32x32 PNGs in one folder per class (tinted by class, with noise)."""
    from PIL import Image

    rng = np.random.RandomState(0)
    for split, n in (("train", train), ("val", val)):
        for c in range(classes):
            folder = root / split / f"class_{c}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                img = np.array([60 * c, 255 - 60 * c, 128], np.float32) + rng.randn(32, 32, 3) * 40
                Image.fromarray(img.clip(0, 255).astype(np.uint8)).save(folder / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("mmpretrain_data"))


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, timeout=600, env=env or dict(os.environ))
    assert done.returncode == 0, done.stderr[-4000:]
    return done


def configs(tmp_path: Path, data: Path, case: str) -> tuple[Path, Path]:
    """The user's config: ``mmpretrain::`` base (ours) and the same file by path (MMEngine)."""
    base, body = CASES[case]
    text = f"data = '{data}'\n" + body + TAIL
    ours, theirs = tmp_path / f"{case}.py", tmp_path / "mmengine" / f"{case}.py"
    theirs.parent.mkdir(exist_ok=True)
    ours.write_text(f"_base_ = ['mmpretrain::{base}']\n" + text)
    theirs.write_text(f"_base_ = ['{CONFIGS / base}']\n" + text)
    return ours, theirs


@pytest.mark.parametrize("case", list(CASES))
def test_a_real_mmpretrain_config_trains_as_mmengine(tmp_path, data, case):
    ours_cfg, theirs_cfg = configs(tmp_path, data, case)
    run(sys.executable, str(HERE / "mmengine_train.py"), str(theirs_cfg), str(tmp_path / "mmengine_run"))
    run(str(COMMAND), "train", str(ours_cfg), "--work-dir", str(tmp_path / "ours"))
    reference = torch.load(tmp_path / "mmengine_run" / "final.pt", weights_only=True)
    ours = torch.load(tmp_path / "ours" / "epoch_2.ckpt", weights_only=False)
    state = ours["state_dict"]
    if case == "convnext_ema":  # as MMEngine, the file's state_dict holds the averaged weights, ema_state_dict the raw
        state = {f"model.{k.removeprefix('module.')}": v for k, v in ours["ema_state_dict"].items() if k != "steps"}
    for name, value in reference.items():
        torch.testing.assert_close(state[f"model.{name}"], value, rtol=0, atol=1e-5, msg=name)
    if case == "convnext_ema":
        check_converted_checkpoint_predicts_as_mmengines(tmp_path, theirs_cfg, data)
    if case == "resnet18_cifar":
        check_drawn_images_are_mmengines(tmp_path)
        check_test_show_dir_is_mmpretrains(tmp_path, ours_cfg, theirs_cfg)


def check_drawn_images_are_mmengines(tmp_path: Path) -> None:
    """VisualizationHook -> runner.visualizer (UniversalVisualizer) -> LocalVisBackend's files, as MMEngine's."""
    import cv2

    def images(run: str) -> dict[str, np.ndarray]:
        return {p.name: cv2.imread(str(p)) for p in (tmp_path / run).glob("*/vis_data/vis_image/*.png")}

    reference, ours = images("mmengine_run"), images("ours")
    assert len(reference) == 2 and sorted(ours) == sorted(reference)  # the first validation image of each epoch
    for name, pixels in reference.items():
        differ = np.argwhere((ours[name] != pixels).any(-1))
        assert differ.size == 0, (name, len(differ), differ[:10].tolist(), ours[name].shape, pixels.shape)


def check_test_show_dir_is_mmpretrains(tmp_path: Path, ours_cfg: Path, theirs_cfg: Path) -> None:
    """``mm2lightning test --show-dir D --interval 3`` draws the images mmpretrain's own ``tools/test.py`` draws
    with the same flags, from the same checkpoint, into the same files."""
    import cv2

    checkpoint = str(tmp_path / "mmengine_run" / "epoch_2.pth")
    flags = ["--interval", "3", "--out", str(tmp_path / "{}.json"), "--out-item", "metrics"]
    run(sys.executable, str(CONFIGS.parent / "tools" / "test.py"), str(theirs_cfg), checkpoint, "--work-dir",
        str(tmp_path / "test_theirs"), "--show-dir", str(tmp_path / "shown_theirs"),
        *[flag.format("theirs") for flag in flags], env=dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1"))
    run(str(COMMAND), "test", str(ours_cfg), checkpoint, "--work-dir", str(tmp_path / "test_ours"), "--show-dir",
        str(tmp_path / "shown_ours"), *[flag.format("ours") for flag in flags])
    reference = {p.name: cv2.imread(str(p)) for p in (tmp_path / "shown_theirs").glob("*.png")}
    ours = {p.name: cv2.imread(str(p)) for p in (tmp_path / "shown_ours").glob("*.png")}
    # samples 0, 3 and 6 of the 8: class_0/0.png, class_1/1.png, class_3/0.png, named by file name and step
    assert sorted(reference) == ["0.png_0.png", "1.png_0.png"] and sorted(ours) == sorted(reference)
    for name, pixels in reference.items():
        np.testing.assert_array_equal(ours[name], pixels, err_msg=name)
    metrics = {who: json.loads((tmp_path / f"{who}.json").read_text()) for who in ("theirs", "ours")}
    assert list(metrics["ours"]) == list(metrics["theirs"])
    assert metrics["ours"] == pytest.approx(metrics["theirs"], abs=1e-4)

    # --tta without tta_model/tta_pipeline in the config: mmpretrain's defaults (flip TTA, averaged scores)
    for who in ("theirs", "ours"):
        out = ["--out", str(tmp_path / f"tta_{who}.pkl"), "--work-dir", str(tmp_path / f"tta_{who}"),
               "--cfg-options", "default_hooks.visualization.enable=False"]  # mmpretrain's hook cannot draw TTA views
        if who == "theirs":
            run(sys.executable, str(CONFIGS.parent / "tools" / "test.py"), str(theirs_cfg), checkpoint, "--tta", *out,
                env=dict(os.environ, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1"))
        else:
            run(str(COMMAND), "test", str(ours_cfg), checkpoint, "--tta", *out)
    tta = {who: pickle.loads((tmp_path / f"tta_{who}.pkl").read_bytes()) for who in ("theirs", "ours")}
    assert len(tta["ours"]) == len(tta["theirs"]) == 8
    for mine, theirs in zip(tta["ours"], tta["theirs"]):
        torch.testing.assert_close(mine["pred_score"], theirs["pred_score"], rtol=0, atol=1e-5)


def check_converted_checkpoint_predicts_as_mmengines(tmp_path: Path, cfg: Path, data: Path) -> None:
    """``mm2lightning convert`` output loads in mmpretrain's inferencer under torch's weights_only default, with
    the EMA weights, and predicts what MMEngine's own checkpoint predicts."""
    converted = tmp_path / "converted.pth"
    run(str(COMMAND), "convert", str(tmp_path / "ours" / "epoch_2.ckpt"), str(converted))
    image = next((data / "val" / "class_1").glob("*.png"))
    script = (
        "import json, sys\n"
        "from mmpretrain.apis import ImageClassificationInferencer\n"
        "inferencer = ImageClassificationInferencer(model=sys.argv[1], pretrained=sys.argv[2], device='cpu')\n"
        "result = inferencer(sys.argv[3])[0]\n"
        "json.dump([result['pred_scores'].tolist(), result['pred_class']], open(sys.argv[4], 'w'))\n"
    )
    plain = {k: v for k, v in os.environ.items() if k != "TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"}
    run(sys.executable, "-c", script, str(cfg), str(converted), str(image), str(tmp_path / "ours.json"), env=plain)
    mmengine_file = tmp_path / "mmengine_run" / "epoch_2.pth"  # MMEngine's own files need the unsafe load
    run(sys.executable, "-c", script, str(cfg), str(mmengine_file), str(image), str(tmp_path / "theirs.json"),
        env=dict(plain, TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD="1"))
    scores, label = json.loads((tmp_path / "ours.json").read_text())
    expected, expected_label = json.loads((tmp_path / "theirs.json").read_text())
    assert scores == pytest.approx(expected, abs=1e-5) and label == expected_label
