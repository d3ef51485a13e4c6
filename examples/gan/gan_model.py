"""The GAN of MMEngine's "train a GAN" tutorial, on a ring of 8 Gaussians in 2-D instead of MNIST.

``GAN.train_step`` is the tutorial's, unchanged in structure: preprocess; update the
discriminator on fake (generated without gradients) and real samples; freeze the
discriminator; update the generator; unfreeze; return the merged log variables. It
is plain MMEngine-style code (only the ``BaseModel`` import comes from
``mm2lightning.model`` instead of ``mmengine.model``), trained with
``lightning.Trainer`` through ``mm2lightning.MMLightningModule``. Two changes to the
tutorial's networks, both measured on this data set (``examples/gan/README.md``):
2-D noise, and a discriminator that judges samples in pairs (:class:`Pack`, PacGAN).

Also here: the data set (:class:`RingDataset`, generated from a seeded generator, no
download), the quality figures (:func:`ring_quality`) and a hand-written SVG
scatter plot of real against generated samples (:func:`write_svg`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import Dataset

from mm2lightning.model import BaseModel

NUM_MODES = 8
RING_RADIUS = 2.0
RING_STD = 0.05
NOISE_SIZE = 2  # with 8, samples land less often within 3 std of a mode (see README.md)


# ---------------------------------------------------------------------------- data
def ring_modes(num_modes: int = NUM_MODES, radius: float = RING_RADIUS) -> torch.Tensor:
    """The mode centres: ``radius * (cos, sin)(k * 2 pi / num_modes)``, shape ``(num_modes, 2)``."""
    angles = torch.arange(num_modes, dtype=torch.float64) * (2 * math.pi / num_modes)
    return (torch.stack([angles.cos(), angles.sin()], 1) * radius).float()


def ring_samples(
    num: int, seed: int = 0, std: float = RING_STD, num_modes: int = NUM_MODES, radius: float = RING_RADIUS
) -> torch.Tensor:
    """``num`` points of the ring mixture (modes equally likely), from a generator seeded with ``seed``."""
    gen = torch.Generator().manual_seed(seed)
    modes = ring_modes(num_modes, radius)
    which = torch.randint(0, num_modes, (num,), generator=gen)
    return modes[which] + std * torch.randn(num, 2, generator=gen)


class RingDataset(Dataset):
    """A ring of Gaussians as a data set of ``dict(inputs=point)`` (the default collate stacks them)."""

    def __init__(self, num: int = 32768, seed: int = 0, std: float = RING_STD) -> None:
        self.points = ring_samples(num, seed=seed, std=std)

    def __len__(self) -> int:
        return len(self.points)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return dict(inputs=self.points[index])


# --------------------------------------------------------------------------- model
def mlp(sizes: Sequence[int]) -> nn.Sequential:
    """Linear layers with LeakyReLU(0.2) between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        if i:
            layers.append(nn.LeakyReLU(0.2))
        layers.append(nn.Linear(n_in, n_out))
    return nn.Sequential(*layers)


class Pack(nn.Module):
    """PacGAN's packing: ``(B, D)`` -> ``(B / pack, pack * D)``, so the discriminator judges ``pack`` samples at once.

    A generator that drops modes makes packs that look less varied than real ones,
    which the discriminator can see (PacGAN, Lin et al., NeurIPS 2018, measured on
    rings of Gaussians like this one). The batch size must be a multiple of ``pack``.
    """

    def __init__(self, pack: int) -> None:
        super().__init__()
        self.pack = pack

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(-1, self.pack * x.shape[-1])

    def extra_repr(self) -> str:
        return f"pack={self.pack}"


def set_requires_grad(module: nn.Module, flag: bool) -> None:
    """As the tutorial's helper: freeze or unfreeze every parameter of ``module``."""
    for param in module.parameters():
        param.requires_grad_(flag)


class GAN(BaseModel):
    """The tutorial's GAN with MLPs: ``noise_size -> hidden -> hidden -> 2`` and ``2 * pack -> hidden -> hidden -> 1``.

    The discriminator judges ``pack`` samples at once (:class:`Pack`, PacGAN): with
    ``pack=1`` (the tutorial's plain discriminator) 2 runs in 10 dropped a mode,
    with ``pack=2`` none of 20 did (see README.md). ``train_step`` is the same
    either way.

    Args:
        noise_size: Size of the generator's input noise.
        hidden: Width of the hidden layers of both networks.
        pack: Samples per discriminator decision (``1``: no packing).
        seed: Seeds the model's own noise generator (``torch.Generator``), so runs
            are reproducible. Under distributed training rank ``r`` uses
            ``seed + r`` (each rank draws different noise, as it sees different data).
        data_preprocessor: As ``BaseModel``'s (``None``: ``BaseDataPreprocessor``,
            which moves the batch ``dict(inputs=...)`` to the model's device).
    """

    def __init__(
        self,
        noise_size: int = NOISE_SIZE,
        hidden: int = 64,
        pack: int = 2,
        seed: int = 0,
        data_preprocessor: dict[str, Any] | nn.Module | None = None,
    ) -> None:
        super().__init__(data_preprocessor=data_preprocessor)
        self.noise_size = noise_size
        self.generator = mlp([noise_size, hidden, hidden, 2])
        self.discriminator = nn.Sequential(Pack(pack), *mlp([2 * pack, hidden, hidden, 1]))
        self.seed = seed
        self._noise: torch.Generator | None = None

    def noise(self, num: int, like: torch.Tensor) -> torch.Tensor:
        """``num`` noise vectors from the model's seeded generator, with ``like``'s dtype and device."""
        if self._noise is None:  # created on first use: by then a distributed run knows its rank
            dist = torch.distributed
            rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
            self._noise = torch.Generator().manual_seed(self.seed + rank)
        return torch.randn(num, self.noise_size, generator=self._noise).to(like)

    def forward(self, inputs: torch.Tensor, data_samples: Any = None, mode: str = "tensor") -> torch.Tensor:
        """Generated samples for the noise ``inputs`` (shape ``(N, noise_size)``)."""
        return self.generator(inputs)

    def train_step(self, data: Mapping[str, Any], optim_wrapper: Any) -> dict[str, torch.Tensor]:
        # Acquire and preprocess data
        data = self.data_preprocessor(data, True)
        real = data["inputs"]

        # Train discriminator
        disc_optim_wrapper = optim_wrapper["discriminator"]
        with disc_optim_wrapper.optim_context(self.discriminator):
            log_vars = self.train_discriminator(real, disc_optim_wrapper)

        # Train generator, with the discriminator frozen
        set_requires_grad(self.discriminator, False)
        gen_optim_wrapper = optim_wrapper["generator"]
        with gen_optim_wrapper.optim_context(self.generator):
            log_vars_gen = self.train_generator(real, gen_optim_wrapper)
        set_requires_grad(self.discriminator, True)

        log_vars.update(log_vars_gen)
        return log_vars

    def disc_loss(self, disc_pred_fake: torch.Tensor, disc_pred_real: torch.Tensor):
        losses = dict(
            loss_disc_fake=F.binary_cross_entropy_with_logits(disc_pred_fake, torch.zeros_like(disc_pred_fake)),
            loss_disc_real=F.binary_cross_entropy_with_logits(disc_pred_real, torch.ones_like(disc_pred_real)),
        )
        return self.parse_losses(losses)

    def gen_loss(self, disc_pred_fake: torch.Tensor):
        losses = dict(loss_gen=F.binary_cross_entropy_with_logits(disc_pred_fake, torch.ones_like(disc_pred_fake)))
        return self.parse_losses(losses)

    def train_discriminator(self, real: torch.Tensor, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        z = self.noise(real.shape[0], real)
        with torch.no_grad():
            fake = self.generator(z)
        disc_pred_fake = self.discriminator(fake)
        disc_pred_real = self.discriminator(real)
        parsed_loss, log_vars = self.disc_loss(disc_pred_fake, disc_pred_real)
        optim_wrapper.update_params(parsed_loss)
        return log_vars

    def train_generator(self, real: torch.Tensor, optim_wrapper: Any) -> dict[str, torch.Tensor]:
        z = self.noise(real.shape[0], real)
        fake = self.generator(z)
        disc_pred_fake = self.discriminator(fake)
        parsed_loss, log_vars = self.gen_loss(disc_pred_fake)
        optim_wrapper.update_params(parsed_loss)
        return log_vars

    @torch.no_grad()
    def sample(self, num: int, seed: int = 1234) -> torch.Tensor:
        """``num`` generated samples from noise drawn with a fixed ``seed`` (the training noise is left alone)."""
        was_training = self.training
        self.eval()
        param = next(self.generator.parameters())
        z = torch.randn(num, self.noise_size, generator=torch.Generator().manual_seed(seed)).to(param)
        samples = self(z).float().cpu()
        self.train(was_training)
        return samples


# ------------------------------------------------------------------------- quality
def ring_quality(
    samples: torch.Tensor, modes: torch.Tensor | None = None, std: float = RING_STD, min_share: float = 0.01
) -> dict[str, Any]:
    """Quality figures of generated ``samples`` (shape ``(N, 2)``) against the ring's modes.

    A sample is *good* when it lies within 3 standard deviations (``3 * std``) of
    its nearest mode. A mode is *covered* when at least ``min_share`` of all
    samples (default 1 %, i.e. 20 of 2000; a perfect generator puts 12.5 % on
    each of 8 modes) are good samples of that mode.

    Returns:
        ``dict(modes_covered=int, within_3std=float)``: the number of covered
        modes, and the share of good samples.
    """
    modes = ring_modes() if modes is None else modes
    samples = samples.detach().float().cpu().reshape(-1, 2)
    dist, nearest = torch.cdist(samples, modes.float()).min(1)
    good = dist <= 3 * std
    counts = torch.bincount(nearest[good], minlength=len(modes))
    return dict(
        modes_covered=int((counts >= min_share * len(samples)).sum()),
        within_3std=float(good.float().mean()),
    )


# ----------------------------------------------------------------------------- SVG
REAL_COLOUR = "#1f77b4"
FAKE_COLOUR = "#ff7f0e"


def write_svg(
    path: str | Path,
    real: torch.Tensor,
    generated: torch.Tensor,
    quality: Mapping[str, Any] | None = None,
    title: str = "GAN on a ring of 8 Gaussians",
    std: float = RING_STD,
    extent: float = 3.0,
    size: int = 480,
) -> Path:
    """Write a scatter plot of ``real`` and ``generated`` points (``(N, 2)`` each) as an SVG file.

    Plain SVG 1.1 written by hand (no plotting library): an axes box over
    ``[-extent, extent]^2`` with ticks, the 3-std disc of each mode (dashed,
    ``class="mode"``), generated points (``class="generated"``), real points
    (``class="real"``, smaller, drawn on top) and a legend with the quality figures.
    Points outside the box are clipped.
    """
    margin_left, margin_top, legend_height = 44, 34, 56
    width, height = size + margin_left + 16, size + margin_top + 30 + legend_height
    scale = size / (2 * extent)

    def px(x: float, y: float) -> tuple[float, float]:
        return margin_left + (x + extent) * scale, margin_top + (extent - y) * scale

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="white"/>',
        f'<text x="{margin_left + size / 2}" y="20" text-anchor="middle" font-size="14">{escape(title)}</text>',
        f'<defs><clipPath id="plot"><rect x="{margin_left}" y="{margin_top}" width="{size}" height="{size}"/>'
        "</clipPath></defs>",
    ]
    for tick in range(-int(extent), int(extent) + 1):
        x, y = px(tick, tick)
        bottom = margin_top + size
        out.append(f'<line x1="{x:.1f}" y1="{bottom}" x2="{x:.1f}" y2="{bottom + 5}" stroke="black"/>')
        out.append(f'<text x="{x:.1f}" y="{bottom + 18}" text-anchor="middle">{tick}</text>')
        out.append(f'<line x1="{margin_left - 5}" y1="{y:.1f}" x2="{margin_left}" y2="{y:.1f}" stroke="black"/>')
        out.append(f'<text x="{margin_left - 8}" y="{y + 4:.1f}" text-anchor="end">{tick}</text>')
    out.append('<g clip-path="url(#plot)">')
    for mx, my in ring_modes().tolist():
        cx, cy = px(mx, my)
        out.append(
            f'<circle class="mode" cx="{cx:.1f}" cy="{cy:.1f}" r="{3 * std * scale:.1f}" fill="none" '
            'stroke="#888" stroke-dasharray="3,2"/>'
        )
    for name, points, colour, radius, opacity in (
        ("generated", generated, FAKE_COLOUR, 1.8, 0.45),
        ("real", real, REAL_COLOUR, 1.1, 0.8),
    ):
        out.append(f'<g class="{name}" fill="{colour}" fill-opacity="{opacity}">')
        for x, y in points.detach().float().cpu().reshape(-1, 2).tolist():
            if abs(x) <= extent + 0.1 and abs(y) <= extent + 0.1:
                cx, cy = px(x, y)
                out.append(f'<circle class="{name}" cx="{cx:.1f}" cy="{cy:.1f}" r="{radius}"/>')
        out.append("</g>")
    out.append("</g>")
    out.append(
        f'<rect x="{margin_left}" y="{margin_top}" width="{size}" height="{size}" fill="none" stroke="black"/>'
    )
    legend_y = margin_top + size + 40
    lines = [
        (REAL_COLOUR, f"real ({len(real)} samples)"),
        (FAKE_COLOUR, f"generated ({len(generated)} samples)"),
    ]
    for i, (colour, label) in enumerate(lines):
        y = legend_y + 18 * i
        out.append(f'<rect x="{margin_left}" y="{y - 9}" width="10" height="10" fill="{colour}"/>')
        out.append(f'<text x="{margin_left + 16}" y="{y}">{escape(label)}</text>')
    if quality is not None:
        text = (
            f"modes covered: {quality['modes_covered']}/{NUM_MODES}, "
            f"within 3 std of a mode: {100 * quality['within_3std']:.1f} %"
        )
        out.append(f'<text x="{margin_left + size}" y="{legend_y}" text-anchor="end">{escape(text)}</text>')
        out.append(
            f'<text x="{margin_left + size}" y="{legend_y + 18}" text-anchor="end" fill="#555">'
            f"dashed: 3 std ({3 * std:g}) around each mode</text>"
        )
    out.append("</svg>")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(out) + "\n")
    return path
