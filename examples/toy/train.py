"""Train the migration guide's toy model with mm2lightning's MMEngine-compatible core.

The loop below does what MMEngine's ``Runner.train()`` does for an epoch-based
run (initialise the accumulation count, ``train_step`` per batch, step
iteration-based schedulers after each iteration and epoch-based ones after each
epoch), so its numbers equal MMEngine's. With the default options it ends at
MMEngine's reference weights (0.2331653833, 0.7770956159).

Run:
    python examples/toy/train.py [--accumulative-counts 3] [--clip-grad 0.5] [--amp bfloat16] [--scheduler]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parent))

from toy_model import ToyModel, toy_dataset  # noqa: E402

from mm2lightning.optim import build_optim_wrapper, build_param_schedulers  # noqa: E402


def optim_wrapper_cfg(accumulative_counts: int = 1, clip_grad: float | None = None, amp: str | None = None) -> dict:
    cfg = dict(optimizer=dict(type="SGD", lr=0.01), accumulative_counts=accumulative_counts)
    if clip_grad is not None:
        cfg["clip_grad"] = dict(max_norm=clip_grad)
    if amp is not None:
        cfg.update(type="AmpOptimWrapper", dtype=amp)
    return cfg


WARMUP_THEN_STEPS = [
    dict(type="LinearLR", start_factor=0.1, by_epoch=True, begin=0, end=1, convert_to_iter_based=True),
    dict(type="MultiStepLR", by_epoch=True, milestones=[3, 4], gamma=0.1),
]


def train(
    max_epochs: int = 5,
    accumulative_counts: int = 1,
    clip_grad: float | None = None,
    amp: str | None = None,
    scheduler: bool = False,
    seed: int = 0,
) -> tuple[ToyModel, list[dict[str, float]]]:
    """Train the toy model; return it and the per-iteration ``train_step`` outputs."""
    torch.manual_seed(seed)
    model = ToyModel()
    loader = DataLoader(toy_dataset(), batch_size=2)
    optim_wrapper = build_optim_wrapper(model, optim_wrapper_cfg(accumulative_counts, clip_grad, amp))
    max_iters = max_epochs * len(loader)
    schedulers = build_param_schedulers(
        WARMUP_THEN_STEPS if scheduler else None,
        optim_wrapper,
        epoch_length=len(loader),
        max_epochs=max_epochs,
        max_iters=max_iters,
    )
    optim_wrapper.initialize_count_status(model, 0, max_iters)
    history = []
    model.train()
    for _ in range(max_epochs):
        for batch in loader:
            log_vars = model.train_step(batch, optim_wrapper)
            history.append({k: v.item() for k, v in log_vars.items()})
            for s in schedulers:
                if not s.by_epoch:
                    s.step()
        for s in schedulers:
            if s.by_epoch:
                s.step()
    return model, history


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--accumulative-counts", type=int, default=1)
    parser.add_argument("--clip-grad", type=float, default=None, metavar="MAX_NORM")
    parser.add_argument("--amp", choices=["float16", "bfloat16"], default=None)
    parser.add_argument("--scheduler", action="store_true", help="LinearLR warm-up (1 epoch) then MultiStepLR")
    args = parser.parse_args()
    model, history = train(args.epochs, args.accumulative_counts, args.clip_grad, args.amp, args.scheduler)
    last = history[-1]
    print(f"iterations: {len(history)}")
    print("final loss: " + "  ".join(f"{k}={v:.6f}" for k, v in last.items()))
    print(f"weight={model.linear.weight.item():.10f} bias={model.linear.bias.item():.10f}")


if __name__ == "__main__":
    main()
