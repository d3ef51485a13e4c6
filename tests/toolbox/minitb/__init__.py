"""A miniature OpenMMLab-style toolbox, built on mmengine's registries as real toolboxes are.

Its scope is ``minitb``; its registries are children of mmengine's roots with ``locations``; it brings a model
with ``init_cfg`` and a data preprocessor, a dataset with an annotation file and transforms, a sampler, a
metric, a hook, an optimizer and an optim wrapper constructor, and bundled configs under ``.mim/configs``.
"""
