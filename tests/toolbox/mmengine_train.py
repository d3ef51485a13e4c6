"""The reference: MMEngine's Runner on a config, as ``tools/train.py`` (run in a subprocess by the tests).

Usage: python mmengine_train.py CONFIG WORK_DIR [train|test|tta CHECKPOINT] (under torchrun too, with launcher='pytorch')
Writes WORK_DIR/final.pt (the model's state_dict) after training, or WORK_DIR/metrics.json after testing (``tta``:
with the config's tta_model and tta_pipeline, as mmdet's ``tools/test.py --tta``).
"""

import json
import sys

import torch
from mmengine.config import Config
from mmengine.runner import Runner

if not torch.cuda.is_available():  # MMEngine's init_dist selects a CUDA device: nothing to select on a CPU build
    torch.cuda.set_device = lambda device: None
config, work_dir, mode = sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else "train"
cfg = Config.fromfile(config)
cfg.work_dir = work_dir
if mode in ("test", "tta"):
    cfg.load_from = sys.argv[4]
if mode == "tta":
    cfg.model = dict(**cfg.tta_model, module=cfg.model)
    cfg.test_dataloader.dataset.pipeline = cfg.tta_pipeline
runner = Runner.from_cfg(cfg)
if mode == "train":
    runner.train()
    torch.save({k: v.detach().clone() for k, v in runner.model.state_dict().items()}, f"{work_dir}/final.pt")
else:
    metrics = runner.test()
    with open(f"{work_dir}/metrics.json", "w") as f:
        json.dump({k: float(v) for k, v in metrics.items()}, f)
if torch.distributed.is_available() and torch.distributed.is_initialized():
    torch.distributed.destroy_process_group()  # MMEngine leaves it: gloo's threads then abort some exits
