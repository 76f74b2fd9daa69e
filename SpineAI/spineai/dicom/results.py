"""The DICOM results of one segmented series, written into the caller's all-or-nothing ``OutputSet``."""

from __future__ import annotations

from io import BytesIO
from pathlib import Path

from pydicom.dataset import Dataset

from ..io import OutputSet
from .seg import build_segmentation
from .series import SourceSeries
from .sr import build_measurement_report


def dicom_result_names(stem: str, task: str) -> dict[str, str]:
    return {"dicom_seg": f"{stem}_{task}_seg.dcm", "dicom_sr": f"{stem}_{task}_morphometry_sr.dcm"}


def write_dicom_results(out: OutputSet, stem: str, source: SourceSeries, result, tables: dict) -> dict[str, Path]:
    """Add ``<stem>_<task>_seg.dcm`` (SEG) and ``<stem>_<task>_morphometry_sr.dcm`` (SR) to ``out``.

    ``result``: ``pipeline.SegmentationResult`` of the volume read from ``source``; ``tables``: its
    ``measure.morphometry_tables``, the same rows as the CSV files.
    """
    segmentation = build_segmentation(source, result.mask, result.task, result.sidecar)
    report = build_measurement_report(source, segmentation, tables, result.sidecar)
    names = dicom_result_names(stem, result.task)
    return {
        "dicom_seg": out.write_bytes(encoded(segmentation), names["dicom_seg"]),
        "dicom_sr": out.write_bytes(encoded(report), names["dicom_sr"]),
    }


def encoded(dataset: Dataset) -> bytes:
    """A DICOM Part 10 file (preamble and file meta) in memory."""
    buffer = BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()
