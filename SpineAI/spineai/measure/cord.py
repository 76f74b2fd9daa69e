"""Spinal cord morphometry per axial slice and per vertebral level (SCT ``sct_process_segmentation``).

Reference: ``docs/measurements.md`` sections 0-1 and ``docs/morphometry.md``. Every slice is an
axial slice of the canonical image (``spineai.orientation``: a[z, y, x] = I->S, P->A, R->L, SCT's
"RPI"), so "Slice (I->S)" is SCT's slice index. Per slice, as SCT does:

1. the slice is rejected (every metric NaN) when it is empty or holds more than one connected
   piece of cord (8-connected, mask > 1e-6);
2. angle correction: the slice is shrunk by cos(angle_AP) along R-L and cos(angle_RL) along P-A
   (bilinear), angles from the centreline tangent (``centerline.py``);
3. the result is scaled to a maximum of 1, cropped to its bounding box (> 0.5) plus 3 pixels and
   resampled to 0.1 mm isotropic pixels (bilinear); the area keeps the soft (partial-volume)
   values, the shape metrics use the pixels > 0.5.

Inside this module a 2D slice is held in SCT's layout ``p[x, y]`` (rows R->L, columns P->A), so
the formulas below read exactly like SCT's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull

from ..orientation import canonical_array, spacing_zyx, to_canonical
from .centerline import fit_centerline
from .checks import check_mask  # also public here: spineai.measure.cord.check_mask
from .levels import slice_levels

NEAR_ZERO = 1e-6  # SCT NEAR_ZERO_THRESHOLD: below this a value counts as empty
PAD = 3  # pixels kept around the cord's bounding box before upsampling
FINE_MM = 0.1  # isotropic pixel size of the upsampled slice
AP_BAND_MM = 3.0  # R-L width of the band over which diameter_AP is averaged

METRICS = [
    "area",
    "angle_AP",
    "angle_RL",
    "diameter_AP",
    "diameter_AP_ellipse",
    "diameter_RL",
    "eccentricity",
    "orientation",
    "solidity",
    "compression_ratio",
]
METRIC_UNITS = {
    "area": "mm^2",
    "angle_AP": "deg",
    "angle_RL": "deg",
    "diameter_AP": "mm",
    "diameter_AP_ellipse": "mm",
    "diameter_RL": "mm",
    "eccentricity": "",
    "orientation": "deg",
    "solidity": "",
    "compression_ratio": "",
}
SLICE = "Slice (I->S)"
LEVEL = "VertLevel"
LENGTH = "SUM(length)"
MORPHOMETRY_COLUMNS = [SLICE, LEVEL] + [f"{s}({m})" for m in METRICS for s in ("MEAN", "STD")] + [LENGTH]
COLUMN_UNITS = {SLICE: "", LEVEL: ""} | {f"{s}({m})": METRIC_UNITS[m] for m in METRICS for s in ("MEAN", "STD")}
COLUMN_UNITS[LENGTH] = "mm"


# --- one slice --------------------------------------------------------------------------------


def count_pieces(patch: np.ndarray) -> int:
    """Number of 8-connected pieces of ``patch > 1e-6`` (a slice with 0 or >1 is rejected)."""
    return ndimage.label(patch > NEAR_ZERO, structure=np.ones((3, 3)))[1]


def bounding_box(binary: np.ndarray, pad: int) -> tuple[slice, slice]:
    """Bounding box of the true pixels of ``binary``, widened by ``pad`` pixels and clipped to the array."""
    rows, cols = np.nonzero(binary)
    return (
        slice(max(rows.min() - pad, 0), min(rows.max() + pad + 1, binary.shape[0])),
        slice(max(cols.min() - pad, 0), min(cols.max() + pad + 1, binary.shape[1])),
    )


def angle_corrected(patch: np.ndarray, angle_ap_deg: float, angle_rl_deg: float) -> np.ndarray:
    """Shrink the slice to the plane perpendicular to the cord (SCT's affine angle correction).

    out[r, c] = patch[r / cos(angle_AP), c / cos(angle_RL)] (bilinear, scaling about pixel (0, 0) as
    SCT's skimage warp does), hence CSA_corrected ~= CSA_raw * cos(angle_AP) * cos(angle_RL).
    Only the part of the output around the cord is returned (it keeps a zero border).
    """
    scale = np.cos(np.radians([angle_ap_deg, angle_rl_deg]))
    box = bounding_box(patch > NEAR_ZERO, pad=2)
    start = np.floor([box[0].start * scale[0], box[1].start * scale[1]]).astype(int)
    stop = np.ceil([(box[0].stop - 1) * scale[0], (box[1].stop - 1) * scale[1]]).astype(int) + 1
    offset = start / scale - [box[0].start, box[1].start]
    return ndimage.affine_transform(
        patch[box].astype(np.float64), 1.0 / scale, offset=offset, output_shape=tuple(stop - start), order=1
    )


def upsample(patch: np.ndarray, pixel_mm: tuple[float, float], fine_mm: float = FINE_MM) -> np.ndarray:
    """Bilinear resampling to ``fine_mm`` isotropic pixels whose edges align with the patch's edges.

    Fine pixel i has its centre at (i + 0.5) * fine_mm from the patch edge, i.e. at patch index
    (i + 0.5) * fine_mm / pixel_mm - 0.5 (scipy ``zoom(grid_mode=True)``, but with exactly
    ``fine_mm`` pixels); the sum of the result times fine_mm**2 is the patch's area.
    """
    factors = np.asarray(pixel_mm, dtype=float) / fine_mm
    shape = tuple(int(n) for n in np.ceil(np.asarray(patch.shape) * factors - 1e-6))
    return ndimage.affine_transform(
        patch, 1.0 / factors, offset=0.5 / factors - 0.5, output_shape=shape, order=1, mode="grid-constant"
    )


@dataclass(frozen=True)
class Ellipse:
    """Equivalent ellipse of a binary region (same second moments), skimage ``regionprops`` conventions.

    ``centre`` in pixels (row, col); ``major``/``minor`` full axis lengths in pixels = 4*sqrt(eigenvalue)
    of the covariance of pixel coordinates; ``theta`` [rad] = 0.5*atan2(2*mu_rc, mu_rr - mu_cc),
    the angle from the row axis (R->L) towards the column axis (P->A) of the major axis.
    """

    centre: tuple[float, float]
    major: float
    minor: float
    theta: float


def equivalent_ellipse(binary: np.ndarray) -> Ellipse:
    """Ellipse with the second moments of the true pixels of ``binary`` (see ``Ellipse``)."""
    rows, cols = np.nonzero(binary)
    r0, c0 = rows.mean(), cols.mean()
    mu_rr, mu_cc, mu_rc = np.mean((rows - r0) ** 2), np.mean((cols - c0) ** 2), np.mean((rows - r0) * (cols - c0))
    half_sum, root = (mu_rr + mu_cc) / 2, math.hypot((mu_rr - mu_cc) / 2, mu_rc)
    major, minor = 4 * math.sqrt(half_sum + root), 4 * math.sqrt(max(half_sum - root, 0.0))
    return Ellipse((r0, c0), major, minor, 0.5 * math.atan2(2 * mu_rc, mu_rr - mu_cc))


def eccentricity(ellipse: Ellipse) -> float:
    """Eccentricity = sqrt(1 - (minor/major)^2) of the equivalent ellipse (0 = circle, -> 1 = flat)."""
    return math.sqrt(1 - (ellipse.minor / ellipse.major) ** 2) if ellipse.major > 0 else 0.0


def orientation_deg(ellipse: Ellipse) -> float:
    """orientation [deg, -90..90] = theta of the equivalent ellipse: angle of its long axis from R-L.

    Positive when the left end of the long axis lies anterior to its right end (SCT >= 7 sign).
    """
    return math.degrees(ellipse.theta)


def ellipse_diameters(ellipse: Ellipse, fine_mm: float = FINE_MM) -> tuple[float, float]:
    """(diameter_AP_ellipse, diameter_RL) [mm]: the ellipse axes, the one nearer R-L being diameter_RL.

    As SCT: if |orientation| (folded into 0..90 deg) < 45, AP = minor and RL = major axis, else swapped.
    """
    folded = abs(math.degrees(ellipse.theta)) % 180
    folded = 180 - folded if folded > 90 else folded
    ap, rl = (ellipse.minor, ellipse.major) if folded < 45 else (ellipse.major, ellipse.minor)
    return ap * fine_mm, rl * fine_mm


MIDPOINT_STEPS = ((-1, 0), (1, 0), (0, -1), (0, 1))  # a pixel's edge midpoints, in half pixels


def solidity(binary: np.ndarray) -> float:
    """Solidity = pixel count / pixel count of the convex hull image (SCT: skimage ``regionprops``).

    As skimage's ``convex_hull_image``, a pixel stands for the midpoints of its four edges,
    (r +- 0.5, c) and (r, c +- 0.5), not its corners; the hull image is every pixel whose centre
    lies in or on the hull of those points.
    """
    rows, cols = np.nonzero(binary & ~ndimage.binary_erosion(binary))  # the hull only needs the outline
    # Edge midpoints in half-pixel units (whole numbers), one key each: neighbours share midpoints, and
    # duplicates are dropped, as Qhull can stumble on repeated points.
    width = 2 * binary.shape[1] + 2
    keys = np.concatenate([(2 * rows + 1 + dr) * width + (2 * cols + 1 + dc) for dr, dc in MIDPOINT_STEPS])
    halves = np.unique(keys)
    midpoints = np.column_stack([halves // width - 1, halves % width - 1]) / 2.0
    facets = ConvexHull(midpoints).equations  # inside: normal . p + offset <= 0 for every facet
    return float(binary.sum() / hull_pixel_count(facets, binary.shape))


def hull_pixel_count(facets: np.ndarray, shape: tuple[int, int], tolerance: float = 1e-9) -> int:
    """Pixel centres (row, col) in or on the convex polygon ``a*row + b*col + d <= 0`` (every facet),
    counted row by row: a row's inside is one interval of columns, so the cost grows with rows and
    facets, not with pixels. A centre on an edge counts, as in skimage's ``convex_hull_image``
    (centres lie on half-integer edges exactly or at least ~1e-3 away, so ``tolerance`` decides
    only the first case)."""
    a, b, d = facets[:, 0], facets[:, 1], facets[:, 2]
    rows = np.arange(shape[0], dtype=float)[:, None]
    bound = (tolerance - (rows * a + d)) / np.where(np.abs(b) > 1e-12, b, np.nan)  # b*col <= tolerance - a*row - d
    upper = np.nanmin(np.where(b > 1e-12, bound, np.inf), axis=1)
    lower = np.nanmax(np.where(b < -1e-12, bound, -np.inf), axis=1)
    flat = np.abs(b) <= 1e-12  # facets along the rows: the whole row is in or out
    row_in = np.all((rows * a + d)[:, flat] <= tolerance, axis=1) if flat.any() else np.ones(shape[0], bool)
    first = np.maximum(np.ceil(lower - 1e-9), 0)
    last = np.minimum(np.floor(upper + 1e-9), shape[1] - 1)
    return int(np.where(row_in, np.maximum(last - first + 1, 0), 0).sum())


def rotate_about(soft: np.ndarray, centre: tuple[float, float], angle: float) -> np.ndarray:
    """Bilinear rotation of ``soft`` about ``centre`` (row, col): out(p) = soft(centre + R(angle)(p - centre)).

    R acts on (col, row) as SCT's ``_rotate_segmentation_by_angle``: with angle = -theta the
    ellipse axis at theta is brought onto the row (R-L) axis.
    """
    rows, cols = np.mgrid[0 : soft.shape[0], 0 : soft.shape[1]].astype(float)
    dr, dc = rows - centre[0], cols - centre[1]
    c, s = math.cos(angle), math.sin(angle)
    coords = [centre[0] + dc * s + dr * c, centre[1] + dc * c - dr * s]
    return ndimage.map_coordinates(soft, coords, order=1)


def diameter_ap(soft: np.ndarray, ellipse: Ellipse, fine_mm: float = FINE_MM, band_mm: float = AP_BAND_MM) -> float:
    """diameter_AP [mm]: mean A-P thickness of the cord over a ``band_mm`` wide R-L band through its centre.

    The slice is rotated about its centre of mass so that the ellipse axis nearest to R-L lies along
    R-L (theta folded into [-45, 45) deg; SCT rotates by theta unfolded, identical for |theta| < 45);
    then diameter_AP = mean over rows r with |r - r0| < band/2 of sum_c soft[r, c] * fine_mm,
    r0 = centre row of the rotated mask (> 0.5).
    """
    theta = (ellipse.theta + math.pi / 4) % (math.pi / 2) - math.pi / 4
    rotated = rotate_about(soft, ellipse.centre, -theta)
    rows = np.nonzero(rotated > 0.5)[0]
    if rows.size == 0:
        return math.nan
    band = np.abs(np.arange(rotated.shape[0]) - rows.mean()) < band_mm / fine_mm / 2
    return float(rotated[band].sum(axis=1).mean() * fine_mm)


def shape_metrics(soft: np.ndarray, fine_mm: float = FINE_MM) -> dict:
    """Shape metrics of one upsampled, angle-corrected slice (pixels ``fine_mm``, soft values in [0, 1]).

    area [mm^2] = sum(soft) * fine_mm^2 (partial volume kept); the others from the pixels > 0.5;
    compression_ratio = diameter_AP / diameter_RL (Horakova 2022).
    """
    binary = soft > 0.5
    ellipse = equivalent_ellipse(binary)
    ap_ellipse, rl = ellipse_diameters(ellipse, fine_mm)
    ap = diameter_ap(soft, ellipse, fine_mm)
    return {
        "area": float(soft.sum() * fine_mm**2),
        "diameter_AP": ap,
        "diameter_AP_ellipse": ap_ellipse,
        "diameter_RL": rl,
        "eccentricity": eccentricity(ellipse),
        "orientation": orientation_deg(ellipse),
        "solidity": solidity(binary),
        "compression_ratio": ap / rl if rl > 0 else math.nan,
    }


def slice_length(pz: float, angle_ap_deg: float, angle_rl_deg: float) -> float:
    """length [mm] of cord in one slice = pz / (cos(angle_AP) * cos(angle_RL)) (summed per level)."""
    return pz / (math.cos(math.radians(angle_ap_deg)) * math.cos(math.radians(angle_rl_deg)))


def slice_morphometry(
    patch: np.ndarray, pixel_mm: tuple[float, float], pz: float, angle_ap_deg: float, angle_rl_deg: float
):
    """All metrics of one slice ``patch[x, y]`` (rows R->L, cols P->A; ``pixel_mm = (px, py)``), or None if rejected."""
    if patch.max() < NEAR_ZERO or count_pieces(patch) != 1:
        return None
    corrected = angle_corrected(patch, angle_ap_deg, angle_rl_deg)
    corrected /= corrected.max()
    if not np.any(corrected > 0.5):
        return None
    soft = upsample(corrected[bounding_box(corrected > 0.5, PAD)], pixel_mm)
    if not np.any(soft > 0.5):
        return None
    metrics = shape_metrics(soft)
    metrics.update(angle_AP=angle_ap_deg, angle_RL=angle_rl_deg, length=slice_length(pz, angle_ap_deg, angle_rl_deg))
    return metrics


# --- whole cord -------------------------------------------------------------------------------


def slice_row(z: int, metrics: dict | None, level=None, with_level: bool = False) -> dict:
    """One CSV row: MEAN = the slice's value, STD = 0.0 (NaN for both when the slice is rejected)."""
    row = {SLICE: int(z)}
    if with_level:
        row[LEVEL] = level
    for name in METRICS:
        value = math.nan if metrics is None else float(metrics[name])
        row[f"MEAN({name})"] = value
        row[f"STD({name})"] = math.nan if metrics is None else 0.0
    row[LENGTH] = math.nan if metrics is None else float(metrics["length"])
    return row


def cord_morphometry(mask: sitk.Image, levels: sitk.Image | None = None, levels_source="levels") -> list[dict]:
    """Per-slice morphometry rows (keys from ``MORPHOMETRY_COLUMNS``) of a {0,1} cord mask in any orientation.

    One row per axial slice from the first to the last non-empty slice, I->S. ``levels`` (same grid):
    a cord mask labelled with vertebral levels, or disc point labels; then rows carry "VertLevel"
    (SCT codes, None where unknown). Raises ``InputError`` for an unusable mask or level image
    (``levels_source`` names the latter in the message).
    """
    check_mask(mask, "cord mask")
    canonical = to_canonical(mask)
    array = canonical_array(canonical)  # as stored: a float64 copy of the whole volume would be 8x a uint8 mask
    pz, py, px = spacing_zyx(canonical)
    centerline = fit_centerline(array, (pz, py, px))
    level_of = slice_levels(levels, mask, centerline, levels_source) if levels is not None else {}
    rows = []
    for z, angle_ap, angle_rl in zip(
        centerline.z.astype(int), centerline.angle_ap(), centerline.angle_rl(), strict=True
    ):
        metrics = slice_morphometry(array[z].T.astype(np.float64), (px, py), pz, float(angle_ap), float(angle_rl))
        rows.append(slice_row(z, metrics, level_of.get(int(z)), with_level=levels is not None))
    return rows


# --- aggregation ------------------------------------------------------------------------------


def aggregate(rows: list[dict]) -> dict:
    """One row over ``rows``: MEAN = mean of the slices' values (NaN slices weight 0), STD = population SD.

    "Slice (I->S)" becomes "first:last"; SUM(length) = sum of slice lengths (NaN slices skipped).
    """
    slices = [row[SLICE] for row in rows]
    out = {SLICE: f"{min(slices)}:{max(slices)}"}
    for name in METRICS:
        values = np.array([row[f"MEAN({name})"] for row in rows], dtype=float)
        values = values[np.isfinite(values)]
        out[f"MEAN({name})"] = float(values.mean()) if values.size else math.nan
        out[f"STD({name})"] = float(values.std()) if values.size else math.nan
    out[LENGTH] = float(np.nansum([row[LENGTH] for row in rows]))
    return out


def aggregate_per_level(rows: list[dict]) -> list[dict]:
    """One ``aggregate`` row per vertebral level, ascending level code; slices without a level are left out."""
    by_level: dict[int, list[dict]] = {}
    for row in rows:
        if row.get(LEVEL) is not None:
            by_level.setdefault(int(row[LEVEL]), []).append(row)
    result = []
    for level in sorted(by_level):
        aggregated = aggregate(by_level[level])
        result.append({SLICE: aggregated.pop(SLICE), LEVEL: level} | aggregated)
    return result
