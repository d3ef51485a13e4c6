"""strategy='fsdp_mm' (MMFSDPStrategy): FSDP2 sharding under train_step, 2 gloo processes on CPU.

Each case runs ``fsdp_worker.py`` (Lightning re-launches it for rank 1); the checks compare the gathered weights
with a 1-process unsharded run on the concatenated batches and with the same run under DDP.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch
from lightning.pytorch.strategies import FSDPStrategy
from lightning.pytorch.utilities.exceptions import MisconfigurationException
from torch import nn
from torch.utils.data import DataLoader

from mm2lightning import MMFSDPStrategy, MMLightningModule
from mm2lightning.lightning.module import check_strategy_support
from mm2lightning.model import BaseModel
from mm2lightning.optim import build_optim_wrapper
from mm2lightning.runner.checkpoint import convert_checkpoint, load_checkpoint_file

from fsdp_worker import NET_OPTIM, NET_SCHEDULER
from gan import GAN_OPTIM, GAN_SCHEDULERS, make_gan_class, ring_dataset
from models import Net, net_data
from test_distributed import run_two_nodes, single_process
from test_distributed import run_worker as launch

WORKER = Path(__file__).resolve().parent / "fsdp_worker.py"
ITERATIONS = 10  # 2 epochs x 5 batches per rank: not a multiple of accumulative_counts=3


def run_worker(case: str, out: Path, *extra: str) -> list[dict]:
    """Run a case and return what each rank saved."""
    launch(case, out, *extra, worker=WORKER)
    suffix = "_resumed" if extra else ""
    return [torch.load(out / f"{case}{suffix}_rank{r}.pt", weights_only=False) for r in (0, 1)]


def assert_close(params: dict, reference: dict, tol: float = 1e-6) -> None:
    assert params.keys() == reference.keys()
    for key, value in reference.items():
        assert (params[key] - value).abs().max().item() <= tol, key


def test_sharded_accumulation_with_clipping_and_scheduler_equals_one_process_and_ddp(tmp_path):
    sharded, ddp = run_worker("net_fsdp", tmp_path), run_worker("net_ddp", tmp_path)
    reference = single_process(MMLightningModule(Net(), optim_wrapper=NET_OPTIM, param_scheduler=NET_SCHEDULER),
                               net_data())
    for rank in sharded:
        assert rank["units"] == ["body.0", "body.2"] and rank["global_step"] == ITERATIONS
        assert_close(rank["params"], reference.model.state_dict())
        assert_close(rank["params"], ddp[0]["params"])
        # accumulation 3 over 10 iterations: no reduce-scatter inside a window, one per unit on its last
        # micro-batch, and on the run's last iteration (the shortened tail window)
        assert rank["reduce_scatters"] == [0, 0, 2, 0, 0, 2, 0, 0, 2, 2]
        # clipping by the norm of the whole model: DDP's norms, and above max_norm (so it clipped)
        assert rank["grad_norms"] == ddp[0]["grad_norms"]
        assert max(norm for _, norm in filter(None, rank["grad_norms"])) > NET_OPTIM["clip_grad"]["max_norm"]
        assert {kind for kind, _ in filter(None, rank["grad_norms"])} == {"Tensor"}  # a plain tensor to log
        assert_close(rank["full_state_dict"], reference.model.state_dict())
    # each rank holds its half of every parameter (dim 0 split as torch.chunk), nothing replicated
    full = reference.model.state_dict()
    for key, value in full.items():
        chunks = [c.numel() for c in torch.chunk(value, 2)] + [0]
        assert [rank["local_numel"][key] for rank in sharded] == chunks[:2], key
    total = sum(v.numel() for v in full.values())
    assert sum(sum(rank["local_numel"].values()) for rank in sharded) == total


def test_reshard_after_forward_sets_the_all_gathers(tmp_path):
    """Units body.0 (inside the model's own unit) and the model: None (torch's default) gathers body.0 again
    for backward but keeps the root's parameters; True gathers both again; False neither."""
    launch("reshard", tmp_path, worker=WORKER)
    for rank in (0, 1):
        counts = torch.load(tmp_path / f"reshard_rank{rank}.pt")
        assert counts == {"None": [3, 3, 3], "True": [4, 4, 4], "False": [2, 2, 2]}


def test_hybrid_sharding_over_two_nodes(tmp_path):
    """replicate_size='auto': one replica per node (2 nodes of 1 process over loopback), equal to one process."""
    run_two_nodes("net_hsdp", tmp_path, worker=WORKER)
    reference = single_process(MMLightningModule(Net(), optim_wrapper=NET_OPTIM, param_scheduler=NET_SCHEDULER),
                               net_data())
    for rank in [torch.load(tmp_path / f"net_hsdp_rank{r}.pt", weights_only=False) for r in (0, 1)]:
        assert rank["mesh"] == ("replicate", "shard")
        assert_close(rank["params"], reference.model.state_dict())
        full = reference.model.state_dict()
        assert rank["local_numel"] == {k: v.numel() for k, v in full.items()}  # a shard group of one: whole


def test_gan_sharded_per_child_equals_one_process(tmp_path):
    """The default policy: the generator and the discriminator are separate units, each with its own optim
    wrapper (clipping in the discriminator's); ranks that initialise differently start from rank 0's weights."""
    ranks = run_worker("gan_fsdp", tmp_path)
    model = make_gan_class(BaseModel)(noise_seeds=[1, 2])
    reference = single_process(MMLightningModule(model, optim_wrapper=GAN_OPTIM, param_scheduler=GAN_SCHEDULERS),
                               ring_dataset(48))
    for rank in ranks:
        assert rank["units"] == ["discriminator", "generator"]
        assert rank["reduce_scatters"] == [2] * 12  # one per unit and iteration: no accumulation here
        assert_close(rank["params"], reference.model.state_dict())


def test_the_gan_examples_model_sharded_equals_one_process(tmp_path):
    """examples/gan's GAN (PacGAN discriminator, an OptimWrapperDict, cosine schedules) with strategy='fsdp_mm'.
    In one process the noise of both ranks' streams (seed + rank) is drawn in turn for the concatenated batch."""
    from fsdp_worker import EXAMPLE_GAN

    from gan_model import GAN as ExampleGAN, RingDataset  # on sys.path through fsdp_worker

    example = sys.modules.get("gan_example_train")  # examples/toy/train.py may be imported as `train` already
    if example is None:
        spec = importlib.util.spec_from_file_location("gan_example_train", EXAMPLE_GAN / "train.py")
        example = sys.modules["gan_example_train"] = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(example)
    PARAM_SCHEDULER, optim_wrapper_cfg = example.PARAM_SCHEDULER, example.optim_wrapper_cfg  # noqa: N806

    class BothRanksNoise(ExampleGAN):
        def noise(self, num, like):
            if self._noise is None:
                self._noise = [torch.Generator().manual_seed(self.seed + rank) for rank in (0, 1)]
            return torch.cat([torch.randn(num // 2, self.noise_size, generator=g) for g in self._noise]).to(like)

    ranks = run_worker("gan_example_fsdp", tmp_path)
    torch.manual_seed(0)
    module = MMLightningModule(BothRanksNoise(seed=0), optim_wrapper=optim_wrapper_cfg(), param_scheduler=PARAM_SCHEDULER)
    reference = single_process(module, list(RingDataset(48, seed=0)))
    for rank in ranks:
        assert rank["units"] == ["discriminator", "generator"] and rank["global_step"] == 12
        assert_close(rank["params"], reference.model.state_dict())


def test_float16_overflow_in_one_shard_skips_the_step_on_every_rank(tmp_path):
    """AmpOptimWrapper(float16): at iteration 2 one gradient element overflows on rank 0, and after the
    reduce-scatter only rank 1's shard holds it; both ranks skip that step and lower the scale, as under DDP.
    The same with MMEngine's use_fsdp=True (a ShardedGradScaler)."""
    ddp = run_worker("amp_ddp", tmp_path)
    scales = ddp[0]["scales"]
    assert scales[2] == scales[1] / 2  # the overflow's skipped step
    for case, scaler in (("amp_fsdp", "GradScaler"), ("amp_fsdp_use_fsdp", "ShardedGradScaler")):
        for rank in run_worker(case, tmp_path):
            assert rank["scaler"][0] == scaler
            assert rank["scales"] == scales, case
            assert_close(rank["params"], ddp[0]["params"])


def test_sharded_checkpoint_mid_window_resumes_exactly_and_converts(tmp_path):
    uninterrupted = run_worker("net_ckpt", tmp_path)
    folder = tmp_path / "ckpt" / "epoch=0.ckpt"  # iteration 5: inside the second accumulation window (3..5)
    assert sorted(p.name for p in folder.iterdir()) == [
        ".metadata", "__0_0.distcp", "__1_0.distcp", "accumulated_grads_rank0.pt", "accumulated_grads_rank1.pt",
        "meta.pt",
    ]
    resumed = run_worker("net_ckpt", tmp_path, "resume")
    for rank in resumed:
        assert rank["global_step"] == ITERATIONS and rank["reduce_scatters"] == [2, 0, 0, 2, 2]
        for key, value in uninterrupted[0]["params"].items():
            assert torch.equal(rank["params"][key], value), key

    # the folder, gathered: MMEngine's layout, loadable by the unsharded model and by mmengine's Runner
    epoch0 = uninterrupted[0]["epoch_weights"][0]
    converted = convert_checkpoint(folder, tmp_path / "epoch_1.pth")
    state = torch.load(converted, weights_only=True)
    assert state["meta"]["iter"] == 5
    net = Net()
    net.load_state_dict(state["state_dict"])
    for key, value in net.state_dict().items():
        assert torch.equal(value, epoch0[key]), key
    assert load_checkpoint_file(folder)["optimizer_states"][0]["param_groups"][0]["params"] == [0, 1, 2, 3]

    mmengine_runner = pytest.importorskip("mmengine.runner", reason="mmengine is the reference for loading")
    from mmengine.model import BaseModel as MMBaseModel

    class MMNet(MMBaseModel):
        def __init__(self) -> None:
            super().__init__()
            self.body = nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Linear(16, 1))

        def forward(self, x, y=None, mode="tensor"):
            return self.body(x)

    runner = mmengine_runner.Runner(model=MMNet(), work_dir=str(tmp_path / "mm"))
    runner.load_checkpoint(str(converted))
    for key, value in runner.model.state_dict().items():
        assert torch.equal(value, epoch0[key]), key


def test_one_process_misuse_and_a_root_unit(tmp_path):
    """Misuse fails by name; parameters outside every unit make the model a unit; cpu_offload=True trains the
    same; mp_policy computes in bfloat16 on float32 shards (1 process, world size 1)."""
    launch("misuse", tmp_path, worker=WORKER)
    errors = torch.load(tmp_path / "misuse.pt")
    assert errors["not_mm_module"][0] == "TypeError"
    assert "fsdp_mm" in errors["not_mm_module"][1] and "BoringModel" in errors["not_mm_module"][1]
    assert errors["policy_matches_nothing"][0] == "ShardPolicyError"
    assert "Conv2d" in errors["policy_matches_nothing"][1] and "matches no submodule" in errors["policy_matches_nothing"][1]
    units, params = errors["root_unit"]
    assert units == ["", "body.0"]
    reference = MMLightningModule(Net(), optim_wrapper=NET_OPTIM)
    L.Trainer(accelerator="cpu", devices=1, max_epochs=2, logger=False, enable_checkpointing=False,
              enable_progress_bar=False).fit(reference, DataLoader(net_data(), batch_size=8))
    assert_close(params, reference.model.state_dict())
    assert_close(errors["cpu_offload"], reference.model.state_dict())
    seen, dtypes, params = errors["bfloat16"]
    assert seen == [(torch.bfloat16, torch.bfloat16)] and set(dtypes.values()) == {torch.float32}
    assert_close(params, reference.model.state_dict(), tol=2e-2)  # bfloat16 compute: close, not equal
    assert any((params[k] - v).abs().max() > 0 for k, v in reference.model.state_dict().items())


def test_lightning_fsdp_points_to_fsdp_mm():
    """Lightning's own FSDP (FSDP1) cannot run backward outside the wrapped forward; the error names the way."""
    wrapper = build_optim_wrapper(Net(), dict(optimizer=dict(type="SGD", lr=0.1)))
    with pytest.raises(MisconfigurationException, match="strategy='fsdp_mm'"):
        check_strategy_support(FSDPStrategy(), wrapper)
    check_strategy_support(MMFSDPStrategy(), wrapper)  # ours passes


def test_float16_mixed_trainer_precision_is_refused():
    """On GPUs Lightning keeps precision='16-mixed' (on the CPU it becomes bf16-mixed), so checked directly."""
    strategy = MMFSDPStrategy()
    strategy._lightning_module = MMLightningModule(Net())
    with pytest.raises(MisconfigurationException, match="AmpOptimWrapper"):
        strategy.setup(SimpleNamespace(precision="16-mixed"))


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(replicate_size=0), ValueError, "replicate_size"),
        (dict(reshard_after_forward="yes"), TypeError, "reshard_after_forward"),
        (dict(cpu_offload="cpu"), TypeError, "cpu_offload"),
        (dict(mp_policy=dict(param_dtype="bfloat16", buffer_dtype="float32")), ValueError, "buffer_dtype"),
        (dict(mp_policy=dict(param_dtype="bf16")), ValueError, "param_dtype"),
    ],
)
def test_bad_arguments_fail_by_name(kwargs, error, match):
    with pytest.raises(error, match=match):
        MMFSDPStrategy(**kwargs)


def test_mixed_precision_policy_from_a_dict():
    strategy = MMFSDPStrategy(mp_policy=dict(param_dtype="bfloat16", reduce_dtype=torch.float32))
    assert (strategy.mp_policy.param_dtype, strategy.mp_policy.reduce_dtype) == (torch.bfloat16, torch.float32)
