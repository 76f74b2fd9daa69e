"""Training and test data of the lesion task.

A case's mask is a label map: 1 cord, 2 lesion (the layout ``spineai segment --task lesion``
writes). Cases with lesion labels (a site's own data) train on them as they are. Cases with a cord
mask only (SpineAI's shared data: no real injury labels exist there) get lesions synthesised into
them (``synthetic_lesions``), re-drawn every few hundred steps so the network never sees the same
lesion twice for long. The synthetic test set is drawn once, with its own seed, into the
validation cases only: subjects and lesions that training never saw.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk

from ..io import read_image
from ..orientation import canonical_array, spacing_zyx, to_canonical
from .cases import Case
from .data import PatchSampler, Volume
from .synthetic_lesions import synthesise_lesions

LESIONS_PER_SCAN = (1, 4)  # drawn uniformly, upper bound exclusive
TEST_SEED = 5_000_003  # the synthetic test set's own seed, apart from any training seed


def has_lesion_labels(labels: np.ndarray) -> bool:
    return bool((labels >= 2).any())


class LesionTrainingSet:
    """Training slices of the lesion task: real lesion labels where given, fresh synthetic lesions elsewhere."""

    def __init__(self, volumes: list[Volume], rng: np.random.Generator):
        self.volumes = volumes
        self.rng = rng

    def sampler(self, patch_size: int, context_slices: int, positive_fraction: float = 0.6) -> PatchSampler:
        """A patch sampler over the volumes, with newly drawn synthetic lesions."""
        slices = [self._with_lesions(volume) for volume in self.volumes]
        cords = [np.moveaxis(volume.labels >= 1, volume.axis, 0) for volume in self.volumes]
        return PatchSampler(slices, patch_size, positive_fraction, context_slices, regions=cords)

    def _with_lesions(self, volume: Volume) -> tuple[np.ndarray, np.ndarray]:
        if has_lesion_labels(volume.labels):
            return volume.slices(target=(volume.labels >= 2).astype(np.uint8))
        count = int(self.rng.integers(*LESIONS_PER_SCAN))
        image, lesion = synthesise_lesions(volume.image, volume.labels >= 1, volume.spacing, self.rng, count)
        return volume.slices(image=np.clip(image, -0.5, 2.0), target=lesion)


@dataclass
class LesionTestScan:
    """A validation scan on its own grid (canonical) with lesions synthesised into it, and their truth."""

    case: Case
    image: sitk.Image
    lesion: np.ndarray
    cord: np.ndarray


def synthetic_test_scans(cases: list[Case], seed: int = TEST_SEED) -> list[LesionTestScan]:
    """The lesion test set: per case, one copy with 1-3 synthetic lesions and one left lesion-free."""
    scans = []
    for index, case in enumerate(cases):
        image = to_canonical(read_image(case.image))
        labels = canonical_array(to_canonical(read_image(case.mask)))
        if has_lesion_labels(labels):
            scans.append(LesionTestScan(case, image, (labels >= 2).astype(np.uint8), labels >= 1))
            continue
        cord = labels > 0.5
        rng = np.random.default_rng([seed, index])
        count = int(rng.integers(*LESIONS_PER_SCAN))
        array, lesion = synthesise_lesions(canonical_array(image, np.float32), cord, spacing_zyx(image), rng, count)
        painted = sitk.GetImageFromArray(array)
        painted.CopyInformation(image)
        scans.append(LesionTestScan(case, painted, lesion, cord))
        scans.append(LesionTestScan(case, sitk.Cast(image, sitk.sitkFloat32), np.zeros_like(lesion), cord))
    return scans
