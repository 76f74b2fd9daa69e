"""Disc levels L1-L2 ... L5-S1: found by a network on a sagittal T2, or read from labelled points.

A level is a point at the disc (LPS, mm) with, where known, the normal of the disc plane: the
plane a radiographer angles an axial slice along. The disc network finds the intervertebral discs
on sagittal slices (trained on the 5 ``lumbar-ivd`` scans); the discs are then counted up from the
lowest one, which is taken as L5-S1 (the sacrum below it has no disc), so a scan that does not reach
the sacrum is labelled wrongly: give points for it. Each disc's centroid is its level point and its
thinnest principal axis the normal. Points (Slicer markups JSON, or a label image with SCT disc
codes 21-25) give centroids only; their normals come from the neighbouring levels.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..errors import InputError
from ..io import read_image
from ..orientation import spacing_zyx, to_canonical

DISC_NAMES = {21: "L1-L2", 22: "L2-L3", 23: "L3-L4", 24: "L4-L5", 25: "L5-S1"}  # SCT disc codes
CODES_BY_NAME = {name: code for code, name in DISC_NAMES.items()}
DISC_GRID_MM = 2.0  # the disc network sees sagittal slices at 2 mm (S-I and A-P): a disc is 4-6 pixels thick
MAX_SAGITTAL_SPACING_MM = 2.0  # coarser S-I or A-P spacing: not a sagittal/3D scan; points needed
MIN_DISC_MM3 = 300.0  # a lumbar disc is several cm3; smaller components are noise
MIN_DISC_GAP_MM, MAX_DISC_GAP_MM = 22.0, 60.0  # centre to centre of adjacent lumbar discs (cervical: ~15-20)


@dataclass(frozen=True)
class LevelPoint:
    code: int  # SCT disc code: 21 = L1-L2 ... 25 = L5-S1
    point: tuple[float, float, float]  # LPS mm
    normal: tuple[float, float, float] | None  # disc plane normal (unit, LPS), pointing superior
    source: str

    @property
    def name(self) -> str:
        return DISC_NAMES[self.code]


def sagittal_slices(canonical: sitk.Image, percentiles) -> tuple[sitk.Image, np.ndarray]:
    """The scan on the disc network's grid (2 mm S-I and A-P) and its normalised sagittal slices (x, z, y)."""
    from ..inference import normalise_intensity, resample_to_spacing

    spacing = spacing_zyx(canonical)
    grid = resample_to_spacing(canonical, (DISC_GRID_MM, DISC_GRID_MM, spacing[2]))
    volume = normalise_intensity(sitk.GetArrayFromImage(grid), percentiles)
    return grid, np.ascontiguousarray(volume.transpose(2, 0, 1))


def find_discs(image: sitk.Image, device: str = "auto", source="input image") -> list[LevelPoint]:
    """The lumbar discs the network finds on a sagittal (or 3D) T2, ordered L1-L2 first."""
    canonical = to_canonical(image)
    spacing = spacing_zyx(canonical)
    if max(spacing[0], spacing[1]) > MAX_SAGITTAL_SPACING_MM:
        raise InputError(
            source,
            f"disc levels are found on a sagittal or 3D scan (S-I and A-P spacing <= {MAX_SAGITTAL_SPACING_MM} mm; "
            f"this one has {spacing[0]:.2g} and {spacing[1]:.2g} mm): give the levels as points (--disc-levels) "
            "or a sagittal T2 of the same session (--sagittal)",
        )
    from ..inference import network_for  # the runtime: imported only where a network runs

    network = network_for("discs", device)
    grid, slices = sagittal_slices(canonical, network.spec.percentiles)
    discs = network.class_probabilities(slices).argmax(1).transpose(1, 2, 0) > 0  # (z, y, x)
    return discs_counted_from_sacrum(discs, grid, "disc network")


def discs_counted_from_sacrum(discs: np.ndarray, grid: sitk.Image, source: str) -> list[LevelPoint]:
    """Disc components of at least ``MIN_DISC_MM3`` (canonical mask), the lowest five labelled L5-S1 upwards."""
    components, count = ndimage.label(discs)
    if not count:
        return []
    pieces = []
    for label in range(1, count + 1):
        zyx = np.argwhere(components == label).astype(float)
        pieces.append(np.array([grid.TransformContinuousIndexToPhysicalPoint(p[::-1].tolist()) for p in zyx]))
    pieces.sort(key=lambda points: points[:, 2].mean())  # inferior first (LPS z grows superior)
    voxel_mm3 = float(np.prod(grid.GetSpacing()))
    found = [
        (points.mean(0), points) for points in _same_height_merged(pieces) if len(points) * voxel_mm3 >= MIN_DISC_MM3
    ]
    codes = range(25, 20, -1)  # L5-S1, L4-L5, ... L1-L2
    return sorted(
        (
            LevelPoint(code, tuple(centre), _thinnest_axis(points), source)
            for code, (centre, points) in zip(codes, found, strict=False)  # the lowest five discs
        ),
        key=lambda level: level.code,
    )


def _same_height_merged(pieces: list[np.ndarray]) -> list[np.ndarray]:
    """Pieces (sorted by height) less than half a disc spacing apart in S-I are one disc split in two
    (e.g. its left and right halves on the sagittal slices)."""
    merged = [pieces[0]]
    for points in pieces[1:]:
        if points[:, 2].mean() - merged[-1][:, 2].mean() < MIN_DISC_GAP_MM / 2:
            merged[-1] = np.concatenate([merged[-1], points])
        else:
            merged.append(points)
    return merged


def disc_points(classes: np.ndarray, grid: sitk.Image, source: str) -> list[LevelPoint]:
    """One point per disc class (1 = L1-L2 ... 5 = L5-S1) of a canonical class map (e.g. manual
    labels): its largest component."""
    voxel_mm3 = float(np.prod(grid.GetSpacing()))
    points = []
    for code in DISC_NAMES:
        components, count = ndimage.label(classes == code - 20)
        if not count:
            continue
        sizes = np.bincount(components.ravel())[1:]
        if sizes.max() * voxel_mm3 < MIN_DISC_MM3:
            continue
        zyx = np.argwhere(components == 1 + int(sizes.argmax()))
        physical = np.array([grid.TransformContinuousIndexToPhysicalPoint(p[::-1].tolist()) for p in zyx.astype(float)])
        points.append(LevelPoint(code, tuple(physical.mean(0)), _thinnest_axis(physical), source))
    return points


def _thinnest_axis(points: np.ndarray) -> tuple[float, float, float]:
    """Unit normal of a disc: the principal axis of least spread, turned to point superior (+z in LPS)."""
    _, vectors = np.linalg.eigh(np.cov((points - points.mean(0)).T))
    normal = vectors[:, 0]
    return tuple(float(v) for v in (normal if normal[2] >= 0 else -normal))


def level_problems(levels: list[LevelPoint]) -> dict[int, str]:
    """Levels that cannot be trusted, by code: a disc not below the one above it, or a gap no lumbar
    spine has (a cervical or thoracic scan read as lumbar). Both discs of a bad pair are marked."""
    ordered = sorted(levels, key=lambda level: level.code)
    problems: dict[int, str] = {}
    for upper, lower in zip(ordered, ordered[1:], strict=False):
        steps = lower.code - upper.code
        gap = float(np.linalg.norm(np.subtract(upper.point, lower.point))) / steps
        if lower.point[2] >= upper.point[2]:
            problem = f"{lower.name} does not lie below {upper.name}: the levels are out of order"
        elif not MIN_DISC_GAP_MM <= gap <= MAX_DISC_GAP_MM:
            expected = f"{MIN_DISC_GAP_MM:.0f}-{MAX_DISC_GAP_MM:.0f} mm"
            problem = f"{upper.name} to {lower.name}: {gap:.0f} mm per level, not a lumbar spine ({expected})"
        else:
            continue
        problems.setdefault(upper.code, problem)
        problems.setdefault(lower.code, problem)
    return problems


def with_normals(levels: list[LevelPoint]) -> list[LevelPoint]:
    """Levels without a normal get the direction between their neighbouring levels (the local spine axis)."""
    ordered = sorted(levels, key=lambda level: level.code)
    result = []
    for i, level in enumerate(ordered):
        if level.normal is not None or len(ordered) < 2:
            result.append(level)
            continue
        above, below = ordered[max(i - 1, 0)], ordered[min(i + 1, len(ordered) - 1)]
        axis = np.subtract(above.point, below.point)
        axis = axis / np.linalg.norm(axis)
        result.append(LevelPoint(level.code, level.point, tuple(float(v) for v in axis), level.source))
    return result


def read_level_points(path) -> list[LevelPoint]:
    """Level points from a Slicer markups file (.mrk.json / .json, labels 'L4-L5' ...) or a label image
    of SCT disc codes 21-25 (one blob per disc, any grid)."""
    path = Path(path)
    if path.name.endswith(".json"):
        return _points_from_markups(path)
    labels = read_image(path)
    values = sitk.GetArrayFromImage(labels)
    codes = sorted(int(v) for v in np.unique(values) if v in DISC_NAMES)
    if not codes:
        raise InputError(path, "no lumbar disc label: expected SCT disc codes 21 (L1-L2) ... 25 (L5-S1)")
    levels = []
    for code in codes:
        zyx = np.argwhere(values == code).mean(0)
        point = labels.TransformContinuousIndexToPhysicalPoint(zyx[::-1].tolist())
        levels.append(LevelPoint(code, tuple(point), None, f"labels {path.name}"))
    return levels


def _points_from_markups(path: Path) -> list[LevelPoint]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        markups = document["markups"]
    except (ValueError, KeyError, TypeError) as error:
        raise InputError(path, f"not a Slicer markups file ({error})") from error
    levels = []
    for markup in markups:
        flip = np.array([-1.0, -1.0, 1.0]) if markup.get("coordinateSystem", "LPS") == "RAS" else np.ones(3)
        for control in markup.get("controlPoints", []):
            name = str(control.get("label", "")).strip().upper().replace("/", "-")
            if name not in CODES_BY_NAME:
                raise InputError(path, f"point label '{control.get('label')}' is not a lumbar level (L1-L2 ... L5-S1)")
            point = tuple(float(v) for v in np.asarray(control["position"], float) * flip)
            levels.append(LevelPoint(CODES_BY_NAME[name], point, _markup_normal(control, flip), f"points {path.name}"))
    if not levels:
        raise InputError(path, "no level point in the markups file")
    if len({level.code for level in levels}) != len(levels):
        raise InputError(path, "a level is placed more than once")
    return levels


def levels_from_records(records: list[dict]) -> tuple[list[LevelPoint], dict[int, str]]:
    """Levels and their problems back from the sidecar records (``stenosis.run``)."""
    levels, problems = [], {}
    for record in records:
        code = CODES_BY_NAME[record["level"]]
        normal = tuple(record["normal_lps"]) if record.get("normal_lps") else None
        levels.append(LevelPoint(code, tuple(record["point_lps_mm"]), normal, record["source"]))
        if record.get("problem"):
            problems[code] = record["problem"]
    return levels, problems


def _markup_normal(control: dict, flip: np.ndarray) -> tuple[float, float, float] | None:
    """The plane normal SpineAI stores as the third column of a point's orientation; Slicer's default
    orientation (third column along S-I) means no normal was given."""
    orientation = control.get("orientation")
    if orientation is None or len(orientation) != 9:
        return None
    normal = np.asarray(orientation, float).reshape(3, 3)[:, 2] * flip
    if np.allclose(np.abs(normal), (0.0, 0.0, 1.0)) or not np.isfinite(normal).all():
        return None
    normal /= np.linalg.norm(normal)
    return tuple(float(v) for v in (normal if normal[2] >= 0 else -normal))


def level_markups(levels: list[LevelPoint]) -> dict:
    """A Slicer markups point list (LPS) of the levels, each disc normal stored in its orientation."""
    points = []
    for level in sorted(levels, key=lambda item: item.code):
        normal = np.array(level.normal if level.normal is not None else (0.0, 0.0, 1.0))
        v = np.array([0.0, 1.0, 0.0]) - normal[1] * normal
        v /= np.linalg.norm(v)
        frame = np.column_stack([np.cross(v, normal), v, normal])
        points.append({
            "label": level.name,
            "description": level.source,
            "position": [round(float(x), 4) for x in level.point],
            "orientation": [round(float(x), 6) for x in frame.flatten()],
        })  # fmt: skip
    schema = "https://raw.githubusercontent.com/slicer/slicer/master/Modules/Loadable/Markups/Resources/Schema/markups-schema-v1.0.3.json#"
    return {"@schema": schema, "markups": [{"type": "Fiducial", "coordinateSystem": "LPS", "controlPoints": points}]}


def disc_classes(canonical_codes: np.ndarray) -> np.ndarray:
    """Classes of the disc network from SCT disc codes: 1 for a lumbar disc (21 L1-L2 ... 25 L5-S1), else 0."""
    return ((canonical_codes >= 21) & (canonical_codes <= 25)).astype(np.int64)
