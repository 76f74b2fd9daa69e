"""Rebuild the rehearsal crops from SpineAI's shared data: ``python -m spineai.learning.rehearsal DATA_DIR``."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from ...io import read_image
from ...orientation import spacing_zyx, to_canonical
from . import MANIFEST, REHEARSAL_DIR

# (name, image, mask, subject, dataset, contrast, plane): training scans of the shipped cord model
# (training/cord_cases.csv, split train) whose licences allow redistribution.
SOURCES = [
    (
        "errsm_11_t2",
        "sct-legacy/errsm_11/t2/t2.nii.gz",
        "sct-legacy/errsm_11/t2/t2_manual_segmentation.nii.gz",
        "errsm_11",
        "sct-legacy",
        "T2w",
        "sagittal",
    ),
    (
        "errsm_18_gre",
        "sct-legacy/errsm_18/gre/gre.nii.gz",
        "sct-legacy/errsm_18/gre/segmentation_binary.nii.gz",
        "errsm_18",
        "sct-legacy",
        "T2starw",
        "axial",
    ),
    (
        "sct_t1w",
        "sct-testing/t1/t1w.nii.gz",
        "sct-testing/t1/t1w_seg-manual.nii.gz",
        "sct-testing",
        "sct-testing",
        "T1w",
        "sagittal",
    ),
    (
        "sct_t2s",
        "sct-testing/t2s/t2s.nii.gz",
        "sct-testing/t2s/t2s_seg.nii.gz",
        "sct-testing",
        "sct-testing",
        "T2starw",
        "axial",
    ),
    (
        "sct_mt0",
        "sct-testing/mt/mt0.nii.gz",
        "sct-testing/mt/mt0_seg.nii.gz",
        "sct-testing",
        "sct-testing",
        "MT",
        "axial",
    ),
    (
        "sct_t2",
        "sct-testing/t2/t2.nii.gz",
        "sct-testing/t2/t2_seg-manual.nii.gz",
        "sct-testing",
        "sct-testing",
        "T2w",
        "sagittal",
    ),
    (
        "gm_9418_t2s",
        "gm-challenge/sub-9418/anat/sub-9418_run-1_T2starw.nii.gz",
        "gm-challenge/derivatives/labels/sub-9418/anat/sub-9418_run-1_T2starw_seg-manual.nii.gz",
        "9418",
        "gm-challenge",
        "T2starw",
        "axial",
    ),
]
MARGIN_MM = 20.0  # around the cord in the axial plane: cord, CSF and the canal's walls


def crop_around_cord(image: sitk.Image, mask: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    """Canonical image and mask cropped to the cord's A-P and R-L extent plus ``MARGIN_MM``, every slice kept."""
    image, mask = to_canonical(image), to_canonical(mask)
    cord = sitk.GetArrayViewFromImage(mask) > 0
    spacing = spacing_zyx(mask)
    box = []
    for axis in (1, 2):
        where = np.flatnonzero(cord.any(axis=tuple(a for a in range(3) if a != axis)))
        margin = int(round(MARGIN_MM / spacing[axis]))
        box.append((max(int(where[0]) - margin, 0), min(int(where[-1]) + margin + 1, cord.shape[axis])))
    (y0, y1), (x0, x1) = box
    return image[x0:x1, y0:y1, :], sitk.Cast(mask[x0:x1, y0:y1, :] > 0, sitk.sitkUInt8)


def main(data_dir: Path) -> None:
    rows = []
    for name, image, mask, *facts in SOURCES:
        cropped, cord = crop_around_cord(read_image(data_dir / image), read_image(data_dir / mask))
        if cropped.GetPixelID() not in (sitk.sitkInt16, sitk.sitkUInt16, sitk.sitkUInt8):
            cropped = sitk.Cast(sitk.RescaleIntensity(cropped, 0, 4095), sitk.sitkInt16)  # 12 bits: as scanners store
        sitk.WriteImage(cropped, str(REHEARSAL_DIR / f"{name}.nii.gz"), useCompression=True)
        sitk.WriteImage(cord, str(REHEARSAL_DIR / f"{name}_cord.nii.gz"), useCompression=True)
        subject, dataset, contrast, plane = facts
        rows.append(
            {
                "image": f"{name}.nii.gz",
                "mask": f"{name}_cord.nii.gz",
                "subject": subject,
                "dataset": dataset,
                "contrast": contrast,
                "plane": plane,
                "source": image,
            }
        )
    with open(MANIFEST, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
