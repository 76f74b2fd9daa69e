"""Vertebral level of each axial slice, from a labelled cord mask or from disc point labels.

Codes follow SCT (``types.py``): C1..C7 = 1..7, T1..T12 = 8..19, L1..L5 = 20..24, S1 = 25; a disc
label of value n marks the disc *superior* to vertebra n (3 = C2-C3, 21 = L1-L2, 25 = L5-S1).

* Labelled cord mask (every cord voxel carries its level, e.g. SCT's ``*_seg_labeled``): the
  level of a slice is round(mean of its non-zero labels), as SCT's ``get_vertebral_level_from_slice``.
* Disc points (one small blob per disc, e.g. SCT's ``labels``/``*_labeled_discs``): each disc is
  projected onto the fitted cord centreline; a slice between discs n (above) and m (below) belongs
  to vertebra n, or, when discs are missing (m > n + 1), to the vertebra obtained by splitting the
  gap into m - n equal parts. Beyond the outermost discs one mean vertebral height is labelled
  (vertebra n-1 above the top disc, m below the bottom one); with a single disc the two
  neighbouring vertebrae extend to the ends of the cord.

The label image must be on the mask's grid (checked); it is auto-detected as disc points when no
label value covers more than ``POINT_LABEL_MAX_VOXELS`` voxels.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

from ..errors import InputError
from ..orientation import canonical_array, spacing_zyx, to_canonical
from .centerline import Centerline
from .checks import check_same_grid

POINT_LABEL_MAX_VOXELS = 27  # a disc label is a point or a small blob (up to 3x3x3 voxels)
REGIONS = (("C", 1, 7), ("T", 8, 19), ("L", 20, 24), ("S", 25, 25))


def level_name(code: int) -> str:
    """SCT level code -> name: 1 -> 'C1', 8 -> 'T1', 20 -> 'L1', 25 -> 'S1'."""
    for letter, first, last in REGIONS:
        if first <= code <= last:
            return f"{letter}{code - first + 1}"
    raise ValueError(f"no vertebral level has code {code}")


def check_levels(levels: sitk.Image, mask: sitk.Image, source) -> None:
    """Raise ``InputError`` unless ``levels`` holds non-negative whole labels on the mask's grid."""
    check_same_grid(levels, mask, source, "the cord mask")
    values = sitk.GetArrayViewFromImage(levels)
    if not np.all(np.isfinite(values)) or np.any(values < 0) or np.any(values != np.round(values)):
        raise InputError(source, "level labels must be whole numbers >= 0 (SCT codes: C1=1 ... C7=7, T1=8 ...)")
    if not np.any(values > 0):
        raise InputError(source, "no level label: every voxel is 0")


def is_point_labels(labels: np.ndarray) -> bool:
    """True when every label value covers at most ``POINT_LABEL_MAX_VOXELS`` voxels (disc points)."""
    _, counts = np.unique(labels[labels > 0], return_counts=True)
    return counts.size > 0 and counts.max() <= POINT_LABEL_MAX_VOXELS


def levels_from_labelled_mask(labels: np.ndarray, slices: np.ndarray) -> dict[int, int | None]:
    """Slice z -> round(mean of the non-zero labels in labels[z]) (None when the slice has none)."""
    result = {}
    for z in slices:
        values = labels[int(z)][labels[int(z)] > 0]
        result[int(z)] = int(np.round(values.mean())) if values.size else None
    return result


def label_centroids_mm(labels: np.ndarray, spacing: tuple[float, float, float]) -> dict[int, np.ndarray]:
    """Label value -> centroid (z, y, x) in mm of its voxels (canonical grid)."""
    return {
        int(value): np.argwhere(labels == value).mean(axis=0) * np.asarray(spacing)
        for value in np.unique(labels[labels > 0])
    }


def project_onto_centerline(point_mm: np.ndarray, centerline: Centerline, samples_per_slice: int = 10) -> float:
    """Continuous slice position z of the centreline point nearest to ``point_mm`` (z, y, x in mm).

    A point beyond either end of the cord keeps its own z (it lies outside the measured slices).
    """
    z = np.linspace(centerline.z[0], centerline.z[-1], (len(centerline.z) - 1) * samples_per_slice + 1)
    nearest = int(np.argmin(np.linalg.norm(centerline.points_mm(z) - point_mm, axis=1)))
    own_z = point_mm[0] / centerline.pz
    if nearest in (0, len(z) - 1) and not centerline.z[0] <= own_z <= centerline.z[-1]:
        return float(own_z)
    return float(z[nearest])


def level_between_discs(z: float, upper: tuple[int, float], lower: tuple[int, float]) -> int:
    """Vertebra of slice z (lower_z < z <= upper_z) between discs (value, z): split into equal parts.

    level = n + floor((z_n - z) / (z_n - z_m) * (m - n)), n/m = upper/lower disc values.
    """
    (n, z_n), (m, z_m) = upper, lower
    return min(n + math.floor((z_n - z) / (z_n - z_m) * (m - n)), m - 1)


def levels_from_discs(discs: dict[int, float], slices: np.ndarray, source="levels") -> dict[int, int | None]:
    """Slice z -> vertebral level from discs {value: z position in slices} (see module docstring)."""
    order = sorted(discs.items())  # superior (small value, large z) first
    if any(upper[1] <= lower[1] for upper, lower in zip(order[:-1], order[1:], strict=True)):
        raise InputError(source, "disc labels are not in anatomical order (a larger value must lie lower)")
    top, bottom = order[0], order[-1]
    height = (top[1] - bottom[1]) / (bottom[0] - top[0]) if len(order) > 1 else math.inf
    result = {}
    for z in (int(s) for s in slices):
        level = None
        if z > top[1]:
            level = top[0] - 1 if z <= top[1] + height and top[0] > 1 else None
        elif z <= bottom[1]:
            level = bottom[0] if z > bottom[1] - height else None
        else:
            upper, lower = next((u, lo) for u, lo in zip(order[:-1], order[1:], strict=True) if lo[1] < z <= u[1])
            level = level_between_discs(z, upper, lower)
        result[z] = level
    return result


def slice_levels(
    levels: sitk.Image, mask: sitk.Image, centerline: Centerline, source="levels"
) -> dict[int, int | None]:
    """Slice z (canonical, I->S) -> vertebral level for every slice of ``centerline``."""
    check_levels(levels, mask, source)
    canonical = to_canonical(levels)
    labels = np.round(canonical_array(canonical, np.float64)).astype(np.int64)
    if not is_point_labels(labels):
        return levels_from_labelled_mask(labels, centerline.z)
    points = label_centroids_mm(labels, spacing_zyx(canonical))
    discs = {value: project_onto_centerline(point, centerline) for value, point in points.items()}
    return levels_from_discs(discs, centerline.z, source)
