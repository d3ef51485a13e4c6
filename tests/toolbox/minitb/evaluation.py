"""Top-1 accuracy as an mmengine BaseMetric with a default prefix."""

from mmengine.evaluator import BaseMetric

from minitb.registry import METRICS


@METRICS.register_module()
class MiniAccuracy(BaseMetric):
    default_prefix = "mini"

    def process(self, data_batch, data_samples):
        self.results.extend(float(s["pred"] == s["gt"]) for s in data_samples)

    def compute_metrics(self, results):
        return dict(top1=100.0 * sum(results) / len(results))
