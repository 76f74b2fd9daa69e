"""Training and test data of the tasks whose targets are synthesised: lesion and tumour.

A case's mask is a label map in the layout the task writes (lesion: 1 cord, 2 lesion; tumour: bit
flags, 1 cord, 2 tumour outside the cord, 3 tumour inside it). Cases whose map holds the target
(a site's own data) train on it as it is. Cases with a cord mask only (SpineAI's shared data: no
real injury or tumour labels exist there) get targets painted into them (``synthetic_lesions``,
``synthetic_tumors``), re-drawn every few hundred steps so the network never sees the same one
for long. The synthetic test set is drawn once, with its own seed, into the validation cases
only: subjects and targets that training never saw.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..io import read_image
from ..orientation import canonical_array, spacing_zyx, to_canonical
from ..postprocess import TUMOR_REACH_MM
from .cases import Case
from .data import PatchSampler, Volume
from .synthetic_lesions import LesionShape, synthesise_lesions
from .synthetic_tumors import TEST_TUMORS, synthesise_tumors

TEST_SEED = 5_000_003  # the synthetic test set's own seed, apart from any training seed

# Oedema fading into the cord (soft edges), haemorrhagic cores, swollen cords: what SCI lesions look like.
SCI_LIKE = {"softness": (0.05, 0.6), "swelling_probability": 0.3}
TRAINING_LESIONS = LesionShape(contrast=(0.35, 1.0), length_mm=(4.0, 60.0), **SCI_LIKE)
TEST_LESIONS = LesionShape(family="lobulated", length_mm=(10.0, 60.0), **SCI_LIKE)


@dataclass(frozen=True)
class SyntheticTask:
    """How one task's targets are painted, and read from a site's own label maps."""

    paint: Callable  # (image, cord, spacing, rng, count) -> (image, target mask) for training
    test_paint: Callable  # the same for the test set
    target_of: Callable[[np.ndarray], np.ndarray]  # label map -> target mask
    cord_of: Callable[[np.ndarray], np.ndarray]  # label map -> cord mask
    per_scan: tuple[int, int] = (0, 4)  # training targets per scan, uniform, upper bound exclusive
    # Patches without a target are centred within this distance of the cord: where the task's
    # post-processing keeps findings, so where false positives would count.
    reach_mm: float = 0.0
    test_per_scan: tuple[int, int] = (1, 4)  # the test set's painted copies (plus one target-free copy)
    # Share of training hosts whose tissue contrast is re-drawn before painting (``random_tissue_contrast``;
    # not ``augment.random_contrast``, which changes patches after painting).
    tissue_contrast_probability: float = 0.0


SYNTHETIC_TASKS = {
    # Training lesions are at least moderately bright: fainter ones taught the network to call the
    # grey matter (bright on T2*) a lesion. The test set keeps the full range, so faint lesions count,
    # and is of another family of shapes (lobulated clusters, not single ellipsoids), 10-60 mm long.
    "lesion": SyntheticTask(
        paint=partial(synthesise_lesions, shape=TRAINING_LESIONS),
        test_paint=partial(synthesise_lesions, shape=TEST_LESIONS),
        target_of=lambda labels: labels >= 2,
        cord_of=lambda labels: labels >= 1,
    ),
    # Tumours: half the training hosts get a random tissue contrast before painting, so that an
    # enhancing mass is found on T1w though nearly every host is a T2 (docs/tumor.md); the test set
    # is of lobulated masses, a family training never draws.
    "tumor": SyntheticTask(
        paint=synthesise_tumors,
        test_paint=partial(synthesise_tumors, shape=TEST_TUMORS),
        target_of=lambda labels: (labels.astype(np.uint8) & 2) > 0,
        cord_of=lambda labels: (labels.astype(np.uint8) & 1) > 0,
        per_scan=(0, 3),
        test_per_scan=(1, 3),
        reach_mm=TUMOR_REACH_MM,
        tissue_contrast_probability=0.5,
    ),
}


class SyntheticTrainingSet:
    """Training slices of a task: its real labels where given, freshly painted targets elsewhere."""

    def __init__(self, volumes: list[Volume], task: SyntheticTask, rng: np.random.Generator):
        self.volumes = volumes
        self.task = task
        self.rng = rng
        self.regions = [self._region(volume) for volume in volumes]

    def _region(self, volume: Volume) -> np.ndarray:
        """Where patches without a target are centred: the cord and its surroundings within reach."""
        cord = self.task.cord_of(volume.labels)
        if self.task.reach_mm > 0 and cord.any():
            cord = ndimage.distance_transform_edt(~cord, sampling=volume.spacing) <= self.task.reach_mm
        return np.moveaxis(cord, volume.axis, 0)

    def sampler(self, patch_size: int, context_slices: int, positive_fraction: float = 0.5) -> PatchSampler:
        """A patch sampler over the volumes, with newly painted targets."""
        slices = [self._with_targets(volume) for volume in self.volumes]
        return PatchSampler(slices, patch_size, positive_fraction, context_slices, regions=self.regions)

    def _with_targets(self, volume: Volume) -> tuple[np.ndarray, np.ndarray]:
        target = self.task.target_of(volume.labels)
        if target.any():
            return volume.slices(target=target.astype(np.uint8))
        count = int(self.rng.integers(*self.task.per_scan))
        cord = self.task.cord_of(volume.labels)
        image = volume.image
        if self.rng.random() < self.task.tissue_contrast_probability:
            image = random_tissue_contrast(image, cord, self.rng)
        image, target = self.task.paint(image, cord, volume.spacing, self.rng, count)
        return volume.slices(image=np.clip(image, -0.5, 2.0), target=target)


def random_tissue_contrast(
    image: np.ndarray, cord: np.ndarray, rng: np.random.Generator, points: int = 6
) -> np.ndarray:
    """The host's normalised intensities through a random piecewise-linear curve, not necessarily
    monotonic: a tissue contrast no scan has, so that what the network learns is the painted target
    against the cord, not the host's contrast (domain randomisation, as SynthSeg: Billot et al.,
    Medical Image Analysis 2023). The cord is kept at least moderately bright (0.2): targets are
    painted relative to it, and one on a black cord would be black too."""
    inside = np.clip(image[cord > 0] if cord.any() else image.ravel(), 0, 1)
    for _ in range(20):
        curve = rng.uniform(0.05, 1.0, points)
        if np.median(np.interp(inside, np.linspace(0, 1, points), curve)) >= 0.2:
            break
    return np.interp(np.clip(image, 0, 1), np.linspace(0, 1, points), curve).astype(np.float32)


@dataclass
class SyntheticTestScan:
    """A validation scan on its own grid (canonical) with targets painted into it, and their truth."""

    case: Case
    image: sitk.Image
    target: np.ndarray
    cord: np.ndarray


def synthetic_test_scans(cases: list[Case], task: SyntheticTask, seed: int = TEST_SEED) -> list[SyntheticTestScan]:
    """The test set: per case, one copy with painted targets and one left target-free (or its real labels)."""
    scans = []
    for index, case in enumerate(cases):
        image = to_canonical(read_image(case.image))
        labels = canonical_array(to_canonical(read_image(case.mask)))
        cord, real = task.cord_of(labels), task.target_of(labels)
        if real.any():
            scans.append(SyntheticTestScan(case, image, real.astype(np.uint8), cord))
            continue
        rng = np.random.default_rng([seed, index])
        count = int(rng.integers(*task.test_per_scan))
        array, target = task.test_paint(canonical_array(image, np.float32), cord, spacing_zyx(image), rng, count)
        painted = sitk.GetImageFromArray(array)
        painted.CopyInformation(image)
        scans.append(SyntheticTestScan(case, painted, target, cord))
        scans.append(SyntheticTestScan(case, sitk.Cast(image, sitk.sitkFloat32), np.zeros_like(target), cord))
    return scans
