"""A small GAN in the style of MMEngine's "train a GAN" tutorial, written once for any BaseModel class."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    for param in module.parameters():
        param.requires_grad_(flag)


def make_gan_class(base: type) -> type:
    """The GAN model subclassing ``base`` (mm2lightning's or mmengine's BaseModel)."""

    class GAN(base):
        def __init__(self, seed: int = 0, noise_seeds: list[int] | None = None) -> None:
            """``noise_seeds``: one noise generator per equal share of the batch (one per rank in DDP tests)."""
            super().__init__()
            torch.manual_seed(seed)
            self.generator = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2))
            self.discriminator = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
            self.noises = [torch.Generator().manual_seed(s) for s in (noise_seeds or [seed + 1])]
            self.noise = self.noises[0]

        def forward(self, inputs, data_samples=None, mode="tensor"):
            return self.generator(inputs)

        def train_step(self, data, optim_wrapper):
            real = self.data_preprocessor(data, True)["inputs"]
            share = real.shape[0] // len(self.noises)
            z = torch.cat([torch.randn(share, 2, generator=g) for g in self.noises])
            with optim_wrapper["discriminator"].optim_context(self.discriminator):
                fake = self.generator(z).detach()
                pred_fake, pred_real = self.discriminator(fake), self.discriminator(real)
                losses = dict(
                    loss_disc_fake=F.binary_cross_entropy_with_logits(pred_fake, torch.zeros_like(pred_fake)),
                    loss_disc_real=F.binary_cross_entropy_with_logits(pred_real, torch.ones_like(pred_real)),
                )
            loss_disc, log_vars = self.parse_losses(losses)
            optim_wrapper["discriminator"].update_params(loss_disc)
            set_requires_grad(self.discriminator, False)
            with optim_wrapper["generator"].optim_context(self.generator):
                pred = self.discriminator(self.generator(z))
                loss_gen = F.binary_cross_entropy_with_logits(pred, torch.ones_like(pred))
            loss_gen, log_vars_gen = self.parse_losses(dict(loss_gen=loss_gen))
            optim_wrapper["generator"].update_params(loss_gen)
            set_requires_grad(self.discriminator, True)
            log_vars.update(log_vars_gen)
            return log_vars

    return GAN


def ring_dataset(n: int = 64, seed: int = 3) -> list[dict[str, torch.Tensor]]:
    gen = torch.Generator().manual_seed(seed)
    angles = torch.randint(0, 8, (n,), generator=gen) * (torch.pi / 4)
    points = torch.stack([angles.cos(), angles.sin()], 1) * 2 + 0.05 * torch.randn(n, 2, generator=gen)
    return [dict(inputs=p) for p in points]


GAN_OPTIM = dict(
    generator=dict(optimizer=dict(type="Adam", lr=1e-3, betas=(0.5, 0.999))),
    discriminator=dict(optimizer=dict(type="SGD", lr=0.05, momentum=0.9), clip_grad=dict(max_norm=1.0)),
)
GAN_SCHEDULERS = dict(
    generator=[dict(type="LinearLR", start_factor=0.5, by_epoch=False, begin=0, end=6)],
    discriminator=[dict(type="MultiStepLR", milestones=[2], gamma=0.5)],
)


def mmengine_optim_wrapper_dict(model):
    """The same optimizers as GAN_OPTIM, built the way MMEngine's GAN tutorial does (an OptimWrapperDict)."""
    from mmengine.optim import OptimWrapper, OptimWrapperDict

    return OptimWrapperDict(
        generator=OptimWrapper(torch.optim.Adam(model.generator.parameters(), lr=1e-3, betas=(0.5, 0.999))),
        discriminator=OptimWrapper(
            torch.optim.SGD(model.discriminator.parameters(), lr=0.05, momentum=0.9), clip_grad=dict(max_norm=1.0)
        ),
    )
