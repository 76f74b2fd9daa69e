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
    """``<stem>_<task>_seg.dcm`` beside the NIfTI label map, ``<stem>_<table name>_sr.dcm`` beside the main CSV."""
    from ..tasks import get_task

    info = get_task(task)
    return {"dicom_seg": f"{stem}_{info.output_suffix}.dcm", "dicom_sr": f"{stem}_{info.table_name}_sr.dcm"}


def write_dicom_results(out: OutputSet, stem: str, source: SourceSeries, result, tables: dict) -> dict[str, Path]:
    """Add the SEG and the SR (``dicom_result_names``) to ``out``.

    ``result``: ``pipeline.SegmentationResult`` of the volume read from ``source``; ``tables``: the rows
    of its task's tables by kind (``Task.measure``), the same rows as the CSV files.
    """
    segmentation = build_segmentation(source, result.mask, result.task, result.sidecar)
    report = build_measurement_report(source, segmentation, result.task, tables, result.sidecar)
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
