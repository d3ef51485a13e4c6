"""``BaseTTAModel``: test-time augmentation, as ``mmengine.model.BaseTTAModel``."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from mm2lightning.errors import AssertTypeError
from mm2lightning.model.base_model import BaseModel
from mm2lightning.registry import MODELS


class BaseTTAModel(BaseModel):
    """Tests a model on several augmented views of each sample and merges its predictions.

    The test data of a batch comes as lists, one entry per view (a test-time-augmentation pipeline's output,
    collated): ``test_step`` calls the wrapped model's ``test_step`` on each view and :meth:`merge_preds` on the
    predictions of every sample. Toolboxes' TTA models (mmpretrain's ``AverageClsScoreTTA``, mmdet's
    ``DetTTAModel``) subclass MMEngine's class of the same name; ``mm2lightning test --tta`` builds them from the
    config's ``tta_model``.

    Args:
        module: The tested model, or its ``MODELS`` config.
        data_preprocessor: The model's data preprocessor when its config has none.

    Raises:
        TypeError: ``module`` is neither a module nor a dict.
        AssertTypeError: The model has no ``test_step`` (an ``AssertionError`` too, as MMEngine's).
    """

    def __init__(self, module: nn.Module | Mapping[str, Any], data_preprocessor: Any = None) -> None:
        super().__init__()
        if isinstance(module, nn.Module):
            self.module = module
        elif isinstance(module, Mapping):
            module = dict(module)
            if data_preprocessor is not None:
                module["data_preprocessor"] = data_preprocessor
            self.module = MODELS.build(module)
        else:
            raise TypeError(f"The type of module should be a `nn.Module` instance or a dict, but got {module}")
        if not hasattr(self.module, "test_step"):
            raise AssertTypeError("Model wrapped by BaseTTAModel must implement `test_step`!")

    @abstractmethod
    def merge_preds(self, data_samples_list: Sequence[Sequence[Any]]) -> list[Any]:
        """One prediction per sample from the predictions of its views (``data_samples_list[i]``: sample i's)."""

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("a BaseTTAModel tests through test_step; train and run the wrapped model instead")

    def test_step(self, data: Any) -> list[Any]:
        """The wrapped model's ``test_step`` on each view of the batch, merged per sample."""
        if isinstance(data, Mapping):
            views = len(data[next(iter(data))])
            data_list: list[Any] = [{key: value[i] for key, value in data.items()} for i in range(views)]
        elif isinstance(data, (tuple, list)):
            data_list = [[part[i] for part in data] for i in range(len(data[0]))]
        else:
            raise TypeError(f"data given by dataLoader should be a dict, tuple or a list, but got {type(data)}")
        predictions = [self.module.test_step(view) for view in data_list]
        return self.merge_preds(list(zip(*predictions)))
