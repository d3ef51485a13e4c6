"""A small image classifier: backbone, head, data preprocessor, each built through minitb's MODELS."""

import torch
import torch.nn.functional as F
from mmengine.model import BaseModel, BaseModule, BaseTTAModel, ImgDataPreprocessor
from torch import nn

from minitb.registry import MODELS


@MODELS.register_module()
class MiniNet(BaseModule):
    """``norm_eval``: the batch norm stays in eval mode in training, set by ``train()`` as mmcv's ResNet does."""

    def __init__(self, in_channels=3, width=8, norm_eval=False, init_cfg=dict(type="Kaiming", layer="Conv2d")):
        super().__init__(init_cfg=init_cfg)
        self.norm_eval = norm_eval
        self.conv = nn.Conv2d(in_channels, width, 3, padding=1)
        self.bn = nn.BatchNorm2d(width)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def train(self, mode=True):
        super().train(mode)
        if mode and self.norm_eval:
            self.bn.eval()
        return self

    def forward(self, x):
        return self.pool(F.relu(self.bn(self.conv(x)))).flatten(1)


@MODELS.register_module()
class MiniHead(BaseModule):
    def __init__(self, in_channels=8, num_classes=3, init_cfg=dict(type="Normal", layer="Linear", std=0.01)):
        super().__init__(init_cfg=init_cfg)
        self.fc = nn.Linear(in_channels, num_classes)

    def forward(self, x):
        return self.fc(x)


@MODELS.register_module()
class MiniDataPreprocessor(ImgDataPreprocessor):
    """Normalises the images and stacks the labels."""

    def forward(self, data, training=False):
        data = super().forward(data, training)
        labels = torch.as_tensor(data["data_samples"]["gt_label"], device=data["inputs"].device)
        return dict(inputs=data["inputs"], data_samples=labels)


@MODELS.register_module()
class MiniClassifier(BaseModel):
    """``test_cfg.temperature`` is read as an attribute, as toolboxes read their settings (``test_cfg.mode``)."""

    def __init__(self, backbone, head, data_preprocessor=None, test_cfg=None, init_cfg=None):
        super().__init__(data_preprocessor=data_preprocessor or dict(type="MiniDataPreprocessor"), init_cfg=init_cfg)
        self.backbone = MODELS.build(backbone)
        self.head = MODELS.build(head)
        self.test_cfg = test_cfg

    def forward(self, inputs, data_samples=None, mode="tensor"):
        logits = self.head(self.backbone(inputs))
        if mode == "loss":
            return dict(loss=F.cross_entropy(logits, data_samples))
        if mode == "predict":
            scores = (logits / self.test_cfg.temperature).softmax(1)
            return [dict(pred=int(p), gt=int(g), score=s) for p, g, s in zip(scores.argmax(1), data_samples, scores)]
        return logits


@MODELS.register_module()
class MiniAverageTTA(BaseTTAModel):
    """Averages the views' scores (as mmpretrain's ``AverageClsScoreTTA``)."""

    def merge_preds(self, data_samples_list):
        merged = []
        for views in data_samples_list:
            score = torch.stack([view["score"] for view in views]).mean(0)
            merged.append(dict(pred=int(score.argmax()), gt=views[0]["gt"], score=score))
        return merged
