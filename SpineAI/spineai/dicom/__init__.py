"""DICOM out and PACS: a task's mask as DICOM SEG, its measurements as DICOM SR, and a DICOMweb round trip.

* ``series``: the source datasets of a DICOM series folder, matched to the slices of the volume read from it.
* ``seg``: a task's label map as a BINARY DICOM Segmentation, one (possibly overlapping) segment per task
  segment, coded from the terminology table, referencing the source series.
* ``sr`` with ``report_content`` and ``codes``: the task's measurements as a TID 1500 Imaging Measurement
  Report, one group per table row referencing its SEG segment; standard codes, else the private scheme.
* ``results``: both written into the same all-or-nothing ``OutputSet`` as the NIfTI mask and the tables.
* ``credentials``: HTTP basic or bearer-token credentials and the CA bundle for a PACS.
* ``pacs`` / ``command``: ``spineai pacs`` pulls a series over WADO-RS and stores the results with STOW-RS.

Reading a DICOM series as an image needs only SimpleITK (``spineai.io``); everything here needs the optional
extra ``spineai[dicom]`` (highdicom, pydicom, dicomweb-client), which ``require_dicom_extra`` checks.
"""

from __future__ import annotations

import importlib.util

from ..errors import SpineAIError


def require_dicom_extra(*modules: str) -> None:
    """Raise a one-line ``SpineAIError`` naming the install command when an optional DICOM module is missing."""
    missing = [name for name in ("highdicom", "pydicom", *modules) if importlib.util.find_spec(name) is None]
    if missing:
        raise SpineAIError(
            f"DICOM SEG/SR output and PACS need the optional dependencies ({', '.join(missing)} missing): "
            "pip install 'spineai[dicom]'"
        )
