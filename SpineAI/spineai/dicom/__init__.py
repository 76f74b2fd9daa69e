"""DICOM out and PACS: a task's mask as DICOM SEG, its measurements as DICOM SR, and a DICOMweb round trip.

* ``series``: the source datasets of a DICOM series folder, matched to the slices of the volume read from it.
* ``seg``: the mask as a BINARY DICOM Segmentation with SNOMED CT segment codes, referencing the source series.
* ``sr``: the cord cross-sectional area as a TID 1500 Imaging Measurement Report referencing the SEG segment.
* ``results``: both written into the same all-or-nothing ``OutputSet`` as the NIfTI mask and the tables.
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
