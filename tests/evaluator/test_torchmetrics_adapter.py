"""TorchMetricsAdapter: torchmetrics metrics behind the BaseMetric interface."""

from __future__ import annotations

import pytest
import torch
from torchmetrics import Metric, MetricCollection
from torchmetrics.classification import MulticlassAccuracy, MulticlassPrecision

from mm2lightning.evaluator import Evaluator, TorchMetricsAdapter
from mm2lightning.registry import METRICS


def make_batches(n_batches: int = 4, batch_size: int = 5, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    return [
        (torch.randn(batch_size, 3, generator=gen), torch.randint(0, 3, (batch_size,), generator=gen))
        for _ in range(n_batches)
    ]


def accuracy(batches) -> float:
    correct = sum(int((logits.argmax(1) == labels).sum()) for logits, labels in batches)
    return correct / sum(len(labels) for _, labels in batches)


def feed(evaluator: Evaluator, batches) -> int:
    for logits, labels in batches:
        evaluator.process((logits, labels), {"labels": labels})
    return sum(len(labels) for _, labels in batches)


class MeanAndCount(Metric):
    """A metric whose ``compute`` returns a dict."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("total", torch.tensor(0.0), dist_reduce_fx="sum")
        self.add_state("count", torch.tensor(0), dist_reduce_fx="sum")

    def update(self, values: torch.Tensor) -> None:
        self.total += values.sum()
        self.count += values.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        return {"mean": self.total / self.count, "count": self.count}


def test_default_mapping_takes_a_preds_target_pair():
    batches = make_batches()
    evaluator = Evaluator(TorchMetricsAdapter(MulticlassAccuracy(num_classes=3, average="micro"), prefix="val"))
    size = feed(evaluator, batches)
    result = evaluator.evaluate(size)
    assert list(result) == ["val/MulticlassAccuracy"]
    assert type(result["val/MulticlassAccuracy"]) is float
    assert result["val/MulticlassAccuracy"] == pytest.approx(accuracy(batches))


def test_custom_update_args_from_outputs_and_batch():
    batches = make_batches()
    as_kwargs = TorchMetricsAdapter(
        MulticlassAccuracy(num_classes=3, average="micro"),
        update_args=lambda data_batch, outputs: dict(
            preds=torch.stack([o["score"] for o in outputs]), target=data_batch["labels"]
        ),
        name="acc",
    )
    as_args = TorchMetricsAdapter(
        MulticlassAccuracy(num_classes=3, average="micro"),
        update_args=lambda data_batch, outputs: (torch.stack([o["score"] for o in outputs]), data_batch["labels"]),
        name="acc",
        prefix="args",
    )
    evaluator = Evaluator([as_kwargs, as_args])
    for logits, labels in batches:
        evaluator.process([{"score": row} for row in logits], {"labels": labels})
    assert evaluator.evaluate(20) == pytest.approx({"acc": accuracy(batches), "args/acc": accuracy(batches)})


def test_metric_collection_uses_its_keys():
    batches = make_batches()
    collection = MetricCollection(
        {"acc": MulticlassAccuracy(num_classes=3, average="micro"), "prec": MulticlassPrecision(num_classes=3)}
    )
    reference = collection.clone()
    evaluator = Evaluator(TorchMetricsAdapter(collection, prefix="val"))
    size = feed(evaluator, batches)
    for logits, labels in batches:
        reference.update(logits, labels)
    expected = {f"val/{k}": float(v) for k, v in reference.compute().items()}
    assert evaluator.evaluate(size) == pytest.approx(expected)
    assert expected["val/acc"] == pytest.approx(accuracy(batches))


def test_metric_is_reset_between_evaluations():
    first, second = make_batches(seed=1), make_batches(n_batches=2, seed=2)
    evaluator = Evaluator(MulticlassAccuracy(num_classes=3, average="micro"))
    assert evaluator.evaluate(feed(evaluator, first)) == pytest.approx({"MulticlassAccuracy": accuracy(first)})
    assert evaluator.evaluate(feed(evaluator, second)) == pytest.approx({"MulticlassAccuracy": accuracy(second)})
    assert accuracy(first) != pytest.approx(accuracy(second))


def test_samples_past_size_are_dropped_like_base_metric():
    batches = make_batches(n_batches=3, batch_size=4)  # 12 samples seen, the dataset has 10
    evaluator = Evaluator(TorchMetricsAdapter(MulticlassAccuracy(num_classes=3, average="micro")))
    feed(evaluator, batches)
    kept = [*batches[:2], (batches[2][0][:2], batches[2][1][:2])]
    assert evaluator.evaluate(10)["MulticlassAccuracy"] == pytest.approx(accuracy(kept))
    feed(evaluator, batches)  # a whole last batch past size is not used at all
    assert evaluator.evaluate(8)["MulticlassAccuracy"] == pytest.approx(accuracy(batches[:2]))


def test_dict_and_non_scalar_results():
    values = [torch.tensor([1.0, 2.0]), torch.tensor([1.0, 6.0])]
    evaluator = Evaluator(
        [
            TorchMetricsAdapter(MeanAndCount(), update_args=lambda data_batch, outputs: (outputs[0],), prefix="stats"),
            TorchMetricsAdapter(
                MulticlassAccuracy(num_classes=2, average=None), update_args=lambda b, o: (o[0] > 2, b)
            ),
        ]
    )
    for v in values:
        evaluator.process([v], data_batch=torch.tensor([0, 1]))
    result = evaluator.evaluate(4)
    assert result["stats/mean"] == 2.5 and result["stats/count"] == 4.0
    per_class = result["MulticlassAccuracy"]
    assert isinstance(per_class, torch.Tensor) and per_class.shape == (2,)
    assert torch.equal(per_class, torch.tensor([1.0, 0.5]))  # preds (v > 2) [0, 0], [0, 1] vs targets [0, 1] twice


def test_torchmetrics_objects_and_configs_are_wrapped():
    metric = MulticlassAccuracy(num_classes=3)
    evaluator = Evaluator(
        [
            metric,
            dict(type=MulticlassPrecision, num_classes=3),
            dict(type="TorchMetricsAdapter", metric=MulticlassAccuracy(num_classes=3), prefix="cfg"),
        ]
    )
    assert all(isinstance(m, TorchMetricsAdapter) for m in evaluator.metrics)
    assert evaluator.metrics[0].metric is metric
    evaluator.dataset_meta = {"classes": ("a", "b", "c")}
    assert evaluator.metrics[1].dataset_meta == {"classes": ("a", "b", "c")}
    feed(evaluator, make_batches())
    assert sorted(evaluator.evaluate(20)) == ["MulticlassAccuracy", "MulticlassPrecision", "cfg/MulticlassAccuracy"]
    assert METRICS.get("TorchMetricsAdapter") is TorchMetricsAdapter


def test_outputs_that_are_not_a_pair_need_update_args():
    adapter = TorchMetricsAdapter(MulticlassAccuracy(num_classes=3))
    with pytest.raises(
        TypeError, match=r"a list of 3 item\(s\) of type dict.*Pass update_args=lambda data_batch, outputs"
    ):
        Evaluator(adapter).process([{"score": torch.zeros(3)}] * 3)
    with pytest.raises(TypeError, match=r"\(a tuple of 2 item\(s\) of type int\).*without update_args"):
        adapter.process(None, (1, 2))


def test_bad_arguments():
    with pytest.raises(TypeError, match="wraps a torchmetrics Metric or MetricCollection, but got function"):
        TorchMetricsAdapter(lambda preds, target: 0.0)
    with pytest.raises(TypeError, match=r"update_args must be a callable .* but got str"):
        TorchMetricsAdapter(MulticlassAccuracy(num_classes=3), update_args="preds")
    with pytest.raises(ValueError, match="name='acc' only applies to a single Metric"):
        TorchMetricsAdapter(MetricCollection([MulticlassAccuracy(num_classes=3)]), name="acc")
    adapter = TorchMetricsAdapter(MulticlassAccuracy(num_classes=3), update_args=lambda b, o: [o[0], o[1]])
    with pytest.raises(TypeError, match=r"update_args must return a tuple .* or a dict .* but it returned list"):
        adapter.process(None, make_batches(1)[0])


def test_scalar_update_arguments_are_never_dropped():
    # a 0-d argument has no batch length, so samples past size cannot be told apart: every batch counts
    adapter = TorchMetricsAdapter(MeanAndCount(), update_args=lambda data_batch, outputs: (outputs[0].sum(),))
    for v in (torch.tensor([1.0, 2.0]), torch.tensor([5.0, 4.0])):
        adapter.process(None, [v])
    assert adapter.evaluate(1) == {"mean": 6.0, "count": 2.0}
