# A base config in Python: modules and functions are dropped, everything else is a key.
import itertools  # a builtin module, so that MMEngine does not switch to its lazy-import mode


def _double(x):
    return 2 * x


data_root = 'data/coco'
model = dict(
    type='RetinaNet',
    backbone=dict(type='ResNet', depth=50, out_indices=(0, 1, 2, 3), frozen_stages=1),
    neck=dict(type='FPN', in_channels=[256, 512, 1024, 2048], out_channels=256, num_outs=5),
    head=dict(type='RetinaHead', num_classes=80, anchor=dict(scales=[8], ratios=[0.5, 1.0, 2.0])),
)
train_pipeline = [dict(type='LoadImage'), dict(type='Resize', scale=(1333, 800), keep_ratio=True)]
widths = [_double(w) for w in itertools.chain((16,), (32,))]
