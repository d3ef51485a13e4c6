"""A visualizer that draws a prediction on its image, and visualization hooks turned on in the three ways the
toolboxes' ``tools/test.py`` turn theirs on (mmpretrain's ``enable``, mmdet's ``draw`` + ``test_out_dir``, mmseg's
``draw`` with the images going through the visualizer's backends)."""

import os
import os.path as osp

import cv2
from mmengine.hooks import Hook
from mmengine.visualization import Visualizer

from minitb.registry import HOOKS, VISUALIZERS


@VISUALIZERS.register_module()
class MiniVisualizer(Visualizer):
    """Draws a bar as long as the predicted class on the image's first row; ``show`` writes the window's name and
    wait time to the file ``show_log`` (a headless stand-in for the window)."""

    def __init__(self, name="visualizer", show_log=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.show_log = show_log

    def show(self, drawn_img=None, win_name="image", wait_time=0.0, continue_key=" ", backend="matplotlib"):
        with open(self.show_log, "a") as f:
            f.write(f"{win_name} {wait_time} {drawn_img.shape}\n")

    def add_datasample(self, name, image, data_sample=None, show=False, wait_time=0, out_file=None, step=0):
        drawn = image.copy()
        drawn[0, :, :] = 0
        drawn[0, : data_sample["pred"] + 1, 0] = 255
        if show:
            self.show(drawn, win_name=name, wait_time=wait_time)
        if out_file is not None:
            cv2.imwrite(out_file, drawn[..., ::-1])
        else:
            self.add_image(name, drawn, step)


class _MiniVisualizationHook(Hook):
    def __init__(self, interval, show, wait_time):
        self._visualizer = Visualizer.get_current_instance()
        self.interval, self.show, self.wait_time = interval, show, wait_time

    def _draw(self, batch_idx, data_batch, outputs, out_dir, step):
        for i, (img, pred) in enumerate(zip(data_batch["inputs"], outputs)):
            sample_id = batch_idx * len(outputs) + i
            if sample_id % self.interval == 0:
                out_file = osp.join(out_dir, f"{sample_id}.png") if out_dir else None
                self._visualizer.add_datasample(str(sample_id), img.permute(1, 2, 0).numpy(), pred, show=self.show,
                                                wait_time=self.wait_time, out_file=out_file, step=step)


@HOOKS.register_module()
class MiniClsVisualizationHook(_MiniVisualizationHook):
    """As mmpretrain's ``VisualizationHook``: ``enable``; ``out_dir`` relative to the working directory."""

    def __init__(self, enable=False, interval=5000, show=False, out_dir=None, **kwargs):
        super().__init__(interval, show, kwargs.get("wait_time", 0))
        self.enable, self.out_dir = enable, out_dir

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.enable:
            if self.out_dir:
                os.makedirs(self.out_dir, exist_ok=True)
            self._draw(batch_idx, data_batch, outputs, self.out_dir, step=0)


@HOOKS.register_module()
class MiniDetVisualizationHook(_MiniVisualizationHook):
    """As mmdet's ``DetVisualizationHook``: ``draw``; ``test_out_dir`` under ``work_dir/<timestamp>``."""

    def __init__(self, draw=False, interval=50, show=False, wait_time=0.0, test_out_dir=None):
        super().__init__(interval, show, wait_time)
        self.draw, self.test_out_dir = draw, test_out_dir

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.draw:
            out_dir = osp.join(runner.work_dir, runner.timestamp, self.test_out_dir) if self.test_out_dir else None
            if out_dir:
                os.makedirs(out_dir, exist_ok=True)
            self._draw(batch_idx, data_batch, outputs, out_dir, step=batch_idx)


@HOOKS.register_module()
class MiniSegVisualizationHook(_MiniVisualizationHook):
    """As mmseg's ``SegVisualizationHook``: ``draw``; the images go to the visualizer's backends at ``runner.iter``."""

    def __init__(self, draw=False, interval=50, show=False, wait_time=0.0):
        super().__init__(interval, show, wait_time)
        self.draw = draw

    def after_test_iter(self, runner, batch_idx, data_batch=None, outputs=None):
        if self.draw:
            self._draw(batch_idx, data_batch, outputs, None, step=runner.iter)
