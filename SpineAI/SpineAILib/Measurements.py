"""Which measurement each task gets: the segment measured, the engine function, the plotted columns.

A task without an entry here gets a segmentation and no table. The engine functions take a mask
(SimpleITK image on the scan's grid) and return one dict per row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import SimpleITK as sitk


@dataclass(frozen=True)
class MeasurementSpec:
    segment: str  # name of the measured segment
    measure: Callable[[sitk.Image], list[dict]]
    columns: Callable[[], list[str]]
    units: Callable[[], dict[str, str]]
    plotX: str
    plotY: str
    chartTitle: str


def _cordMorphometry(mask: sitk.Image) -> list[dict]:
    from spineai.measure.cord import cord_morphometry

    return cord_morphometry(mask)


def _cordColumns() -> list[str]:
    from spineai.measure.cord import MORPHOMETRY_COLUMNS

    return list(MORPHOMETRY_COLUMNS)


def _cordUnits() -> dict[str, str]:
    from spineai.measure.cord import COLUMN_UNITS

    return dict(COLUMN_UNITS)


MEASUREMENTS = {
    "cord": MeasurementSpec(
        "Spinal cord",
        _cordMorphometry,
        _cordColumns,
        _cordUnits,
        plotX="Slice (I->S)",
        plotY="MEAN(area)",
        chartTitle="Spinal cord cross-sectional area",
    ),
}


def presentColumns(spec: MeasurementSpec, rows: list[dict]) -> list[str]:
    """The spec's columns that the rows carry, in the spec's order (the engine omits optional ones)."""
    columns = spec.columns()
    if not rows:
        return columns
    return [column for column in columns if column in rows[0]] + [c for c in rows[0] if c not in columns]
