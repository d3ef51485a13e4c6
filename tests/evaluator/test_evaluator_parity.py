"""The same metric code run by mmengine.evaluator and by mm2lightning.evaluator gives the same results."""

from __future__ import annotations

import logging

import pytest
import torch

from mm2lightning.dist import collect_results
from mm2lightning.evaluator import BaseMetric, DumpResults, Evaluator, get_metric_value
from mm2lightning.registry import METRICS


def accuracy_class(base: type, default_prefix: str | None = None) -> type:
    """The 15-minute tutorial's Accuracy, subclassing ``base``."""

    class Accuracy(base):
        def process(self, data_batch, data_samples):
            score, gt = data_samples
            self.results.append({"batch_size": len(gt), "correct": (score.argmax(1) == gt).sum().cpu()})

        def compute_metrics(self, results):
            total_correct = sum(item["correct"] for item in results)
            total_size = sum(item["batch_size"] for item in results)
            return dict(accuracy=100 * total_correct / total_size)

    Accuracy.default_prefix = default_prefix
    return Accuracy


def recorder_class(base: type) -> type:
    """Records what ``process`` receives; ``compute_metrics`` returns it."""

    class Recorder(base):
        default_prefix = "rec"

        def process(self, data_batch, data_samples):
            self.results.append({"batch": data_batch, "samples": data_samples, "meta": self.dataset_meta})

        def compute_metrics(self, results):
            return dict(seen=results)

    return Recorder


@pytest.fixture
def batches() -> list[tuple[torch.Tensor, torch.Tensor]]:
    gen = torch.Generator().manual_seed(0)
    return [(torch.randn(4, 3, generator=gen), torch.randint(0, 3, (4,), generator=gen)) for _ in range(5)]


def run(evaluator, batches, size: int = 20) -> dict:
    for logits, labels in batches:
        evaluator.process(data_samples=(logits, labels), data_batch={"labels": labels})
    return evaluator.evaluate(size)


def as_python(metrics: dict) -> dict:
    return {k: v.item() if isinstance(v, torch.Tensor) else v for k, v in metrics.items()}


@pytest.mark.parametrize(
    ("default_prefix", "prefix", "key"),
    [
        (None, None, "accuracy"),
        ("cls", None, "cls/accuracy"),
        ("cls", "val", "val/accuracy"),
        (None, "val", "val/accuracy"),
    ],
)
def test_tutorial_accuracy_matches_mmengine(mmengine, batches, default_prefix, prefix, key):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.evaluator import Evaluator as MMEvaluator

    ours = run(Evaluator(accuracy_class(BaseMetric, default_prefix)(prefix=prefix)), batches)
    ref = run(MMEvaluator(accuracy_class(MMBaseMetric, default_prefix)(prefix=prefix)), batches)
    assert list(ours) == list(ref) == [key]
    assert as_python(ours) == pytest.approx(as_python(ref))
    correct = sum(int((s.argmax(1) == g).sum()) for s, g in batches)
    assert ours[key].item() == pytest.approx(100 * correct / 20)


def test_results_are_cleared_after_evaluate(mmengine, batches):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.evaluator import Evaluator as MMEvaluator

    ours, ref = Evaluator(accuracy_class(BaseMetric, "a")()), MMEvaluator(accuracy_class(MMBaseMetric, "a")())
    run(ours, batches), run(ref, batches)
    assert ours.metrics[0].results == ref.metrics[0].results == []
    assert as_python(run(ours, batches[:2])) == pytest.approx(as_python(run(ref, batches[:2])))


def test_single_process_collect_results_truncates_to_size(mmengine):
    from mmengine.dist import collect_results as mm_collect_results

    results = list(range(10))
    for size in (0, 3, 10, 12):
        assert collect_results(results, size) == mm_collect_results(results, size) == results[:size]


def test_duplicate_metric_names_raise_like_mmengine(mmengine, batches):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.evaluator import Evaluator as MMEvaluator

    match = "multiple evaluation results with the same metric name val/accuracy"
    for evaluator_cls, base in ((Evaluator, BaseMetric), (MMEvaluator, MMBaseMetric)):
        accuracy = accuracy_class(base, "val")
        evaluator = evaluator_cls([accuracy(), accuracy()])
        with pytest.raises(ValueError, match=match):
            run(evaluator, batches)
    distinct = run(
        Evaluator([accuracy_class(BaseMetric, "val")(), accuracy_class(BaseMetric, "val")(prefix="other")]), batches
    )
    assert sorted(distinct) == ["other/accuracy", "val/accuracy"]


def test_evaluator_from_configs_via_metrics_registry(mmengine, batches):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.evaluator import Evaluator as MMEvaluator
    from mmengine.registry import METRICS as MM_METRICS

    ours_cls, ref_cls = accuracy_class(BaseMetric, "acc"), accuracy_class(MMBaseMetric, "acc")
    METRICS.register_module(name="ParityAccuracy", module=ours_cls, force=True)
    MM_METRICS.register_module(name="ParityAccuracy", module=ref_cls, force=True)
    try:
        ours = Evaluator([dict(type="ParityAccuracy"), dict(type=ours_cls, prefix="by_class")])
        ref = MMEvaluator([dict(type="ParityAccuracy"), dict(type=ref_cls, prefix="by_class")])
        assert [type(m) for m in ours.metrics] == [ours_cls, ours_cls]
        assert as_python(run(ours, batches)) == pytest.approx(as_python(run(ref, batches)))
        single = Evaluator(dict(type="ParityAccuracy", prefix="one"))
        assert list(run(single, batches)) == ["one/accuracy"]
    finally:
        METRICS.module_dict.pop("ParityAccuracy")
        MM_METRICS.module_dict.pop("ParityAccuracy")


def test_data_elements_become_dicts_and_meta_propagates(mmengine):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.evaluator import Evaluator as MMEvaluator
    from mmengine.structures import BaseDataElement

    samples = [BaseDataElement(pred=torch.tensor([0.2, 0.8]), metainfo=dict(img_id=i)) for i in range(2)]
    outputs = []
    for evaluator in (Evaluator(recorder_class(BaseMetric)()), MMEvaluator(recorder_class(MMBaseMetric)())):
        evaluator.dataset_meta = {"classes": ("cat", "dog")}
        assert evaluator.metrics[0].dataset_meta == {"classes": ("cat", "dog")}
        evaluator.process(samples, data_batch={"inputs": [1, 2]})
        outputs.append(evaluator.evaluate(2)["rec/seen"])
    ours, ref = outputs
    assert len(ours) == len(ref) == 1
    assert ours[0]["batch"] == ref[0]["batch"] == {"inputs": [1, 2]}
    assert ours[0]["meta"] == ref[0]["meta"] == {"classes": ("cat", "dog")}
    for mine, theirs in zip(ours[0]["samples"], ref[0]["samples"], strict=True):
        assert type(mine) is type(theirs) is dict
        assert mine["img_id"] == theirs["img_id"]
        assert torch.equal(mine["pred"], theirs["pred"])


def test_offline_evaluate_matches_mmengine(mmengine):
    from mmengine.evaluator import BaseMetric as MMBaseMetric
    from mmengine.evaluator import Evaluator as MMEvaluator

    data_samples = [{"pred": i} for i in range(5)]
    data = [{"inputs": torch.tensor([i]), "meta": (i, f"img{i}")} for i in range(5)]
    ours = Evaluator(recorder_class(BaseMetric)()).offline_evaluate(data_samples, data, chunk_size=2)
    ref = MMEvaluator(recorder_class(MMBaseMetric)()).offline_evaluate(data_samples, data, chunk_size=2)
    assert [r["samples"] for r in ours["rec/seen"]] == [r["samples"] for r in ref["rec/seen"]]
    assert [[d["pred"] for d in r["samples"]] for r in ours["rec/seen"]] == [[0, 1], [2, 3], [4]]
    for mine, theirs in zip(ours["rec/seen"], ref["rec/seen"], strict=True):
        assert mine["batch"]["meta"] == theirs["batch"]["meta"]  # tuples transposed into lists
        assert all(torch.equal(a, b) for a, b in zip(mine["batch"]["inputs"], theirs["batch"]["inputs"], strict=True))
    without_data = Evaluator(recorder_class(BaseMetric)()).offline_evaluate(data_samples)
    assert [r["batch"] for r in without_data["rec/seen"]] == [None] * 5


def test_dump_results_matches_mmengine(mmengine, tmp_path):
    from mmengine.evaluator import DumpResults as MMDumpResults
    from mmengine.fileio import load

    outputs = [{"pred": torch.tensor([1.0, 2.0])}, {"pred": torch.tensor([3.0])}]
    for cls, name in ((DumpResults, "ours.pkl"), (MMDumpResults, "ref.pkl")):
        evaluator = Evaluator(cls(out_file_path=str(tmp_path / name)))
        evaluator.process(outputs)
        assert evaluator.evaluate(2) == {}
    ours, ref = load(tmp_path / "ours.pkl"), load(tmp_path / "ref.pkl")
    assert len(ours) == len(ref) == 2
    assert all(torch.equal(a["pred"], b["pred"]) for a, b in zip(ours, ref, strict=True))
    assert "DumpResults" in METRICS


def test_get_metric_value_matches_mmengine(mmengine):
    from mmengine.evaluator import get_metric_value as mm_get_metric_value

    metrics = {"val/acc": 0.5, "val/top5": 0.9, "test/top5": 0.8}
    for indicator in ("val/acc", "acc", "val/top5"):
        assert get_metric_value(indicator, metrics) == mm_get_metric_value(indicator, metrics)
    for indicator, match in (
        ("top5", "matches multiple metrics"),
        ("f1", "can not match any metric"),
        ("x/acc", "can not match"),
    ):
        with pytest.raises(ValueError, match=match):
            get_metric_value(indicator, metrics)
        with pytest.raises(ValueError, match=match):
            mm_get_metric_value(indicator, metrics)


def test_warnings_for_missing_prefix_and_empty_results(caplog):
    accuracy = accuracy_class(BaseMetric)
    with caplog.at_level(logging.WARNING, logger="mm2lightning.evaluator"):
        metric = accuracy()
        metric.compute_metrics = lambda results: {"n": len(results)}
        assert metric.evaluate(10) == {"n": 0}
    messages = [r.getMessage() for r in caplog.records]
    assert "The prefix is not set in metric class Accuracy." in messages
    assert any("Accuracy got empty `self.results`" in m for m in messages)
