"""Writes minitb's dataset: small .npy images of three classes and the annotation files."""

import json
from pathlib import Path

import numpy as np


def write_minitb_data(root: Path, n_train: int = 18, n_val: int = 9, size: int = 8) -> Path:
    rng = np.random.default_rng(0)
    (root / "imgs").mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("val", n_val)):
        entries = []
        for i in range(n):
            label = i % 3
            img = rng.integers(0, 256, (size, size, 3)).astype(np.float32) * 0.5
            img[..., label] += 24.0
            name = f"{split}_{i}.npy"
            np.save(root / "imgs" / name, img.clip(0, 255).astype(np.uint8))
            entries.append(dict(img_path=name, gt_label=label))
        meta = dict(classes=["a", "b", "c"])
        (root / f"{split}.json").write_text(json.dumps(dict(metainfo=meta, data_list=entries)))
    return root
