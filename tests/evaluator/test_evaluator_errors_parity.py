"""Each misuse MMEngine's ``evaluator`` refuses: ours raises an instance of MMEngine's type with its phrase.

Every case runs the same inputs on mmengine and on mm2lightning (see docs/errors.md).
"""

from __future__ import annotations

import types

import pytest
from error_parity import assert_same_error

pytest.importorskip("mmengine")
import mmengine.evaluator  # noqa: E402

import mm2lightning.evaluator as our_evaluator  # noqa: E402


def _namespace(module):
    class Fixed(module.BaseMetric):
        default_prefix = "p"

        def process(self, data_batch, data_samples):
            self.results.extend(data_samples)

        def compute_metrics(self, results):
            return {"acc": 1.0}

    return types.SimpleNamespace(
        Fixed=Fixed, Evaluator=module.Evaluator, DumpResults=module.DumpResults,
        get_metric_value=module.get_metric_value,
    )


mm_ns = _namespace(mmengine.evaluator)
our_ns = _namespace(our_evaluator)


def _duplicate_names(o):
    evaluator = o.Evaluator([o.Fixed(), o.Fixed()])
    evaluator.process([1], None)
    evaluator.evaluate(1)


CASES = [
    ("collect_dir_not_cpu", lambda o: o.Fixed(collect_device="gpu", collect_dir="/tmp/x"), ValueError,
     "`collec_dir` could only be configured when `collect_device='cpu'`"),
    ("dump_not_pkl", lambda o: o.DumpResults(out_file_path="out.json"), ValueError,
     "The output file must be a pkl file."),
    ("duplicate_metric_names", _duplicate_names, ValueError,
     "There are multiple evaluation results with the same metric name p/acc"),
    ("offline_length_mismatch", lambda o: o.Evaluator(o.Fixed()).offline_evaluate([1, 2], [1]), AssertionError,
     "data_samples and data should have the same length"),
    ("metric_value_full_name", lambda o: o.get_metric_value("val/x", {"val/acc": 1}), ValueError,
     'The indicator "val/x" can not match any metric in'),
    ("metric_value_name", lambda o: o.get_metric_value("x", {"val/acc": 1}), ValueError,
     "The indicator x can not match any metric in"),
    ("metric_value_multiple", lambda o: o.get_metric_value("acc", {"val/acc": 1, "test/acc": 2}), ValueError,
     'The indicator "acc" matches multiple metrics'),
]


@pytest.mark.parametrize(("fn", "mm_type", "phrase"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_same_error_as_mmengine(fn, mm_type, phrase):
    assert_same_error(fn, mm_ns, our_ns, mm_type, phrase)
