"""A dataset read from an annotation file, transforms with random draws, and a repeating sampler."""

import numpy as np
import torch
from mmengine.dataset import BaseDataset, pseudo_collate
from torch.utils.data import Sampler

from minitb.registry import DATA_SAMPLERS, DATASETS, FUNCTIONS, TRANSFORMS


@DATASETS.register_module()
class MiniDataset(BaseDataset):
    """Images stored as .npy files; the annotation file lists ``img_path`` and ``gt_label``."""

    METAINFO = dict(classes=("a", "b", "c"))


@TRANSFORMS.register_module()
class LoadNpyImage:
    def __call__(self, results):
        results["img"] = np.load(results["img_path"])
        return results


@TRANSFORMS.register_module()
class RandomFlipNoise:
    """Flips with probability ``prob`` and adds Gaussian noise: both from numpy's global generator."""

    def __init__(self, prob=0.5, std=8.0):
        self.prob, self.std = prob, std

    def __call__(self, results):
        img = results["img"].astype(np.float32)
        if np.random.rand() < self.prob:
            img = img[:, ::-1]
        results["img"] = np.clip(img + np.random.randn(*img.shape) * self.std, 0, 255).astype(np.uint8)
        return results


@TRANSFORMS.register_module()
class PackMiniInputs:
    def __call__(self, results):
        inputs = torch.from_numpy(np.ascontiguousarray(results["img"].transpose(2, 0, 1)))
        return dict(inputs=inputs, data_samples=dict(gt_label=int(results["gt_label"])))


@TRANSFORMS.register_module()
class MiniFlipTTA:
    """The test-time views of a sample (as mmcv's ``TestTimeAug``): the image and its horizontal flip, packed,
    as lists of one entry per view."""

    def __call__(self, results):
        views = []
        for flip in (False, True):
            view = dict(results, img=results["img"][:, ::-1] if flip else results["img"])
            views.append(PackMiniInputs()(view))
        return dict(inputs=[v["inputs"] for v in views], data_samples=[v["data_samples"] for v in views])


@FUNCTIONS.register_module()
def mini_collate(data_batch, scale=1):
    """MMEngine's pseudo_collate, the images multiplied by ``scale`` (a bound argument of the config)."""
    batch = pseudo_collate(data_batch)
    batch["inputs"] = [img * scale for img in batch["inputs"]]
    return batch


@DATA_SAMPLERS.register_module()
class MiniBucketBatchSampler:
    """Batches of indices of equal label parity; what is left is yielded, and the buckets emptied, after the
    sampler's last index (as mmdet's ``AspectRatioBatchSampler``): a pass must be run to its end."""

    def __init__(self, sampler, batch_size, drop_last=False):
        self.sampler, self.batch_size, self.drop_last = sampler, batch_size, drop_last
        self._buckets = [[], []]

    def __iter__(self):
        for idx in self.sampler:
            bucket = self._buckets[self.sampler.dataset.get_data_info(idx)["gt_label"] % 2]
            bucket.append(idx)
            if len(bucket) == self.batch_size:
                yield bucket[:]
                del bucket[:]
        left = self._buckets[0] + self._buckets[1]
        self._buckets = [[], []]
        while left:
            if len(left) <= self.batch_size:
                if not self.drop_last:
                    yield left[:]
                left = []
            else:
                yield left[: self.batch_size]
                left = left[self.batch_size:]

    def __len__(self):
        return (len(self.sampler) + self.batch_size - 1) // self.batch_size


@DATA_SAMPLERS.register_module()
class MiniRepeatSampler(Sampler):
    """Each index ``repeats`` times in a shuffled order that depends on the seed and the epoch (one process)."""

    def __init__(self, dataset, shuffle=True, seed=None, repeats=2):
        self.dataset, self.shuffle, self.repeats = dataset, shuffle, repeats
        self.seed = 0 if seed is None else seed
        self.epoch = 0

    def __iter__(self):
        n = len(self.dataset)
        if self.shuffle:
            generator = torch.Generator().manual_seed(self.seed + self.epoch)
            order = torch.randperm(n, generator=generator).tolist()
        else:
            order = list(range(n))
        return iter([i for i in order for _ in range(self.repeats)])

    def __len__(self):
        return len(self.dataset) * self.repeats

    def set_epoch(self, epoch):
        self.epoch = epoch
