"""The real sagittal lumbar T2 scans of ``lumbar-ivd`` (Menezes-Reis et al. 2016) with their disc labels.

The shared copy was converted from .mat with an identity affine, so its header does not say where
the patient is. Its README documents the axes: axis 0 runs superior to inferior, axis 1 anterior to
posterior, axis 2 across the sagittal slices (1 mm isotropic). ``with_documented_axes`` gives the
scan that geometry, so every engine step (canonical orientation, planes, levels) reads it as any
other scan. Disc labels there: 1 = L5-S1 ... 5 = L1-L2; SCT disc code = 26 - label.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import SimpleITK as sitk

# Columns are the LPS directions of index axes i, j, k: i -> inferior, j -> posterior, k -> left.
DOCUMENTED_DIRECTION = (0.0, 0.0, 1.0, 0.0, 1.0, 0.0, -1.0, 0.0, 0.0)
SUBJECTS = ("ivd11", "ivd20", "ivd25", "ivd42", "ivd46")


@dataclass(frozen=True)
class LumbarCase:
    subject: str
    image: sitk.Image  # sagittal T2 with the documented geometry
    discs: sitk.Image  # SCT disc codes 21 (L1-L2) ... 25 (L5-S1), 0 elsewhere


def with_documented_axes(image: sitk.Image) -> sitk.Image:
    image = sitk.Image(image)
    image.SetDirection(DOCUMENTED_DIRECTION)
    image.SetOrigin((0.0, 0.0, 0.0))
    return image


def read_lumbar_case(folder: Path, subject: str) -> LumbarCase:
    image = with_documented_axes(sitk.ReadImage(str(Path(folder) / f"{subject}_t2.nii.gz")))
    labels = with_documented_axes(sitk.ReadImage(str(Path(folder) / f"{subject}_discs.nii.gz"), sitk.sitkUInt8))
    codes = sitk.Cast(sitk.Mask(26 - labels, labels > 0), sitk.sitkUInt8)
    return LumbarCase(subject, image, codes)


def read_lumbar_cases(folder: Path, subjects=SUBJECTS) -> list[LumbarCase]:
    return [read_lumbar_case(folder, subject) for subject in subjects]
