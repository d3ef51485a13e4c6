"""build_evaluator, and the errors every bad input to the evaluator package raises."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import MulticlassAccuracy

from mm2lightning.dist import collect_results
from mm2lightning.evaluator import BaseMetric, DumpResults, Evaluator, TorchMetricsAdapter, build_evaluator
from mm2lightning.registry import METRICS, RegistryError


class CountMetric(BaseMetric):
    """Counts the items of the outputs it is given (a (scores, labels) pair is 2 items)."""

    default_prefix = "count"

    def process(self, data_batch, data_samples):
        self.results.extend(1 for _ in data_samples)

    def compute_metrics(self, results):
        return {"n": len(results)}


class MyEvaluator(Evaluator):
    pass


def evaluate(evaluator: Evaluator, n_samples: int = 3) -> dict:
    evaluator.process((torch.eye(3)[:n_samples], torch.arange(n_samples)))
    return evaluator.evaluate(n_samples)


def test_import_pulls_in_neither_lightning_nor_torchmetrics():
    code = (
        "import sys, mm2lightning.evaluator\n"
        "banned = ('lightning', 'pytorch_lightning', 'torchmetrics', 'mmengine')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in banned)\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_build_evaluator_accepts_every_form():
    METRICS.register_module(name="ApiCountMetric", module=CountMetric, force=True)
    try:
        assert build_evaluator(None) is None
        existing = Evaluator(CountMetric())
        assert build_evaluator(existing) is existing
        cases = {
            "metric config": (dict(type="ApiCountMetric"), [CountMetric]),
            "config with class type": (dict(type=CountMetric, prefix="c"), [CountMetric]),
            "metrics dict": (
                dict(metrics=[dict(type="ApiCountMetric"), MulticlassAccuracy(num_classes=3)]),
                [CountMetric, TorchMetricsAdapter],
            ),
            "metrics dict, one metric": (dict(metrics=CountMetric()), [CountMetric]),
            "BaseMetric": (CountMetric(), [CountMetric]),
            "torchmetrics Metric": (MulticlassAccuracy(num_classes=3), [TorchMetricsAdapter]),
            "MetricCollection": (MetricCollection([MulticlassAccuracy(num_classes=3)]), [TorchMetricsAdapter]),
            "adapter": (TorchMetricsAdapter(MulticlassAccuracy(num_classes=3)), [TorchMetricsAdapter]),
            "mixed list": (
                [dict(type="ApiCountMetric", prefix="c2"), CountMetric(), MulticlassAccuracy(num_classes=3)],
                [CountMetric, CountMetric, TorchMetricsAdapter],
            ),
        }
        for label, (cfg, types) in cases.items():
            evaluator = build_evaluator(cfg)
            assert type(evaluator) is Evaluator, label
            assert [type(m) for m in evaluator.metrics] == types, label
        result = evaluate(
            build_evaluator(
                [dict(type="ApiCountMetric", prefix="c2"), CountMetric(), MulticlassAccuracy(num_classes=3)]
            )
        )
        assert result == {"c2/n": 2, "count/n": 2, "MulticlassAccuracy": 1.0}
        for evaluator_type in ("Evaluator", Evaluator, MyEvaluator):
            built = build_evaluator(dict(type=evaluator_type, metrics=[CountMetric()]))
            assert type(built) is (MyEvaluator if evaluator_type is MyEvaluator else Evaluator)
            assert evaluate(built) == {"count/n": 2}
    finally:
        METRICS.module_dict.pop("ApiCountMetric")


def test_build_evaluator_rejects_other_inputs():
    for bad in (3, "ApiCountMetric", (CountMetric(),), torch.nn.Linear(1, 1)):
        with pytest.raises(
            TypeError, match=rf"an evaluator must be None, an Evaluator, .* but got {type(bad).__name__}"
        ):
            build_evaluator(bad)
    with pytest.raises(ValueError, match="must be 'Evaluator' or a subclass of Evaluator, but got 'MyEvaluator'"):
        build_evaluator(dict(type="MyEvaluator", metrics=[]))
    with pytest.raises(TypeError, match=r"an Evaluator metric must be a BaseMetric, .* but got int: 3"):
        build_evaluator([CountMetric(), 3])


def test_evaluator_rejects_bad_metrics():
    with pytest.raises(TypeError, match=r"an Evaluator metric must be .* but got str: 'CountMetric'"):
        Evaluator("CountMetric")
    with pytest.raises(TypeError, match=r"an Evaluator metric must be .* but got Linear"):
        Evaluator([torch.nn.Linear(1, 1)])
    with pytest.raises(RegistryError, match="'NoSuchMetric' is not registered in the 'metric' registry"):
        Evaluator(dict(type="NoSuchMetric"))


def test_offline_evaluate_rejects_bad_arguments():
    evaluator = Evaluator(CountMetric())
    with pytest.raises(ValueError, match="data_samples length: 2 data length: 1"):
        evaluator.offline_evaluate([{}, {}], data=[{}])
    with pytest.raises(ValueError, match="chunk_size must be a positive integer, but got 0"):
        evaluator.offline_evaluate([{}, {}], chunk_size=0)
    with pytest.raises(RuntimeError, match="every sample of a batch should have the same length"):
        evaluator.offline_evaluate([{}, {}], data=[[1, 2], [1]], chunk_size=2)
    assert evaluator.offline_evaluate([{}] * 5, chunk_size=2) == {"count/n": 5}


def test_base_metric_rejects_bad_arguments():
    with pytest.raises(TypeError, match="abstract"):
        BaseMetric()
    with pytest.raises(
        ValueError, match="collect_dir can only be set when collect_device='cpu', but got collect_device='gpu'"
    ):
        CountMetric(collect_device="gpu", collect_dir="/tmp/x")
    with pytest.raises(ValueError, match=r"collect_device must be one of \('cpu', 'gpu', 'npu'\), but got 'cuda'"):
        CountMetric(collect_device="cuda")
    with pytest.raises(ValueError, match=r"out_file_path must end with '\.pkl' or '\.pickle', but got 'out\.json'"):
        DumpResults(out_file_path="out.json")


def test_collect_results_rejects_bad_arguments():
    with pytest.raises(ValueError, match=r"device must be one of \('cpu', 'gpu', 'npu'\), but got 'cuda'"):
        collect_results([1], 1, device="cuda")
    with pytest.raises(ValueError, match="tmpdir can only be set with device='cpu', but got device='gpu'"):
        collect_results([1], 1, device="gpu", tmpdir="/tmp/x")
