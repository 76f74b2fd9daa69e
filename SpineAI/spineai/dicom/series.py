"""The source datasets of a DICOM series folder, each matched to the slice of the volume it holds.

``spineai.io.read_image`` builds the volume with SimpleITK from ``dicom_series_files``; here the same
files are read with pydicom (headers only) so that results can reference them. A dataset's slice is
found from its ImagePositionPatient on the volume's grid, not from file order or InstanceNumber,
so a DICOM SEG frame always lands on the source image it was computed from.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import SimpleITK as sitk
from pydicom.dataset import Dataset

from ..errors import InputError
from ..io import dicom_series_files

POSITION_TOLERANCE_VOXELS = 0.01  # positions in headers are rounded; a real mismatch is a whole voxel


@dataclass
class SourceSeries:
    """The source series of a volume: ``datasets[i]`` holds slice ``slice_indices[i]`` of the volume."""

    folder: Path
    datasets: list[Dataset]
    slice_indices: list[int]

    @property
    def study_uid(self) -> str:
        return str(self.datasets[0].StudyInstanceUID)

    @property
    def series_uid(self) -> str:
        return str(self.datasets[0].SeriesInstanceUID)


def read_source_series(path, image: sitk.Image) -> SourceSeries:
    """The datasets (pixels not loaded) of the DICOM series folder ``path`` that ``image`` was read from."""
    path = Path(path)
    if not path.is_dir():
        raise InputError(path, "DICOM SEG output needs a DICOM series folder as input (the SEG references its images)")
    datasets = [pydicom.dcmread(file, stop_before_pixels=True) for file in dicom_series_files(path)]
    if any(int(dataset.get("NumberOfFrames", 1)) > 1 for dataset in datasets):
        raise InputError(path, "multi-frame (enhanced) DICOM is not supported for SEG output; export single frames")
    indices = [slice_index(dataset, image, path) for dataset in datasets]
    if sorted(indices) != list(range(image.GetDepth())):
        raise InputError(path, "the DICOM files do not cover every slice of the volume exactly once")
    return SourceSeries(path, datasets, indices)


def slice_index(dataset: Dataset, image: sitk.Image, folder: Path) -> int:
    """Index along the volume's third axis of the single-frame ``dataset``, checked to lie on the grid."""
    if (int(dataset.Columns), int(dataset.Rows)) != image.GetSize()[:2]:
        raise InputError(folder, f"{dataset.SOPInstanceUID}: image size differs from the volume's slices")
    direction = np.reshape(image.GetDirection(), (3, 3))
    orientation = np.asarray(dataset.ImageOrientationPatient, dtype=float)
    if not np.allclose(orientation, np.concatenate([direction[:, 0], direction[:, 1]]), atol=1e-4):
        raise InputError(folder, f"{dataset.SOPInstanceUID}: image orientation differs from the volume's")
    index = np.array(image.TransformPhysicalPointToContinuousIndex([float(v) for v in dataset.ImagePositionPatient]))
    expected = np.array([0.0, 0.0, round(index[2])])
    if np.any(np.abs(index - expected) > POSITION_TOLERANCE_VOXELS):
        raise InputError(folder, f"{dataset.SOPInstanceUID}: image position does not lie on the volume's grid")
    return int(expected[2])
