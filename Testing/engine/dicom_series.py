"""Real scans written as DICOM MR series, one file per slice, with the tags a scanner sends.

The shared data holds NIfTI only, so the DICOM tests build their series here from the real scans:
pixel values rounded to unsigned 16 bit (as MR scanners store them), geometry (LPS, as DICOM and
SimpleITK both use) taken from the NIfTI header, patient, study, series and frame-of-reference tags
filled like a scanner's export.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, MRImageStorage, generate_uid


@dataclass
class MRSeries:
    folder: Path
    files: list[Path]
    study_uid: str
    series_uid: str
    frame_of_reference_uid: str


def write_mr_series(
    image: sitk.Image | str | Path,
    folder: Path,
    *,
    study_uid: str | None = None,
    series_number: int = 1,
    description: str = "T2 spine",
    patient_id: str = "SPINEAI-TEST-01",
) -> MRSeries:
    """Write ``image`` as an MR series in ``folder`` (one file per slice along its third axis)."""
    image = sitk.ReadImage(str(image)) if isinstance(image, (str, Path)) else image
    folder.mkdir(parents=True, exist_ok=True)
    pixels = np.clip(np.round(sitk.GetArrayFromImage(image)), 0, 65535).astype(np.uint16)
    study = _study_tags(study_uid or generate_uid(), patient_id)
    series = _series_tags(image, series_number, description)
    files = []
    for k in range(image.GetDepth()):
        dataset = _slice_dataset(image, pixels[k], k, study, series)
        path = folder / f"IM{k + 1:04d}.dcm"
        dataset.save_as(path, enforce_file_format=True)
        files.append(path)
    return MRSeries(folder, files, study.StudyInstanceUID, series.SeriesInstanceUID, series.FrameOfReferenceUID)


def _study_tags(study_uid: str, patient_id: str) -> Dataset:
    tags = Dataset()
    tags.PatientName = "Test^Spine"
    tags.PatientID = patient_id
    tags.PatientBirthDate = "19800101"
    tags.PatientSex = "O"
    tags.StudyInstanceUID = study_uid
    tags.StudyID = "1"
    tags.StudyDate = "20260101"
    tags.StudyTime = "120000"
    tags.AccessionNumber = "ACC0001"
    tags.ReferringPhysicianName = ""
    tags.StudyDescription = "MRI cervical spine"
    return tags


def _series_tags(image: sitk.Image, series_number: int, description: str) -> Dataset:
    d = image.GetDirection()
    tags = Dataset()
    tags.Modality = "MR"
    tags.SeriesInstanceUID = generate_uid()
    tags.SeriesNumber = series_number
    tags.SeriesDescription = description
    tags.FrameOfReferenceUID = generate_uid()
    tags.PositionReferenceIndicator = ""
    tags.Manufacturer = "SpineAI test"
    tags.BodyPartExamined = "CSPINE"
    # Row direction = the image's x axis, column direction = its y axis (direction matrix columns).
    tags.ImageOrientationPatient = [round(v, 8) for v in (d[0], d[3], d[6], d[1], d[4], d[7])]
    x, y, z = image.GetSpacing()
    tags.PixelSpacing = [round(y, 8), round(x, 8)]  # DICOM: row spacing (between rows = along y) first
    tags.SliceThickness = round(z, 8)
    tags.SpacingBetweenSlices = round(z, 8)
    return tags


def _slice_dataset(image: sitk.Image, pixels: np.ndarray, k: int, study: Dataset, series: Dataset) -> Dataset:
    dataset = Dataset()
    dataset.file_meta = FileMetaDataset()
    dataset.file_meta.MediaStorageSOPClassUID = MRImageStorage
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    dataset.SOPClassUID = MRImageStorage
    dataset.SOPInstanceUID = generate_uid()
    dataset.file_meta.MediaStorageSOPInstanceUID = dataset.SOPInstanceUID
    dataset.update(study)
    dataset.update(series)
    dataset.InstanceNumber = k + 1
    dataset.ImageType = ["ORIGINAL", "PRIMARY", "M", "NONE"]
    dataset.ScanningSequence = "SE"
    dataset.SequenceVariant = "NONE"
    dataset.ScanOptions = ""
    dataset.MRAcquisitionType = "2D"
    dataset.EchoTime = 100.0
    dataset.RepetitionTime = 3000.0
    dataset.EchoTrainLength = 16
    dataset.MagneticFieldStrength = 3.0
    dataset.ImagePositionPatient = [round(v, 6) for v in image.TransformIndexToPhysicalPoint((0, 0, k))]
    dataset.SliceLocation = round(float(np.dot(dataset.ImagePositionPatient, _normal(series))), 6)
    dataset.SamplesPerPixel = 1
    dataset.PhotometricInterpretation = "MONOCHROME2"
    dataset.Rows, dataset.Columns = pixels.shape
    dataset.BitsAllocated = 16
    dataset.BitsStored = 16
    dataset.HighBit = 15
    dataset.PixelRepresentation = 0
    dataset.PixelData = np.ascontiguousarray(pixels).tobytes()
    return dataset


def _normal(series: Dataset) -> np.ndarray:
    orientation = np.asarray(series.ImageOrientationPatient, dtype=float)
    return np.cross(orientation[:3], orientation[3:])
