"""Per-level dural sac measurements and grades from a stenosis label map (``spineai.stenosis``).

Each level's plane (``stenosis.planes``) is sampled from the label map at ``MEASURE_SPACING_MM``
(nearest neighbour), so a corrected label map is measured exactly as the segmented one, on any
grid and in any orientation. Areas are pixel counts times the plane pixel area: the plane is
perpendicular to the disc normal, so no angle correction is needed.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..stenosis.grading import AP_NARROW_MM, VENTRAL_ZONE, dsca_category, lee_grade, schizas_grade
from ..stenosis.levels import DISC_NAMES, LevelPoint
from ..stenosis.planes import MEASURE_SPACING_MM, plane_frame, plane_image, reslice
from ..stenosis.segment import CSF, FAT, SAC

STENOSIS_COLUMNS = [
    "level", "assessable", "not_assessable_reason", "level_source", "point_x_mm", "point_y_mm", "point_z_mm",
    "dural_sac_area_mm2", "csf_area_mm2", "rootlet_area_mm2", "csf_fraction", "rootlet_fraction",
    "ventral_csf_fraction", "rootlet_depth", "ap_diameter_mm", "rl_width_mm", "posterior_fat_mm2",
    "schizas_grade", "schizas_rule", "lee_grade", "lee_rule", "dsca_category", "dsca_rule", "ap_below_10mm",
    "grade_source",
]  # fmt: skip


def section_measurements(bits: np.ndarray, spacing: float) -> dict:
    """Areas, fractions, root position and diameters of one plane (rows anterior -> posterior)."""
    sac = bits & SAC > 0
    pixel = spacing * spacing
    csf = sac & (bits & CSF > 0)
    roots = sac & ~csf
    rows, cols = np.nonzero(sac)
    top, bottom = rows.min(), rows.max()
    depth = (np.arange(bits.shape[0]) - top) / max(bottom - top, 1)  # 0 ventral .. 1 dorsal, per row
    ventral = sac & (depth[:, None] < VENTRAL_ZONE)
    midline = int(round(cols.mean()))
    centre_row = rows.mean()
    fat = (bits & FAT > 0) & (np.arange(bits.shape[0])[:, None] > centre_row)
    root_rows = np.nonzero(roots)[0]
    return {
        "dural_sac_area_mm2": sac.sum() * pixel,
        "csf_area_mm2": csf.sum() * pixel,
        "rootlet_area_mm2": roots.sum() * pixel,
        "csf_fraction": csf.sum() / sac.sum(),
        "rootlet_fraction": roots.sum() / sac.sum(),
        "ventral_csf_fraction": (csf & ventral).sum() / max(ventral.sum(), 1),
        "rootlet_depth": float(depth[root_rows].mean()) if root_rows.size else float("nan"),
        "ap_diameter_mm": sac[:, max(midline - 1, 0) : midline + 2].sum(0).mean() * spacing,
        "rl_width_mm": (cols.max() - cols.min() + 1) * spacing,
        "posterior_fat_mm2": fat.sum() * pixel,
    }


def level_row(labels: sitk.Image, level: LevelPoint, problem: str = "") -> dict:
    """The table row of one level: measurements and grades, or why it is not assessable."""
    row = {"level": level.name, "level_source": level.source, "grade_source": "rule"}
    row.update({f"point_{axis}_mm": round(v, 2) for axis, v in zip("xyz", level.point, strict=True)})
    if not problem:
        centre, frame, _ = plane_frame(labels, level.point, level.normal)
        plane = plane_image(centre, frame, MEASURE_SPACING_MM)
        bits = reslice(labels, plane, sitk.sitkNearestNeighbor, sitk.sitkUInt8)
        problem = "" if (bits & SAC).any() else "no dural sac in the plane of this level"
    if problem:
        return {**row, "assessable": False, "not_assessable_reason": problem}
    m = section_measurements(bits, MEASURE_SPACING_MM)
    schizas, lee, dsca = schizas_grade(m), lee_grade(m), dsca_category(m["dural_sac_area_mm2"])
    row.update({key: round(float(value), 4) for key, value in m.items()})
    return {
        **row,
        "assessable": True,
        "not_assessable_reason": "",
        "schizas_grade": schizas.value,
        "schizas_rule": schizas.rule,
        "lee_grade": lee.value,
        "lee_rule": lee.rule,
        "dsca_category": dsca.value,
        "dsca_rule": dsca.rule,
        "ap_below_10mm": bool(m["ap_diameter_mm"] < AP_NARROW_MM),
    }


def stenosis_table(labels: sitk.Image, levels: list[LevelPoint], problems: dict[int, str] | None = None) -> list[dict]:
    """One row per lumbar level L1-L2 ... L5-S1; a level not given or with a problem is marked not assessable."""
    problems = problems or {}
    by_code = {level.code: level for level in levels}
    rows = []
    for code, name in DISC_NAMES.items():
        if code not in by_code:
            rows.append(
                {"level": name, "assessable": False, "not_assessable_reason": problems.get(code, "level not found")}
            )
            continue
        rows.append(level_row(labels, by_code[code], problems.get(code, "")))
    return rows


COLUMN_UNITS = {
    "point_x_mm": "mm",
    "point_y_mm": "mm",
    "point_z_mm": "mm",
    "dural_sac_area_mm2": "mm2",
    "csf_area_mm2": "mm2",
    "rootlet_area_mm2": "mm2",
    "csf_fraction": "fraction",
    "rootlet_fraction": "fraction",
    "ventral_csf_fraction": "fraction",
    "rootlet_depth": "0 ventral .. 1 dorsal",
    "ap_diameter_mm": "mm",
    "rl_width_mm": "mm",
    "posterior_fat_mm2": "mm2",
}


def stenosis_flags(rows: list[dict]) -> dict:
    """The case's findings for sidecars and summaries: levels assessed, the worst grade and the smallest sac."""
    assessed = [row for row in rows if row["assessable"]]
    order = ["A", "A1", "A2", "A3", "A4", "B", "C", "D"]
    worst = max((row["schizas_grade"] for row in assessed), key=order.index, default="")
    smallest = min(assessed, key=lambda row: row["dural_sac_area_mm2"], default=None)
    return {
        "levels_assessable": [row["level"] for row in assessed],
        "worst_schizas_grade": worst,
        "smallest_dsca_mm2": smallest["dural_sac_area_mm2"] if smallest else None,
        "smallest_dsca_level": smallest["level"] if smallest else "",
    }
