"""Train the migration guide's toy model with ``lightning.Trainer`` through mm2lightning.

The model is MMEngine's own example (``examples/toy/toy_model.py``: ``nn.Linear(1, 1)``,
losses ``loss1``/``loss2``, 50 samples, batch 2, SGD lr 0.01, 5 epochs). With the
default options it ends at MMEngine Runner's numbers (weight 0.2331653833,
bias 0.7770956159).

Run:
    python examples/toy/train.py [--accumulative-counts 4] [--clip-grad 0.5] [--amp bfloat16] [--scheduler]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))

from toy_model import ToyModel, toy_dataset  # noqa: E402

from mm2lightning import MMLightningModule  # noqa: E402


def optim_wrapper_cfg(accumulative_counts: int = 1, clip_grad: float | None = None, amp: str | None = None) -> dict:
    """The optim_wrapper config, as it would be written for MMEngine's Runner."""
    cfg: dict[str, Any] = dict(optimizer=dict(type="SGD", lr=0.01), accumulative_counts=accumulative_counts)
    if clip_grad is not None:
        cfg["clip_grad"] = dict(max_norm=clip_grad)
    if amp is not None:
        cfg.update(type="AmpOptimWrapper", dtype=amp)
    return cfg


WARMUP_THEN_STEPS = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type="MultiStepLR", by_epoch=True, milestones=[3, 4], gamma=0.1),
]


class History(L.Callback):
    """Keeps every iteration's ``train_step`` output (as floats)."""

    def __init__(self) -> None:
        self.log_vars: list[dict[str, float]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.log_vars.append({key: float(value.detach()) for key, value in outputs.items()})


def train(
    max_epochs: int = 5,
    accumulative_counts: int = 1,
    clip_grad: float | None = None,
    amp: str | None = None,
    scheduler: bool = False,
    seed: int = 0,
    **trainer_kwargs: Any,
) -> tuple[MMLightningModule, list[dict[str, float]]]:
    """Train the toy model; return the module and the per-iteration ``train_step`` outputs."""
    torch.manual_seed(seed)
    module = MMLightningModule(
        ToyModel(),
        optim_wrapper=optim_wrapper_cfg(accumulative_counts, clip_grad, amp),
        param_scheduler=WARMUP_THEN_STEPS if scheduler else None,
    )
    history = History()
    trainer_kwargs = dict(
        dict(max_epochs=max_epochs, logger=False, enable_checkpointing=False, enable_progress_bar=False,
             enable_model_summary=False, accelerator="cpu", devices=1),
        **trainer_kwargs,
    )
    trainer_kwargs["callbacks"] = [*trainer_kwargs.get("callbacks", []), history]
    L.Trainer(**trainer_kwargs).fit(module, DataLoader(toy_dataset(), batch_size=2))
    return module, history.log_vars


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--accumulative-counts", type=int, default=1)
    parser.add_argument("--clip-grad", type=float, default=None, metavar="MAX_NORM")
    parser.add_argument("--amp", choices=["float16", "bfloat16"], default=None)
    parser.add_argument("--scheduler", action="store_true", help="LinearLR warm-up (1 epoch) then MultiStepLR")
    args = parser.parse_args()
    module, history = train(args.epochs, args.accumulative_counts, args.clip_grad, args.amp, args.scheduler)
    linear = module.model.linear
    print(f"iterations: {len(history)}")
    print("final loss: " + "  ".join(f"{k}={v:.6f}" for k, v in history[-1].items()))
    print(f"weight={linear.weight.item():.10f} bias={linear.bias.item():.10f}")


if __name__ == "__main__":
    main()
