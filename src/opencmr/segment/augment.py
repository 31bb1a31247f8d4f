"""Batch augmentation on tensors, aimed at images from other scanners and centres.

Spatial (rotation, scaling, flips, elastic deformation) in one
``grid_sample`` per batch, then intensity changes that scanners, coils and
protocols produce: bias field, gamma, contrast and brightness, intensity
scale, blur, lower in-plane resolution, Rician noise. Finally intensities
are (sometimes) re-normalised per crop and clipped to [0, 1], the range that
:func:`opencmr.preprocess.normalize_intensity` gives at inference.

Every random choice draws from one CPU ``torch.Generator``, so a seeded run
on the CPU is repeatable. The batch may live on a GPU: per-sample parameters
are drawn on the CPU and moved, and only the full-size noise of a GPU batch
comes from the GPU's own (globally seeded) generator.

References
----------
C. Chen et al., "Improving the generalizability of convolutional neural
network-based segmentation on CMR images", Frontiers in Cardiovascular
Medicine 7, 2020, doi:10.3389/fcvm.2020.00105.
F. Isensee et al., nnU-Net, Nature Methods 18, 2021 (augmentation pipeline).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["AugmentationConfig", "augment_batch", "intensity_augment", "spatial_augment"]


@dataclass(frozen=True)
class AugmentationConfig:
    """Probabilities and ranges of each augmentation (per sample)."""

    rotation_degrees: float = 35.0
    p_rotation: float = 0.7
    scale_range: tuple[float, float] = (0.8, 1.25)
    p_scale: float = 0.5
    p_flip: float = 0.5
    p_elastic: float = 0.25
    elastic_magnitude: float = 0.04
    p_bias_field: float = 0.3
    bias_strength: float = 0.35
    p_gamma: float = 0.3
    gamma_range: tuple[float, float] = (0.6, 1.6)
    p_contrast: float = 0.3
    p_scale_intensity: float = 0.3
    p_blur: float = 0.2
    blur_sigma: tuple[float, float] = (0.5, 1.5)
    p_low_resolution: float = 0.2
    low_resolution_factor: tuple[float, float] = (1.3, 2.5)
    p_noise: float = 0.3
    noise_sigma: tuple[float, float] = (0.01, 0.08)
    p_renormalise: float = 0.5


def _uniform(n: int, low: float, high: float, gen: torch.Generator) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=gen)


def _chance(n: int, p: float, gen: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=gen) < p


def _randn(shape: torch.Size, gen: torch.Generator, device: torch.device) -> torch.Tensor:
    """Standard normal noise of ``shape`` on ``device`` (the CPU generator on the CPU, the device's own elsewhere)."""
    if device.type == "cpu":
        return torch.randn(shape, generator=gen)
    return torch.randn(shape, device=device)


def spatial_augment(
    images: torch.Tensor, labels: torch.Tensor, config: AugmentationConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotate, scale, flip and elastically deform ``images (B, C, H, W)`` and ``labels (B, H, W)`` alike."""
    n = images.shape[0]
    angle = torch.where(
        _chance(n, config.p_rotation, gen),
        _uniform(n, -config.rotation_degrees, config.rotation_degrees, gen) * math.pi / 180,
        torch.zeros(n),
    )
    lo, hi = (math.log(v) for v in config.scale_range)
    scale = torch.where(_chance(n, config.p_scale, gen), torch.exp(_uniform(n, lo, hi, gen)), torch.ones(n))
    flip_x = torch.where(_chance(n, config.p_flip, gen), -1.0, 1.0)
    flip_y = torch.where(_chance(n, config.p_flip, gen), -1.0, 1.0)
    cos, sin = torch.cos(angle) / scale, torch.sin(angle) / scale
    theta = torch.zeros(n, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = cos * flip_x, -sin * flip_x
    theta[:, 1, 0], theta[:, 1, 1] = sin * flip_y, cos * flip_y
    device = images.device
    grid = F.affine_grid(theta.to(device, images.dtype), list(images.shape), align_corners=False)
    elastic = _chance(n, config.p_elastic, gen)
    if elastic.any():
        coarse = (torch.randn(n, 2, 6, 6, generator=gen) * config.elastic_magnitude).to(device, images.dtype)
        field = F.interpolate(coarse, size=images.shape[-2:], mode="bicubic", align_corners=False)
        grid = grid + field.permute(0, 2, 3, 1) * elastic.to(device)[:, None, None, None]
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    labels = F.grid_sample(labels[:, None].float(), grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return images, labels[:, 0].long()


def _gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each sample with its own sigma (pixels), separable, via a grouped convolution."""
    n, c, h, w = images.shape
    radius = int(math.ceil(3 * float(sigma.max())))
    sigma = sigma.to(images.device, images.dtype)
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    kernel = torch.exp(-0.5 * (x[None] / sigma[:, None]) ** 2)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(c, dim=0)
    flat = images.reshape(1, n * c, h, w)
    flat = F.conv2d(F.pad(flat, (radius, radius, 0, 0), mode="reflect"), kernel[:, None, None, :], groups=n * c)
    flat = F.conv2d(F.pad(flat, (0, 0, radius, radius), mode="reflect"), kernel[:, None, :, None], groups=n * c)
    return flat.reshape(n, c, h, w)


def intensity_augment(images: torch.Tensor, config: AugmentationConfig, gen: torch.Generator) -> torch.Tensor:
    """Scanner-like intensity changes of ``images (B, C, H, W)`` (normalised to about [0, 1]), the same for every channel of a sample."""
    n, _, h, w = images.shape
    device, dtype = images.device, images.dtype
    x = images

    def chance(p: float) -> tuple[bool, torch.Tensor]:
        pick = _chance(n, p, gen)
        return bool(pick.any()), pick.to(device)[:, None, None, None]

    def per_sample(values: torch.Tensor) -> torch.Tensor:
        return values.to(device, dtype)[:, None, None, None]

    drawn, pick = chance(config.p_bias_field)
    if drawn:
        yy, xx = torch.meshgrid(
            torch.linspace(-1, 1, h, device=device, dtype=dtype), torch.linspace(-1, 1, w, device=device, dtype=dtype), indexing="ij"
        )
        terms = torch.stack([xx, yy, xx * yy, xx**2, yy**2, xx**3, yy**3, xx**2 * yy, xx * yy**2])
        coef = ((torch.rand(n, terms.shape[0], generator=gen) * 2 - 1) * config.bias_strength).to(device, dtype)
        field = torch.exp(torch.einsum("bk,khw->bhw", coef, terms))[:, None]
        x = torch.where(pick, x * field, x)
    drawn, pick = chance(config.p_gamma)
    if drawn:
        lo, hi = (math.log(v) for v in config.gamma_range)
        gamma = per_sample(torch.exp(_uniform(n, lo, hi, gen)))
        x = torch.where(pick, x.clamp(min=0) ** gamma, x)
    drawn, pick = chance(config.p_contrast)
    if drawn:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        c = per_sample(_uniform(n, 0.7, 1.3, gen))
        b = per_sample(_uniform(n, -0.1, 0.1, gen))
        x = torch.where(pick, (x - mean) * c + mean + b, x)
    drawn, pick = chance(config.p_scale_intensity)
    if drawn:
        x = torch.where(pick, x * per_sample(_uniform(n, 0.7, 1.4, gen)), x)
    drawn, pick = chance(config.p_blur)
    if drawn:
        x = torch.where(pick, _gaussian_blur(x, _uniform(n, *config.blur_sigma, gen)), x)
    drawn, pick = chance(config.p_low_resolution)
    if drawn:
        factor = float(_uniform(1, *config.low_resolution_factor, gen))
        small = F.interpolate(x, scale_factor=1 / factor, mode="bilinear", antialias=True, align_corners=False)
        x = torch.where(pick, F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False), x)
    drawn, pick = chance(config.p_noise)
    if drawn:
        sigma = per_sample(_uniform(n, *config.noise_sigma, gen))
        real = x + sigma * _randn(x.shape, gen, device)
        imag = sigma * _randn(x.shape, gen, device)
        x = torch.where(pick, torch.sqrt(real**2 + imag**2), x)
    drawn, pick = chance(config.p_renormalise)
    if drawn:
        flat = x.reshape(n, -1)
        lo = torch.quantile(flat, 0.005, dim=1)[:, None, None, None]
        hi = torch.quantile(flat, 0.995, dim=1)[:, None, None, None]
        x = torch.where(pick, (x - lo) / (hi - lo).clamp(min=1e-6), x)
    return x.clamp(0.0, 1.0)


def augment_batch(
    images: torch.Tensor, labels: torch.Tensor, config: AugmentationConfig, gen: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """Spatial then intensity augmentation of a training batch."""
    images, labels = spatial_augment(images, labels, config, gen)
    return intensity_augment(images, config, gen), labels
