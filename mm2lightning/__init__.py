"""mm2lightning: train MMEngine-style models with PyTorch Lightning.

The core (:mod:`mm2lightning.model`, :mod:`mm2lightning.optim`,
:mod:`mm2lightning.registry`) is plain PyTorch and does not import Lightning.
"""

__version__ = "0.1.0"
