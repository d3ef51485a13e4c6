"""build_dataloader builds what MMEngine's Runner.build_dataloader builds, and says what is wrong in a config."""

from __future__ import annotations

import copy
import pickle
import random

import numpy as np
import pytest
import torch
from torch.utils.data import BatchSampler, DataLoader

from mm2lightning.dataset import DefaultSampler, build_dataloader, pseudo_collate
from mm2lightning.registry import DATA_SAMPLERS, DATASETS, FUNCTIONS, RegistryError

TOY = "Mm2lDatasetTestToy"
RANDOM = "Mm2lDatasetTestRandom"
BATCHER = "Mm2lDatasetTestBatchSampler"


class ToyDataset:
    """Ten samples ``dict(inputs=[i, i], data_samples=i)``; ``full_init`` must run before use."""

    metainfo = dict(classes=("a", "b"))

    def __init__(self, size: int = 10) -> None:
        self.size = size
        self.initialised = False

    def full_init(self) -> None:
        self.initialised = True

    def __getitem__(self, idx: int) -> dict:
        assert self.initialised, "full_init() was not called"
        return dict(inputs=torch.full((2,), float(idx)), data_samples=idx)

    def __len__(self) -> int:
        return self.size


class RandomDataset:
    """Each sample is a draw from ``random``, numpy and torch: it shows how workers are seeded."""

    def __getitem__(self, idx: int) -> dict:
        return dict(py=random.random(), np=float(np.random.rand()), pt=torch.rand(1))

    def __len__(self) -> int:
        return 8


DATASETS.register_module(name=TOY, module=ToyDataset, force=True)
DATASETS.register_module(name=RANDOM, module=RandomDataset, force=True)
DATA_SAMPLERS.register_module(name=BATCHER, module=BatchSampler, force=True)


@pytest.fixture
def runner(mmengine):
    """MMEngine's Runner, with the same test classes in its registries."""
    from mmengine.registry import DATA_SAMPLERS as MM_DATA_SAMPLERS
    from mmengine.registry import DATASETS as MM_DATASETS
    from mmengine.runner import Runner

    MM_DATASETS.register_module(name=TOY, module=ToyDataset, force=True)
    MM_DATASETS.register_module(name=RANDOM, module=RandomDataset, force=True)
    MM_DATA_SAMPLERS.register_module(name=BATCHER, module=BatchSampler, force=True)
    return Runner


def _cfg(**overrides) -> dict:
    cfg = {"dataset": dict(type=TOY), "sampler": dict(type="DefaultSampler", shuffle=True), "batch_size": 3}
    return {**cfg, **overrides}


def _epochs(loader: DataLoader, epochs: int = 2) -> list:
    batches = []
    for epoch in range(epochs):
        loader.sampler.set_epoch(epoch)
        batches.extend(loader)
    return batches


def _assert_same(a, b) -> None:
    assert type(a) is type(b)
    if isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and torch.equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _assert_same(x, y)
    else:
        assert a == b


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        dict(collate_fn=dict(type="default_collate")),
        dict(num_batch_per_epoch=2),
        dict(drop_last=True),
        dict(sampler=dict(type="DefaultSampler", shuffle=False, round_up=False)),
    ],
    ids=["pseudo_collate", "default_collate", "num_batch_per_epoch", "drop_last", "no_shuffle"],
)
def test_same_batches_as_mmengine(runner, overrides):
    cfg = _cfg(**overrides)
    ours = build_dataloader(cfg, seed=42)
    theirs = runner.build_dataloader(copy.deepcopy(cfg), seed=42)
    assert len(ours) == len(theirs) and len(ours.dataset) == len(theirs.dataset)
    _assert_same(_epochs(ours), _epochs(theirs))


def test_batches_are_shuffled_per_epoch_and_not_stacked_by_default():
    loader = build_dataloader(_cfg(), seed=42)
    assert isinstance(loader.sampler, DefaultSampler) and loader.sampler.seed == 42
    first, second = _epochs(loader, 1), _epochs(loader, 2)[4:]
    assert len(first) == 4 and [len(b["data_samples"]) for b in first] == [3, 3, 3, 1]
    assert isinstance(first[0]["inputs"], list)  # pseudo_collate: a list of tensors, not one tensor
    order = [i for batch in first for i in batch["data_samples"]]
    assert sorted(order) == list(range(10)) and order != list(range(10))
    assert [i for batch in second for i in batch["data_samples"]] != order


def test_diff_rank_seed_gives_the_sampler_a_drawn_seed(runner):
    np.random.seed(7)
    ours = build_dataloader(_cfg(), seed=42, diff_rank_seed=True)
    np.random.seed(7)
    theirs = runner.build_dataloader(_cfg(), seed=42, diff_rank_seed=True)
    assert ours.sampler.seed != 42 and ours.sampler.seed == theirs.sampler.seed
    _assert_same(_epochs(ours), _epochs(theirs))


def test_batch_sampler_config_gets_the_sampler_and_batch_size(runner):
    cfg = _cfg(batch_sampler=dict(type=BATCHER, drop_last=True))
    ours = build_dataloader(cfg, seed=1)
    theirs = runner.build_dataloader(copy.deepcopy(cfg), seed=1)
    assert isinstance(ours.batch_sampler, BatchSampler) and ours.batch_sampler.batch_size == 3
    assert isinstance(ours.batch_sampler.sampler, DefaultSampler) and len(ours) == 3
    _assert_same(list(ours), list(theirs))


def test_workers_are_seeded_as_in_mmengine(runner):
    cfg = dict(
        dataset=dict(type=RANDOM),
        sampler=dict(type="DefaultSampler", shuffle=False),
        batch_size=2,
        num_workers=2,
        collate_fn=dict(type="default_collate"),
    )
    ours = list(build_dataloader(cfg, seed=5))
    _assert_same(ours, list(runner.build_dataloader(copy.deepcopy(cfg), seed=5)))
    random.seed(5)  # worker 0 of rank 0: seed 2 * 0 + 0 + 5; it loads the first batch
    np.random.seed(5)
    torch.manual_seed(5)
    assert ours[0]["py"][0].item() == random.random() and ours[0]["np"][0].item() == np.random.rand()
    assert torch.equal(ours[0]["pt"][0], torch.rand(1))


def test_dataloader_instances_and_dataset_instances():
    loader = DataLoader([1, 2])
    assert build_dataloader(loader) is loader
    dataset = ToyDataset(4)
    dataset.full_init()
    built = build_dataloader(dict(dataset=dataset, sampler=dict(type="DefaultSampler", shuffle=False), batch_size=4))
    assert built.dataset is not dataset and isinstance(built.dataset, ToyDataset)  # the config is deep-copied
    assert next(iter(built))["data_samples"] == [0, 1, 2, 3]


def test_the_config_is_not_changed():
    cfg = _cfg(collate_fn=dict(type="default_collate"), num_batch_per_epoch=1)
    before = copy.deepcopy(cfg)
    build_dataloader(cfg, seed=0)
    assert cfg == before


def test_collate_and_worker_init_configs_bind_their_extra_keys():
    @FUNCTIONS.register_module(name="Mm2lDatasetTestTagged", force=True)
    def tagged(data_batch, tag):
        return tag, pseudo_collate(data_batch)

    loader = build_dataloader(_cfg(collate_fn=dict(type="Mm2lDatasetTestTagged", tag="x")), seed=0)
    tag, batch = next(iter(loader))
    assert tag == "x" and len(batch["data_samples"]) == 3
    loader = build_dataloader(_cfg(collate_fn=dict(type=tagged, tag="y"), worker_init_fn=dict(type=print, end="")))
    assert next(iter(loader))[0] == "y" and loader.worker_init_fn.keywords == dict(end="")
    assert build_dataloader(_cfg(collate_fn=pseudo_collate)).collate_fn is pseudo_collate
    assert next(iter(build_dataloader(_cfg(collate_fn=None))))["inputs"].shape == (3, 2)  # torch's default stacks
    assert build_dataloader(_cfg()).worker_init_fn is None  # no seed, no worker seeding


def test_num_batch_per_epoch_slices_the_dataset():
    loader = build_dataloader(_cfg(num_batch_per_epoch=2), seed=0)
    assert len(loader.dataset) == 6 and len(loader) == 2
    assert loader.dataset.metainfo == ToyDataset.metainfo  # other attributes come from the dataset
    clone = pickle.loads(pickle.dumps(loader.dataset))  # as worker processes receive it
    assert len(clone) == 6 and clone[5]["data_samples"] == 5
    whole = build_dataloader(_cfg(num_batch_per_epoch=100), seed=0)
    assert len(whole.dataset) == 10  # never more than the dataset has (MMEngine would index past its end)


def test_sampler_none_leaves_sampling_to_the_dataloader():
    loader = build_dataloader(dict(dataset=dict(type=TOY), sampler=None, batch_size=5))
    assert [b["data_samples"] for b in loader] == [[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]


ERRORS = [
    pytest.param("not a dict", TypeError, r"expects a DataLoader or a dataloader config dict, but got str", id="not_a_dict"),
    pytest.param(
        dict(sampler=dict(type="DefaultSampler")),
        ValueError,
        r"must contain the key 'dataset' \(a dataset config dict or a dataset\), but got keys \['sampler'\]",
        id="no_dataset",
    ),
    pytest.param(
        dict(dataset=dict(type=TOY), batch_size=2),
        ValueError,
        r"must contain the key 'sampler' \(e\.g\. dict\(type='DefaultSampler', shuffle=True\)\), but got keys \['batch_size'\]",
        id="no_sampler",
    ),
    pytest.param(
        _cfg(dataset=5),
        TypeError,
        r"'dataset' must be a dataset config dict, a map-style dataset \(with __getitem__\) or an IterableDataset, but got int",
        id="bad_dataset",
    ),
    pytest.param(
        _cfg(sampler=3), TypeError, r"'sampler' must be a sampler config dict .* or a sampler, but got int", id="bad_sampler"
    ),
    pytest.param(
        _cfg(sampler=dict(type="DefaultSampeler")),
        RegistryError,
        r"'DefaultSampeler' is not registered in the 'data sampler' registry\. Did you mean: 'DefaultSampler'",
        id="unknown_sampler",
    ),
    pytest.param(
        _cfg(collate_fn=dict(type="pseudo_colate")),
        RegistryError,
        r"'pseudo_colate' is not registered in the 'function' registry\. Did you mean: 'pseudo_collate'",
        id="unknown_collate",
    ),
    pytest.param(
        _cfg(collate_fn=3),
        TypeError,
        r"'collate_fn' must be a callable or a dict with 'type' .*, but got int: 3",
        id="bad_collate",
    ),
    pytest.param(
        _cfg(collate_fn=dict(tag=1)),
        ValueError,
        r"'collate_fn' must contain the key 'type', but got keys \['tag'\]",
        id="collate_without_type",
    ),
    pytest.param(
        _cfg(worker_init_fn=dict(type=3)),
        TypeError,
        r"worker_init_fn\['type'\] must be a name in the 'function' registry or a callable, but got int",
        id="bad_worker_init_type",
    ),
    pytest.param(
        _cfg(num_batch_per_epoch=0),
        ValueError,
        r"num_batch_per_epoch must be a positive int, but got 0",
        id="zero_batches_per_epoch",
    ),
    pytest.param(
        dict(dataset=dict(type=TOY), sampler=None, num_batch_per_epoch=1),
        ValueError,
        r"num_batch_per_epoch needs a batch_size in the dataloader config or in its batch_sampler config",
        id="batches_per_epoch_without_batch_size",
    ),
    pytest.param(
        _cfg(disable_subprocess_warning="yes"),
        TypeError,
        r"disable_subprocess_warning must be a bool, but got 'yes'",
        id="bad_disable_warning",
    ),
    pytest.param(
        _cfg(bach_size=2),
        TypeError,
        r"DataLoader rejected the dataloader config \(keys \['bach_size', 'batch_size'\]\): .*unexpected keyword argument 'bach_size'",
        id="unknown_dataloader_key",
    ),
    pytest.param(
        _cfg(shuffle=True),
        ValueError,
        r"DataLoader rejected the dataloader config .*sampler option is mutually exclusive with shuffle",
        id="shuffle_with_sampler",
    ),
]


@pytest.mark.parametrize(("cfg", "error", "message"), ERRORS)
def test_errors_name_what_is_wrong(cfg, error, message):
    with pytest.raises(error, match=message) as info:
        build_dataloader(cfg, seed=0)
    assert "\n" not in str(info.value)


def test_iterable_dataset_without_sampler(mmengine):
    """MMEngine takes an IterableDataset with sampler=None; so does build_dataloader."""
    import torch
    from mmengine.runner import Runner

    from mm2lightning.dataset import build_dataloader

    class Counting(torch.utils.data.IterableDataset):
        def __iter__(self):
            return iter(range(5))

    cfg = dict(dataset=Counting(), sampler=None, batch_size=2, collate_fn=dict(type="default_collate"))
    ours = [batch.tolist() for batch in build_dataloader(dict(cfg))]
    ref = [batch.tolist() for batch in Runner.build_dataloader(dict(cfg), seed=0)]
    assert ours == ref == [[0, 1], [2, 3], [4]]
