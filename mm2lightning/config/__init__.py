"""MMEngine-compatible config files: ``.py``, ``.yaml``/``.yml`` and ``.json`` with ``_base_`` inheritance.

Example:
    >>> from mm2lightning.config import Config
    >>> cfg = Config.fromfile('configs/resnet.py', cfg_options={'optim_wrapper.optimizer.lr': 0.1})
    >>> cfg.model.type
    'ResNet'
"""

from mm2lightning.config.config import Config
from mm2lightning.config.config_dict import ConfigDict
from mm2lightning.config.custom_imports import import_custom_modules
from mm2lightning.config.errors import ConfigError
from mm2lightning.config.lazy import read_base
from mm2lightning.config.overrides import DictAction, parse_cfg_options

__all__ = ["Config", "ConfigDict", "ConfigError", "DictAction", "import_custom_modules", "parse_cfg_options", "read_base"]
