"""The stenosis task from a scan: levels, sac segmentation in each level's plane, and the sidecar details.

Levels come, in this order of preference, from points the user gives (markups JSON or a disc label
image), from a sagittal T2 of the same session (``sagittal``), or from the scan itself when it is a
sagittal or 3D scan. A level that is missing, out of order, outside the scan or without a sac is
kept as a row marked not assessable, never graded.
"""

from __future__ import annotations

from dataclasses import dataclass

import SimpleITK as sitk

from ..models.registry import ModelSpec
from .levels import LevelPoint, find_discs, with_normals
from .segment import assessment_problems, level_sections, sac_network, segment_sections


@dataclass(frozen=True)
class UsedModel:
    """What the sidecar records of a network that ran (as the slice predictors of other tasks)."""

    spec: ModelSpec
    device: object


def stenosis_levels(image: sitk.Image, points=None, sagittal=None, device="auto", source="input image"):
    """(levels with normals, where the levels came from)."""
    if points:
        levels, origin = list(points), "points given"
    elif sagittal is not None:
        levels, origin = find_discs(sagittal, device, "sagittal scan"), "disc network on the sagittal scan"
    else:
        levels, origin = find_discs(image, device, source), "disc network on the scan"
    return with_normals(levels), origin


def segment_stenosis(
    canonical: sitk.Image, device="auto", progress=None, should_cancel=None, points=None, sagittal=None, source="scan"
):
    """Label map (canonical array, bits 1 sac, 2 CSF, 4 posterior fat), the networks used, sidecar details."""
    from .levels import disc_network

    levels, origin = stenosis_levels(canonical, points, sagittal, device, source)
    if progress:
        progress(0.3)
    sections = level_sections(canonical, levels)
    problems = assessment_problems(canonical, levels, sections)
    labels = segment_sections(canonical, [s for s in sections if s.level.code not in problems], device)
    if progress:
        progress(1.0)
    used = []
    if not points:
        model, spec, resolved = disc_network(device)
        used.append(UsedModel(spec, resolved))
    _, spec, resolved = sac_network(device)
    used.append(UsedModel(spec, resolved))
    details = {"levels_from": origin, "disc_levels": [_level_record(level, problems) for level in levels]}
    return labels, used, details


def _level_record(level: LevelPoint, problems: dict[int, str]) -> dict:
    return {
        "level": level.name,
        "point_lps_mm": [round(v, 4) for v in level.point],
        "normal_lps": [round(v, 6) for v in level.normal] if level.normal is not None else None,
        "source": level.source,
        "problem": problems.get(level.code, ""),
    }
