"""Which measurement each task gets: the segments it reads, the engine function, the optional chart.

A task without an entry here gets a segmentation and no table. The segments of a spec are combined
into one label map on the scan's grid (SimpleITK image: each segment painted with its label value,
in the spec's order, so a later segment wins where two overlap); the engine function takes that
label map and returns (rows, flags): one dict per row, and a dict of findings and notes.
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
    required: str  # the segment that must hold voxels; measuring stops with a message when it is empty
    measure: Callable[[sitk.Image], tuple[list[dict], dict]]
    columns: Callable[[], list[str]]
    units: Callable[[], dict[str, str]]
    chart: ChartSpec | None = None


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
}


def presentColumns(spec: MeasurementSpec, rows: list[dict]) -> list[str]:
    """The spec's columns that the rows carry, in the spec's order (the engine omits optional ones)."""
    columns = spec.columns()
    if not rows:
        return columns
    return [column for column in columns if column in rows[0]] + [c for c in rows[0] if c not in columns]
