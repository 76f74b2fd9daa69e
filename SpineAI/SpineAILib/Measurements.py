"""Which measurement each task gets: the segments it reads, the engine function, the optional chart.

A task without an entry here gets a segmentation and no table. The segments of a spec are combined
into one label map on the scan's grid (SimpleITK image, ``Logic.segmentsLabelMap``): for a task
with exclusive labels each segment is painted with its label value in the spec's order (a later
segment wins where two overlap); for a task whose segments overlap (``TaskInfo.overlapping``, the
tumour task) the values are bit flags and are ORed (cord 1 | tumour 2 = 3, intramedullary). The
engine function takes that label map (and, with ``needsImage``, the scan on the same grid) and
returns (rows, flags): one dict per row, and a dict of findings and notes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import SimpleITK as sitk


@dataclass(frozen=True)
class ChartSpec:
    x: str  # plotted columns
    y: str
    title: str


@dataclass(frozen=True)
class MeasurementSpec:
    segments: tuple[tuple[int, str], ...]  # (label value, segment name), painted in this order
    # The segment that must hold voxels (measuring stops with a message when it is empty); None: any
    # segment may be empty, but not all of them.
    required: str | None
    measure: Callable[..., tuple[list[dict], dict]]  # (labelMap) or, with needsImage, (labelMap, image)
    columns: Callable[[], list[str]]
    units: Callable[[], dict[str, str]]
    chart: ChartSpec | None = None
    needsImage: bool = False  # pass the scan itself (SimpleITK, the label map's grid) as second argument


def _cordMorphometry(labelMap: sitk.Image) -> tuple[list[dict], dict]:
    from spineai.measure.cord import cord_morphometry

    return cord_morphometry(labelMap), {}


def _cordColumns() -> list[str]:
    from spineai.measure.cord import MORPHOMETRY_COLUMNS

    return list(MORPHOMETRY_COLUMNS)


def _cordUnits() -> dict[str, str]:
    from spineai.measure.cord import COLUMN_UNITS

    return dict(COLUMN_UNITS)


def _lesionTable(labelMap: sitk.Image) -> tuple[list[dict], dict]:
    from spineai.measure.lesion import lesion_table

    return lesion_table(labelMap)


def _lesionColumns() -> list[str]:
    from spineai.measure.lesion import LESION_COLUMNS

    return list(LESION_COLUMNS)


def _lesionUnits() -> dict[str, str]:
    from spineai.measure.lesion import COLUMN_UNITS

    return dict(COLUMN_UNITS)


def _tumorTable(labelMap: sitk.Image, image: sitk.Image) -> tuple[list[dict], dict]:
    from spineai.measure.tumor import tumor_table
    from spineai.tasks import TASKS

    # As the engine's CLI: every row (and the flags) say which contrast the model expects, since a
    # scan of another contrast (e.g. T2 instead of Gd-T1) is run anyway.
    rows, flags = tumor_table(labelMap, image)
    expected = TASKS["tumor"].expected_contrast
    return [{**row, "expected_contrast": expected} for row in rows], {**flags, "expected_contrast": expected}


def _tumorColumns() -> list[str]:
    from spineai.measure.tumor import TUMOR_COLUMNS

    return [*TUMOR_COLUMNS, "expected_contrast"]


def _tumorUnits() -> dict[str, str]:
    from spineai.measure.tumor import COLUMN_UNITS

    return {**COLUMN_UNITS, "expected_contrast": ""}


MEASUREMENTS = {
    "cord": MeasurementSpec(
        ((1, "Spinal cord"),),
        "Spinal cord",
        _cordMorphometry,
        _cordColumns,
        _cordUnits,
        ChartSpec("Slice (I->S)", "MEAN(area)", "Spinal cord cross-sectional area"),
    ),
    # The cord region is cord or lesion (labels 1 and 2); an empty lesion segment is a finding
    # (lesion_found False, a total row of zeros), not an error. One row per lesion: no chart.
    "lesion": MeasurementSpec(
        ((1, "Spinal cord"), (2, "Spinal cord injury lesion")),
        "Spinal cord",
        _lesionTable,
        _lesionColumns,
        _lesionUnits,
    ),
    # Overlapping bit flags (1 cord, 2 tumour, 3 both). No segment is required: no tumour is a
    # finding (a zero total row, tumor_found False), and a missing cord only makes the compartment
    # "unknown (no cord)" (the cord network fails on axial T1, a known limit). The scan gives the
    # enhancement ratio. One row per tumour: no chart.
    "tumor": MeasurementSpec(
        ((1, "Spinal cord"), (2, "Spinal tumour")),
        None,
        _tumorTable,
        _tumorColumns,
        _tumorUnits,
        needsImage=True,
    ),
}


def presentColumns(spec: MeasurementSpec, rows: list[dict]) -> list[str]:
    """The spec's columns that the rows carry, in the spec's order (the engine omits optional ones)."""
    columns = spec.columns()
    if not rows:
        return columns
    return [column for column in columns if column in rows[0]] + [c for c in rows[0] if c not in columns]
