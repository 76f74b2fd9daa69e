"""Reading SpineAI's DICOM results back, independently of the code that wrote them.

* ``seg_volumes_pydicom``: a SEG decoded with pydicom alone, each frame placed by its own
  ImagePositionPatient and checked to name the source image it came from.
* ``seg_volumes_highdicom``: the same through highdicom's reader, frames fetched by source image.
* ``sr_groups``: an SR's measurement groups through highdicom's reader.
* ``dciodvfy_problems``: David Clunie's validator (Debian package dicom3tools), a second,
  independent check of every object against its IOD.
"""

from __future__ import annotations

import math
import shutil
import subprocess
from pathlib import Path

import highdicom as hd
import numpy as np
import pydicom
import pytest
import SimpleITK as sitk

# The one warning dciodvfy gives on SpineAI's objects: it knows only the coding schemes of PS3.16,
# and a private one (declared in the SR's CodingSchemeIdentificationSequence) is by definition not there.
PRIVATE_SCHEME_WARNING = (
    "Warning - Unrecognized defined term <99SPINEAI> for value 1 of attribute <Coding Scheme Designator>"
)


def dciodvfy_problems(path: Path) -> list[str]:
    """dciodvfy's errors and warnings for ``path``, less the private scheme's warning; its IOD name first."""
    binary = shutil.which("dciodvfy")
    if binary is None:
        pytest.fail("the DICOM tests need dciodvfy: apt-get install dicom3tools")
    run = subprocess.run([binary, str(path)], capture_output=True, text=True, timeout=120)
    lines = [line.strip() for line in (run.stdout + run.stderr).splitlines() if line.strip()]
    return [line for line in lines if line.startswith(("Error", "Warning")) and line != PRIVATE_SCHEME_WARNING]


def dciodvfy_iod(path: Path) -> str:
    """The IOD dciodvfy recognised ``path`` as (the first line of its report)."""
    run = subprocess.run([shutil.which("dciodvfy") or "dciodvfy", str(path)], capture_output=True, text=True)
    lines = [line.strip() for line in (run.stdout + run.stderr).splitlines()]
    return next((line for line in lines if line and not line.startswith(("Error", "Warning"))), "")


# --- SEG ----------------------------------------------------------------------------------------


def slice_at(image: sitk.Image, position) -> int:
    """Slice index of a frame whose top-left pixel centre is ``position`` (must lie on the grid)."""
    index = np.array(image.TransformPhysicalPointToContinuousIndex([float(v) for v in position]))
    assert np.allclose(index[:2], 0, atol=1e-3) and abs(index[2] - round(index[2])) < 1e-3
    return int(round(index[2]))


def source_by_slice(files: list[Path], grid: sitk.Image) -> dict[int, pydicom.Dataset]:
    datasets = [pydicom.dcmread(path, stop_before_pixels=True) for path in files]
    return {slice_at(grid, dataset.ImagePositionPatient): dataset for dataset in datasets}


def seg_volumes_pydicom(seg: pydicom.Dataset, grid: sitk.Image, files: list[Path]) -> dict[int, np.ndarray]:
    """{segment number: volume a[k, row, column] on ``grid``} rebuilt from the frames with pydicom alone.

    Each frame is placed at the slice its PlanePositionSequence names, must point (DerivationImage/
    SourceImage) at the source image of that slice, and may be placed once per segment.
    """
    numbers = [int(item.SegmentNumber) for item in seg.SegmentSequence]
    shape = (grid.GetDepth(), int(seg.Rows), int(seg.Columns))
    volumes = {number: np.zeros(shape, np.uint8) for number in numbers}
    placed = {number: set() for number in numbers}
    frames = np.reshape(seg.pixel_array, (int(seg.NumberOfFrames), int(seg.Rows), int(seg.Columns)))
    shared = seg.SharedFunctionalGroupsSequence[0]
    source_at = source_by_slice(files, grid)
    for frame, groups in zip(frames, seg.PerFrameFunctionalGroupsSequence, strict=True):
        identification = groups.get("SegmentIdentificationSequence") or shared.SegmentIdentificationSequence
        number = int(identification[0].ReferencedSegmentNumber)
        k = slice_at(grid, groups.PlanePositionSequence[0].ImagePositionPatient)
        assert k not in placed[number], f"segment {number} has two frames on slice {k}"
        placed[number].add(k)
        volumes[number][k] = frame
        source_uid = groups.DerivationImageSequence[0].SourceImageSequence[0].ReferencedSOPInstanceUID
        assert source_uid == source_at[k].SOPInstanceUID  # the frame points at the image it was computed from
    return volumes


def seg_volumes_highdicom(path: Path, grid: sitk.Image, files: list[Path]) -> dict[int, np.ndarray]:
    """{segment number: volume on ``grid``} through highdicom, frames asked for by source image."""
    seg = hd.seg.segread(path)
    numbers = list(seg.segment_numbers)
    source_at = source_by_slice(files, grid)
    order = sorted(source_at)
    pixels = seg.get_pixels_by_source_instance(
        source_sop_instance_uids=[str(source_at[k].SOPInstanceUID) for k in order],
        segment_numbers=numbers,
    )  # (source images, rows, columns, segments); an image without a frame of a segment is all 0 there
    volumes = {}
    for channel, number in enumerate(numbers):
        volume = np.zeros((grid.GetDepth(), *pixels.shape[1:3]), np.uint8)
        volume[order] = pixels[..., channel]
        volumes[number] = volume
    return volumes


def expected_segment_volumes(task: str, labels: np.ndarray) -> dict[int, np.ndarray]:
    """{segment number: binary volume} of a label map array, by the task's own segment rule."""
    from spineai.tasks import get_task

    info = get_task(task)
    return {n: info.segment_mask(labels, value).astype(np.uint8) for n, (value, _) in enumerate(info.segments, 1)}


# --- SR -----------------------------------------------------------------------------------------


def code_key(code) -> tuple[str, str]:
    return (str(code.value), str(code.scheme_designator))


def sr_groups(path: Path) -> list[dict]:
    """The measurement groups of an SR read with highdicom, as plain values."""
    sr = hd.sr.srread(path)
    groups = []
    for group in sr.content.get_volumetric_roi_measurement_groups():
        numbers = {}
        for measurement in group.get_measurements():
            key = code_key(measurement.name)
            assert key not in numbers, f"{group.tracking_identifier}: two measurements {measurement.name.meaning}"
            derivation = measurement.derivation
            numbers[key] = {
                "value": float(measurement.value),
                "unit": code_key(measurement.unit),
                "derivation": code_key(derivation) if derivation is not None else None,
            }
        grades = {}
        for evaluation in group.get_qualitative_evaluations():
            value = evaluation.value
            grades[code_key(evaluation.name)] = {"value": code_key(value), "meaning": value.meaning}
        for item in group[0].ContentSequence:  # highdicom rebuilds evaluations without their children: read them here
            if item.ValueType == "CODE" and code_key_of(item) in grades:
                children = item.get("ContentSequence", [])
                grades[code_key_of(item)] |= {
                    "rule": [str(child.TextValue) for child in children if child.ValueType == "TEXT"],
                    "rule_relationship": [str(child.RelationshipType) for child in children],
                }
        notes = {  # TEXT items the group CONTAINS (the tracking identifier is observation context)
            code_key_of(item): str(item.TextValue)
            for item in group[0].ContentSequence
            if item.ValueType == "TEXT" and item.RelationshipType == "CONTAINS"
        }
        groups.append(
            {
                "tracking": group.tracking_identifier,
                "finding": code_key(group.finding_type) if group.finding_type is not None else None,
                "sites": [code_key(site.value) for site in group.finding_sites],
                "segment": referenced_segment(group),
                "numbers": numbers,
                "grades": grades,
                "notes": notes,
            }
        )
    return groups


def code_key_of(item) -> tuple[str, str]:
    """(value, scheme) of a content item's concept name."""
    concept = item.ConceptNameCodeSequence[0]
    return (str(concept.CodeValue), str(concept.CodingSchemeDesignator))


def referenced_segment(group) -> tuple[str, int]:
    """(SEG SOPInstanceUID, segment number) that a TID 1411 group references."""
    (item,) = [i for i in group[0].ContentSequence if i.ConceptNameCodeSequence[0].CodeValue == "121191"]
    reference = item.ReferencedSOPSequence[0]
    return str(reference.ReferencedSOPInstanceUID), int(reference.ReferencedSegmentNumber)


def csv_number(value: str) -> float | None:
    """A CSV cell as the SR should carry it: a finite number, else None (left out)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None
