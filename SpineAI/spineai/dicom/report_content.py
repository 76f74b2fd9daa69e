"""What each task's DICOM SR says: one small mapping per task, looked up by task name.

A task's report is a list of measurement groups (TID 1411), each referencing one segment of the
task's SEG, built from the rows of the task's tables (the same rows as its CSV files):

* ``groups(tables)``: the groups, each a tracking identifier, the row it reports and its finding
  sites (vertebral or disc level codes);
* ``numbers``: CSV column -> concept, UCUM unit and derivation of a NUM item (TID 300);
* ``grades``: CSV column -> a coded qualitative evaluation, its values' codes and the column
  holding the rule text that gave it (stored as a TEXT item under it);
* ``notes``: CSV column -> a TEXT item (a level's reason for being not assessable).

A value that is empty or not a number is left out. A task without a mapping here cannot be written
as SR, and ``report_content`` says so naming it. The codes and why each was chosen:
``dicom/codes.py`` and ``docs/dicom-pacs.md``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from pydicom.sr.coding import Code

from ..errors import SpineAIError
from ..measure.levels import level_name
from . import codes as c


@dataclass(frozen=True)
class Number:
    column: str
    concept: Code
    unit: Code
    derivation: Code | None = None


@dataclass(frozen=True)
class Grade:
    column: str
    concept: Code
    values: dict[str, Code]
    rule_column: str | None = None


@dataclass(frozen=True)
class Note:
    column: str
    concept: Code


@dataclass(frozen=True)
class Group:
    """One measurement group: its tracking identifier, the table row it reports and its finding sites."""

    tracking: str
    row: dict
    finding_sites: tuple[Code, ...] = ()


@dataclass(frozen=True)
class ReportContent:
    segment: str  # the segment (terminology name) every group references and is a finding of
    title: str  # series description of the SR
    groups: Callable[[dict], list[Group]]  # tables by kind -> groups
    numbers: tuple[Number, ...]
    grades: tuple[Grade, ...] = ()
    notes: tuple[Note, ...] = ()


def finite(value) -> float | None:
    """The number in a table cell, or None (empty, NaN, not a number)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --- cord -------------------------------------------------------------------------------------


def cord_groups(tables: dict) -> list[Group]:
    """The whole cord (mean CSA over the measured slices), then one group per vertebral level."""
    from ..measure.cord import LEVEL, aggregate

    rows = tables.get("per_slice", [])
    groups = [Group("Spinal cord", aggregate(rows) if rows else {})]
    for row in tables.get("per_level", []):
        level = int(row[LEVEL])
        if not 1 <= level <= 25:  # not a level SCT names (C1 = 1 .. S1 = 25)
            continue
        name = level_name(level)
        groups.append(Group(f"Spinal cord at {name}", row, (c.vertebra(level),)))
    return groups


CORD = ReportContent(
    segment="Spinal cord",
    title="SpineAI cord morphometry",
    groups=cord_groups,
    numbers=(Number("MEAN(area)", c.AREA, c.SQUARE_MILLIMETRE, c.MEAN),),
)

# --- lesion -----------------------------------------------------------------------------------


def finding_groups(name: str, all_name: str, sites: Callable[[dict], tuple[Code, ...]]):
    """One group per finding row (label 1..n) and one for the total row."""

    def groups(tables: dict) -> list[Group]:
        rows = tables.get("table", [])
        return [
            Group(all_name if str(row["label"]) == "total" else f"{name} {row['label']}", row, sites(row))
            for row in rows
        ]

    return groups


LESION = ReportContent(
    segment="Spinal cord injury lesion",
    title="SpineAI spinal cord injury lesion",
    groups=finding_groups("Spinal cord injury lesion", "All spinal cord injury lesions", lambda row: (c.SPINAL_CORD,)),
    numbers=(
        Number("volume", c.VOLUME, c.CUBIC_MILLIMETRE),
        Number("length", c.LENGTH, c.MILLIMETRE),
        Number("width", c.WIDTH, c.MILLIMETRE),
        Number("max_equivalent_diameter", c.EQUIVALENT_DIAMETER_MAX, c.MILLIMETRE),
        Number("max_axial_damage_ratio", c.DAMAGE_RATIO_MAX, c.RATIO),
        Number("length_interpolated_midsagittal_slice", c.MIDSAGITTAL_LENGTH, c.MILLIMETRE),
        Number("width_interpolated_midsagittal_slice", c.MIDSAGITTAL_WIDTH, c.MILLIMETRE),
        Number("interpolated_dorsal_bridge_width", c.DORSAL_BRIDGE, c.MILLIMETRE),
        Number("interpolated_ventral_bridge_width", c.VENTRAL_BRIDGE, c.MILLIMETRE),
        Number("interpolated_total_bridge_width", c.TOTAL_BRIDGE, c.MILLIMETRE),
        Number("dorsal_bridge_ratio", c.DORSAL_BRIDGE_RATIO, c.PERCENT),
        Number("ventral_bridge_ratio", c.VENTRAL_BRIDGE_RATIO, c.PERCENT),
        Number("epicentre_cord_ap_ratio", c.EPICENTRE_AP_RATIO, c.PERCENT),
    ),
    grades=(Grade("BASIC_proposed", c.BASIC_GRADE, c.BASIC_VALUES),),
)

# --- tumour -----------------------------------------------------------------------------------


def tumor_sites(row: dict) -> tuple[Code, ...]:
    """The vertebrae of the row's ``levels`` ("C3-C5,C7" -> C3, C4, C5, C7 vertebra); none without levels."""
    codes_by_name = {level_name(code): code for code in range(1, 26)}
    sites = []
    for run in filter(None, str(row.get("levels") or "").split(",")):
        first, _, last = run.partition("-")
        start, end = codes_by_name[first], codes_by_name[last or first]
        sites += [c.vertebra(code) for code in range(start, end + 1)]
    return tuple(sites)


TUMOR = ReportContent(
    segment="Spinal tumour",
    title="SpineAI spinal tumour",
    groups=finding_groups("Spinal tumour", "All spinal tumours", tumor_sites),
    numbers=(
        Number("volume", c.VOLUME, c.CUBIC_MILLIMETRE),
        Number("craniocaudal_length", c.LENGTH, c.MILLIMETRE),
        Number("max_ap_diameter", c.AP_DIAMETER_MAX, c.MILLIMETRE),
        Number("max_rl_diameter", c.RL_DIAMETER_MAX, c.MILLIMETRE),
        Number("max_3d_diameter", c.DIAMETER, c.MILLIMETRE, c.MAXIMUM),
        Number("fraction_in_cord", c.FRACTION_IN_CORD, c.RATIO),
        Number("enhancement_ratio", c.ENHANCEMENT_RATIO, c.RATIO),
    ),
    grades=(Grade("compartment", c.COMPARTMENT, c.COMPARTMENT_VALUES),),
)

# --- stenosis ---------------------------------------------------------------------------------


def stenosis_groups(tables: dict) -> list[Group]:
    """One group per disc level L1-L2 ... L5-S1, assessable or not."""
    rows = tables.get("table", [])
    return [Group(f"Dural sac at {row['level']}", row, (c.disc_level(row["level"]),)) for row in rows]


STENOSIS = ReportContent(
    segment="Dural sac",
    title="SpineAI lumbar central stenosis",
    groups=stenosis_groups,
    numbers=(
        Number("dural_sac_area_mm2", c.AREA, c.SQUARE_MILLIMETRE),
        Number("ap_diameter_mm", c.SAC_AP_DIAMETER, c.MILLIMETRE),
        Number("rl_width_mm", c.SAC_RL_WIDTH, c.MILLIMETRE),
    ),
    grades=(
        Grade("schizas_grade", c.SCHIZAS_GRADE, c.SCHIZAS_VALUES, "schizas_rule"),
        Grade("lee_grade", c.LEE_GRADE, c.LEE_VALUES, "lee_rule"),
        Grade("dsca_category", c.DSCA_CATEGORY, c.DSCA_VALUES, "dsca_rule"),
    ),
    notes=(Note("not_assessable_reason", c.NOT_ASSESSABLE),),
)

REPORT_CONTENT: dict[str, ReportContent] = {"cord": CORD, "lesion": LESION, "tumor": TUMOR, "stenosis": STENOSIS}


def report_content(task: str) -> ReportContent:
    """The SR mapping of ``task``; a one-line error naming the task where there is none."""
    if task not in REPORT_CONTENT:
        known = ", ".join(REPORT_CONTENT)
        raise SpineAIError(f"DICOM SR output has no mapping for the '{task}' task (it exists for: {known})")
    return REPORT_CONTENT[task]
