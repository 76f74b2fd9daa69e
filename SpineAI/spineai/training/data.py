"""Training data on the network grid: scans prepared exactly as inference prepares them, and patches.

A ``Volume`` is one labelled scan resampled to the network's in-plane spacing, normalised and kept
as a canonical array (``spineai.orientation``), so training sees what ``SlicePredictor`` sees.
``PatchSampler`` draws the 2.5D patches the network is fitted on.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import SimpleITK as sitk
import torch

from ..inference import network_spacing, normalise_intensity, resample_to_spacing, slice_axis, with_context
from ..io import read_image
from ..models.registry import ModelSpec
from ..orientation import to_canonical
from .cases import Case


@dataclass
class Volume:
    """A scan on the network grid, canonical a[z, y, x]: image normalised, labels as stored (0/1, or 0/1/2)."""

    image: np.ndarray
    labels: np.ndarray
    spacing: tuple[float, float, float]  # (pz, py, px) mm of the network grid
    axis: int  # the slice (acquisition) axis

    def slices(self, image=None, target=None) -> tuple[np.ndarray, np.ndarray]:
        """(images, targets) as (slices, H, W) along the acquisition axis; default target: labels > 0."""
        image = self.image if image is None else image
        target = (self.labels > 0).astype(np.uint8) if target is None else target
        return np.moveaxis(image, self.axis, 0), np.moveaxis(target, self.axis, 0)

    def below(self, fraction: float) -> Volume:
        """The part of the volume below ``fraction`` of its inferior-superior extent (canonical z)."""
        keep = max(1, round(self.image.shape[0] * fraction))
        return replace(self, image=self.image[:keep], labels=self.labels[:keep])


def prepare_volume(case: Case, spec: ModelSpec) -> Volume:
    """The case resampled and normalised exactly as inference prepares a scan."""
    image = to_canonical(read_image(case.image))
    labels = to_canonical(read_image(case.mask))
    spacing = tuple(reversed(image.GetSpacing()))
    axis = slice_axis(spacing, image.GetSize()[::-1])
    target = network_spacing(spacing, axis, spec.in_plane_spacing_mm)
    image = resample_to_spacing(image, target)
    return Volume(
        normalise_intensity(sitk.GetArrayViewFromImage(image), spec.percentiles),
        _resample_labels(labels, target),
        tuple(target),
        axis,
    )


def _resample_labels(labels: sitk.Image, spacing) -> np.ndarray:
    """Nested labels (cord >= 1, lesion >= 2) resampled one indicator at a time: smooth, not blocky, edges."""
    resampled = None
    for value in range(1, max(int(sitk.GetArrayViewFromImage(labels).max()), 1) + 1):
        inside = resample_to_spacing(sitk.Cast(labels >= value, sitk.sitkFloat32), spacing)
        layer = (sitk.GetArrayViewFromImage(inside) > 0.5).astype(np.uint8)
        resampled = layer if resampled is None else resampled + (layer & (resampled == value - 1))
    return resampled


def prepare_slices(case: Case, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """(images, masks) of shape (slices, H, W) on the network grid, as inference sees them."""
    return prepare_volume(case, spec).slices()


class PatchSampler:
    """Draws square patches: a volume uniformly, then a slice, then a crop.

    A ``positive_fraction`` of patches is centred near a target voxel; the others near a voxel of
    the volume's ``regions`` mask when one is given (the lesion task: healthy cord, where false
    positives would matter), else anywhere.
    """

    def __init__(self, volumes, patch_size=128, positive_fraction=0.85, context_slices=0, regions=None, steps=None):
        self.volumes = volumes
        self.steps = steps or [1] * len(volumes)  # per volume, ``inference.neighbour_step``: 0 = no neighbours
        self.context = context_slices
        self.patch = patch_size
        self.positive_fraction = positive_fraction
        # Voxel coordinates to centre on, found once: np.nonzero per patch would dominate a step.
        self.positives = [np.argwhere(masks) for _, masks in volumes]
        self.region_voxels = [np.argwhere(region) for region in regions] if regions is not None else None

    @classmethod
    def of_volumes(cls, volumes: list[Volume], patch_size: int, spec: ModelSpec, target_of=None) -> PatchSampler:
        """Patches of a slice network's volumes, cut as inference cuts them: slices too far apart
        for neighbours (axial MT, 17 mm) without them (``inference.neighbour_step``)."""
        from ..inference import neighbour_step

        steps = [neighbour_step(spec, volume.spacing[volume.axis]) for volume in volumes]
        slices = [volume.slices(target=target_of(volume.labels) if target_of else None) for volume in volumes]
        return cls(slices, patch_size, context_slices=spec.context_slices, steps=steps)

    def sample(self, batch_size: int, rng: np.random.Generator):
        images = np.zeros((batch_size, 2 * self.context + 1, self.patch, self.patch), np.float32)
        masks = np.zeros((batch_size, 1, self.patch, self.patch), np.float32)
        for b in range(batch_size):
            v = rng.integers(len(self.volumes))
            volume_images, volume_masks = self.volumes[v]
            s, centre = self._centre(v, rng)
            top, left = int(centre[0]) - self.patch // 2, int(centre[1]) - self.patch // 2
            crop = (slice(max(top, 0), top + self.patch), slice(max(left, 0), left + self.patch))
            piece = with_context(volume_images, np.array([s]), self.context, self.steps[v])[0][(slice(None), *crop)]
            dst = (
                slice(max(-top, 0), max(-top, 0) + piece.shape[1]),
                slice(max(-left, 0), max(-left, 0) + piece.shape[2]),
            )
            images[b][(slice(None), *dst)] = piece
            masks[b, 0][dst] = volume_masks[s][crop]
        return torch.from_numpy(images), torch.from_numpy(masks)

    def _centre(self, v: int, rng: np.random.Generator):
        """(slice, (row, column)) of the next patch centre, jittered by up to a quarter patch."""
        if len(self.positives[v]) and rng.random() < self.positive_fraction:
            voxels = self.positives[v]
        elif self.region_voxels is not None and len(self.region_voxels[v]):
            voxels = self.region_voxels[v]
        else:
            shape = self.volumes[v][1].shape
            return rng.integers(shape[0]), (rng.integers(shape[1]), rng.integers(shape[2]))
        s, row, column = voxels[rng.integers(len(voxels))]
        jitter = rng.integers(-self.patch // 4, self.patch // 4 + 1, size=2)
        return s, (row + jitter[0], column + jitter[1])
