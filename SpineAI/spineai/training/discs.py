"""Training of the disc-level network on the labelled sagittal lumbar T2 scans (``lumbar-ivd``).

Whole sagittal slices at 2 mm, so the network sees the sacrum and counts the discs up from it;
no flips (the labels follow the craniocaudal order). ``leave_one_out`` measures how well the
levels are found on a subject the network never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
import torch

from ..inference import class_probabilities
from ..models.registry import ModelSpec, model_for_task
from ..orientation import canonical_array, to_canonical
from ..stenosis.levels import (
    DISC_NAMES,
    disc_classes,
    disc_points,
    discs_counted_from_sacrum,
    level_problems,
    sagittal_slices,
)
from .lumbar_ivd import LumbarCase
from .multiclass import fit_classes
from .weights import TorchRunner, inference_copy

DISC_SPEC = model_for_task("discs").untrained()  # the settings of the shipped record
FIELD = 128  # slices are padded (or cropped) to this square: 256 mm at 2 mm, the lumbar spine and sacrum


@dataclass
class DiscVolume:
    subject: str
    slices: np.ndarray  # (x, z, y) normalised
    classes: np.ndarray  # (x, z, y) 1 disc, 0 elsewhere
    grid: sitk.Image
    truth: list  # LevelPoints of the manual labels


def prepare_disc_volume(case: LumbarCase, spec: ModelSpec = DISC_SPEC) -> DiscVolume:
    grid, slices = sagittal_slices(to_canonical(case.image), spec.percentiles)
    codes = sitk.Resample(to_canonical(case.discs), grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0)
    classes = disc_classes(canonical_array(codes)).transpose(2, 0, 1)
    truth = disc_points(np.where(canonical_array(codes) > 0, canonical_array(codes) - 20, 0), grid, "labels")
    return DiscVolume(case.subject, slices, np.ascontiguousarray(classes), grid, truth)


def disc_sampler(volumes: list[DiscVolume]):
    """Random sagittal slices, four in five through the discs, placed at random in a FIELD square."""

    def sample(rng: np.random.Generator, batch_size: int):
        images = np.zeros((batch_size, 1, FIELD, FIELD), np.float32)
        labels = np.zeros((batch_size, FIELD, FIELD), np.int64)
        for row in range(batch_size):
            volume = volumes[rng.integers(len(volumes))]
            with_discs = np.flatnonzero(volume.classes.any((1, 2)))
            index = (
                rng.choice(with_discs) if rng.random() < 0.8 and with_discs.size else rng.integers(len(volume.slices))
            )
            _place(images[row, 0], labels[row], volume.slices[index], volume.classes[index], rng)
        return torch.from_numpy(images), torch.from_numpy(labels)

    return sample


def _place(image_out, labels_out, image, labels, rng) -> None:
    """Copy a slice into the field at a random offset, cropping where the slice is larger."""
    h, w = (min(s, FIELD) for s in image.shape)
    sy, sx = (rng.integers(0, s - m + 1) for s, m in zip(image.shape, (h, w), strict=True))
    oy, ox = (rng.integers(0, FIELD - m + 1) for m in (h, w))
    image_out[oy : oy + h, ox : ox + w] = image[sy : sy + h, sx : sx + w]
    labels_out[oy : oy + h, ox : ox + w] = labels[sy : sy + h, sx : sx + w]


def train_discs(cases: list[LumbarCase], iterations: int, seed: int = 0, progress=None):
    volumes = [prepare_disc_volume(case) for case in cases]
    return fit_classes(
        disc_sampler(volumes), DISC_SPEC, iterations, batch_size=6, seed=seed, flips=False, progress=progress
    )


def evaluate_discs(model, case: LumbarCase) -> dict:
    """Levels found on one scan against its labels: found, order, centroid distance (mm)."""
    volume = prepare_disc_volume(case)
    runner = TorchRunner(inference_copy(model, DISC_SPEC))
    predicted = class_probabilities(runner, volume.slices, DISC_SPEC.size_divisor).argmax(1).transpose(1, 2, 0)
    found = {level.code: level for level in discs_counted_from_sacrum(predicted > 0, volume.grid, "disc network")}
    truth = {level.code: level for level in volume.truth}
    problems = sorted(set(level_problems(list(found.values())).values()))
    errors = {
        DISC_NAMES[c]: round(float(np.linalg.norm(np.subtract(found[c].point, truth[c].point))), 2)
        for c in found
        if c in truth
    }
    return {
        "subject": case.subject,
        "found": [DISC_NAMES[c] for c in sorted(found)],
        "missing": [DISC_NAMES[c] for c in sorted(truth) if c not in found],
        "order_problems": problems,
        "centroid_error_mm": errors,
    }
