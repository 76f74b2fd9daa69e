"""Which measurement each task gets: the segments it reads, the engine function, the optional chart.

A task without an entry here gets a segmentation and no table. The segments of a spec are combined
into one label map on the scan's grid (SimpleITK image, ``Logic.segmentsLabelMap``): for a task
with exclusive labels each segment is painted with its label value in the spec's order (a later
segment wins where two overlap); for a task whose segments overlap (``TaskInfo.overlapping``, the
tumour task) the values are bit flags and are ORed (cord 1 | tumour 2 = 3, intramedullary). The
engine function takes that label map (and, with ``needsImage``, the scan on the same grid; with
``needsLevels``, the disc levels of the segmentation's point list, ``LevelPoints``) and returns
(rows, flags): one dict per row, and a dict of findings and notes.
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
    # (labelMap), (labelMap, image) with needsImage, (labelMap, levels) with needsLevels
    measure: Callable[..., tuple[list[dict], dict]]
    columns: Callable[[], list[str]]
    units: Callable[[], dict[str, str]]
    chart: ChartSpec | None = None
    needsImage: bool = False  # pass the scan itself (SimpleITK, the label map's grid) as second argument
    # Pass the disc levels (spineai.stenosis.levels.LevelPoint, LPS, with normals) as second argument:
    # the engine takes them as level_points, and the result keeps them as a markups point list.
    needsLevels: bool = False
    allColumns: bool = False  # every column in every table, as the engine's CSV (else only those present)


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


def _stenosisTable(labelMap: sitk.Image, levels: list) -> tuple[list[dict], dict]:
    """One row per lumbar level, graded in the plane of each level as the engine does after segmenting.

    Where a level cannot be assessed comes from the levels themselves (out of order, not a lumbar
    spacing) and from the scan's geometry (no slice at the level, level outside the scan), so a
    moved point is judged anew; a plane without sac is marked by ``stenosis_table`` itself.
    """
    from spineai.errors import SpineAIError

    try:
        from spineai.measure.stenosis import stenosis_flags, stenosis_table
        from spineai.stenosis.segment import assessment_problems
    except ImportError as error:  # the engine's stenosis code needs torch & co.
        raise SpineAIError(
            f"grading stenosis needs the engine's Python packages ({error.name or error} is missing); "
            "click Segment dural sac once to install them"
        ) from error

    rows = stenosis_table(labelMap, levels, assessment_problems(labelMap, levels))
    flags = stenosis_flags(rows)
    notes = []
    if flags["worst_schizas_grade"]:
        notes.append(
            f"worst Schizas grade {flags['worst_schizas_grade']}; smallest dural sac "
            f"{flags['smallest_dsca_mm2']:.0f} mm2 at {flags['smallest_dsca_level']}"
        )
    notes += [
        f"{row['level']} not assessable ({row['not_assessable_reason']})" for row in rows if not row["assessable"]
    ]
    return rows, {**flags, "notes": notes}


def _stenosisColumns() -> list[str]:
    from spineai.measure.stenosis import STENOSIS_COLUMNS

    return list(STENOSIS_COLUMNS)


def _stenosisUnits() -> dict[str, str]:
    from spineai.measure.stenosis import COLUMN_UNITS

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
    # Overlapping bit flags (1 dural sac, 2 CSF inside it, 4 posterior epidural fat); nerve roots are
    # the sac without CSF. Measured in the plane of each disc level of the result's point list, one
    # row per level L1-L2 ... L5-S1 (not assessable ones included, with the reason): no chart.
    "stenosis": MeasurementSpec(
        ((1, "Dural sac"), (2, "Cerebrospinal fluid"), (4, "Posterior epidural fat")),
        "Dural sac",
        _stenosisTable,
        _stenosisColumns,
        _stenosisUnits,
        needsLevels=True,
        allColumns=True,
    ),
}


def presentColumns(spec: MeasurementSpec, rows: list[dict]) -> list[str]:
    """The spec's columns that the rows carry, in the spec's order (the engine omits optional ones)."""
    columns = spec.columns()
    if not rows or spec.allColumns:
        return columns
    return [column for column in columns if column in rows[0]] + [c for c in rows[0] if c not in columns]
