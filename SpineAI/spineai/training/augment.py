"""Batch augmentation on the CPU/GPU with torch: geometry, resolution, contrast and noise.

Images are normalised slices (about 0..1), masks 0/1, both shaped (N, 1, H, W). Each sample draws
its own parameters from ``generator`` so runs are reproducible.
"""

from __future__ import annotations

import math

import torch
from torch.nn import functional as F


def _uniform(n, low, high, generator):
    return low + (high - low) * torch.rand(n, generator=generator)


def random_affine(images, masks, generator, max_degrees=20.0, scale=(0.7, 1.4), flips=True):
    """Rotation, isotropic zoom (resolution change) and flips, applied alike to images and masks.

    ``flips=False`` where the anatomy's direction carries the labels (disc levels count upwards).
    """
    n = images.shape[0]
    angle = _uniform(n, -max_degrees, max_degrees, generator) * math.pi / 180
    zoom = torch.exp(_uniform(n, math.log(scale[0]), math.log(scale[1]), generator))
    flip_x = torch.where(torch.rand(n, generator=generator) < (0.5 if flips else 0.0), -1.0, 1.0)
    flip_y = torch.where(torch.rand(n, generator=generator) < (0.5 if flips else 0.0), -1.0, 1.0)
    shift = _uniform(2 * n, -0.1, 0.1, generator).view(n, 2)
    cos, sin = torch.cos(angle) * zoom, torch.sin(angle) * zoom
    theta = torch.stack(
        [torch.stack([cos * flip_x, -sin, shift[:, 0]], 1), torch.stack([sin, cos * flip_y, shift[:, 1]], 1)], 1
    )
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    masks = F.grid_sample(masks, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    return images, (masks > 0.5).float()


def random_contrast(images, generator, invert_probability=0.2, gamma_range=(0.6, 1.6), slice_drift=0.0):
    """Gamma, contrast inversion (T1 vs T2 appearance), smooth bias field, brightness/contrast.

    ``slice_drift``: the standard deviation of a gain drawn per channel, so the 2.5D neighbours of a
    slice may be brighter or darker than it, as a receive coil's sensitivity drifts along the slices.
    """
    n = images.shape[0]
    images = images.clamp(0, 2)
    if slice_drift:
        images = images * torch.exp(torch.randn(n, images.shape[1], 1, 1, generator=generator) * slice_drift)
    gamma = torch.exp(_uniform(n, math.log(gamma_range[0]), math.log(gamma_range[1]), generator)).view(n, 1, 1, 1)
    images = images.clamp_min(1e-6) ** gamma
    invert = (torch.rand(n, generator=generator) < invert_probability).view(n, 1, 1, 1)
    images = torch.where(invert, (1.2 - images).clamp_min(0), images)
    field = torch.randn(n, 1, 4, 4, generator=generator) * 0.15
    field = F.interpolate(field, size=images.shape[-2:], mode="bicubic", align_corners=False)
    images = images * torch.exp(field)
    scale = _uniform(n, 0.8, 1.2, generator).view(n, 1, 1, 1)
    offset = _uniform(n, -0.1, 0.1, generator).view(n, 1, 1, 1)
    return images * scale + offset


def random_resolution_and_noise(images, generator, blur_probability=0.3):
    """Simulate coarser in-plane resolution (down/up-sampling) and Gaussian noise."""
    n, _, height, width = images.shape
    out = images.clone()
    for i in torch.nonzero(torch.rand(n, generator=generator) < blur_probability).flatten().tolist():
        factor = float(_uniform(1, 1.3, 2.5, generator))
        small = F.interpolate(images[i : i + 1], scale_factor=1 / factor, mode="bilinear", align_corners=False)
        out[i : i + 1] = F.interpolate(small, size=(height, width), mode="bilinear", align_corners=False)
    sigma = _uniform(n, 0.0, 0.06, generator).view(n, 1, 1, 1)
    return out + sigma * torch.randn(out.shape, generator=generator)


# The cord recipe (2026-12, cross-validated): a wider gamma, so a volume whose cord sits mid-grey
# on a dark background (axial T1w) is in range, and drift between a slice and its neighbours.
CORD_CONTRAST = dict(gamma_range=(0.35, 2.5), slice_drift=0.08)


def augment(images, masks, generator, invert_probability=0.2, contrast=None):
    images, masks = random_affine(images, masks, generator)
    images = random_contrast(images, generator, invert_probability, **(contrast or {}))
    images = random_resolution_and_noise(images, generator)
    return images.clamp(-0.5, 2.0), masks
