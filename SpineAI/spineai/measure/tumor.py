"""Spinal tumour metrics (Gd-T1): size, extent, compartment and an enhancement-ratio proposal.

Reference: ``docs/measurements.md`` sections 0 and 3, and ``docs/tumor.md``. Arrays
follow the engine convention (``spineai.orientation``): canonical ``a[z, y, x]`` with z = I->S,
y = P->A, x = R->L, and ``spacing = (pz, py, px)`` in mm.

The tumour task's label map uses bit flags, because an intramedullary tumour overlaps the cord
and an extramedullary one does not: 0 background, 1 cord, 2 tumour outside the cord, 3 tumour
inside the cord; cord = labels 1 or 3, tumour = labels 2 or 3 (``tumor_table``).

* Tumours are the 3D connected components of the tumour mask, 18-connected (as the SCI lesions of
  ``lesion.py`` and SCT's ``sct_analyze_lesion``: blobs touching only at a corner stay apart),
  numbered 1..n by decreasing volume, then a "total" row (``total_row``).
* With a cord, lengths and diameters are corrected for the cord's tilt, as the lesion length and
  width are: angles from the fitted cord centreline (``slice_angles``), tangent
  t = (pz, dy/dz, dx/dz) in mm; angle_3d = arccos(pz / |t|), angle_sag = arccos(pz / |(pz, dy/dz)|),
  angle_cor = arccos(pz / |(pz, dx/dz)|). On slices beyond the cord's first..last slice (a tumour
  below the conus) the nearest cord slice's angles are used. Without a cord no correction is made.
* Compartment: only intramedullary vs outside the cord. The spec's intradural-extramedullary (IDEM)
  vs extradural split needs a thecal-sac mask, which this label map does not have.
* ``enhancement_ratio`` is a PROPOSAL (spec section 3), to be validated before clinical use.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.spatial import ConvexHull, QhullError

from ..orientation import canonical_array, spacing_zyx, to_canonical
from .centerline import fit_centerline
from .checks import check_same_grid
from .lesion import components_by_volume, first_last
from .levels import (
    REGIONS,
    check_levels,
    is_point_labels,
    label_centroids_mm,
    level_name,
    levels_from_discs,
    levels_from_labelled_mask,
    project_onto_centerline,
)

CORD_LABEL, EXTRAMEDULLARY_LABEL, INTRAMEDULLARY_LABEL = 1, 2, 3  # bit 1 = cord, bit 2 = tumour
CORD_VALUES, TUMOR_VALUES = (CORD_LABEL, INTRAMEDULLARY_LABEL), (EXTRAMEDULLARY_LABEL, INTRAMEDULLARY_LABEL)
INTRAMEDULLARY_MIN, OUTSIDE_MAX = 0.9, 0.1  # fraction_in_cord thresholds of the compartment
INTRAMEDULLARY, OUTSIDE, MIXED = "intramedullary", "outside the cord", "mixed"
NO_CORD, NO_TUMOR = "unknown (no cord)", "no tumour"
FIRST_LEVEL, LAST_LEVEL = REGIONS[0][1], REGIONS[-1][2]  # SCT codes C1 = 1 .. S1 = 25
BRUTE_FORCE_MAX_POINTS = 64  # Feret diameter: below this many corner points, all pairs are compared directly
PAIR_BLOCK = 1024  # rows per block of the pairwise distances (bounded memory)
VOXEL_CORNERS = np.array(list(itertools.product((0, 1), repeat=3)))  # corner k of voxel i lies at i + k - 1/2

TOTAL = "total"
TUMOR_COLUMNS = [
    "label",
    "n_components",
    "volume",
    "volume_ml",
    "craniocaudal_length",
    "max_ap_diameter",
    "max_rl_diameter",
    "max_3d_diameter",
    "fraction_in_cord",
    "compartment",
    "levels",
    "n_levels",
    "enhancement_ratio",
]
COLUMN_UNITS = {
    "label": "",
    "n_components": "",
    "volume": "mm^3",
    "volume_ml": "mL",
    "craniocaudal_length": "mm",
    "max_ap_diameter": "mm",
    "max_rl_diameter": "mm",
    "max_3d_diameter": "mm",
    "fraction_in_cord": "",
    "compartment": "",
    "levels": "",
    "n_levels": "",
    "enhancement_ratio": "",
}
MAX_COLUMNS = ["max_ap_diameter", "max_rl_diameter", "max_3d_diameter"]  # "total": max over the tumours


# --- angles -----------------------------------------------------------------------------------


def slice_angles(cord: np.ndarray, spacing) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(angle_3d, angle_sag, angle_cor) [rad] for every axial slice z of the grid.

    From the fitted cord centreline: angle_3d = arccos(pz / |(pz, dy/dz, dx/dz)|), angle_sag =
    arccos(pz / |(pz, dy/dz)|), angle_cor = arccos(pz / |(pz, dx/dz)|). Slices beyond the cord's
    first..last slice take the nearest cord slice's angles; all 0 when the cord is empty.
    """
    n = cord.shape[0]
    if not cord.any():
        return np.zeros(n), np.zeros(n), np.zeros(n)
    line = fit_centerline(cord, spacing)
    pz = line.pz
    angles = (
        np.arccos(np.clip(pz / np.sqrt(pz**2 + line.dy_dz**2 + line.dx_dz**2), -1, 1)),
        np.arccos(np.clip(pz / np.hypot(pz, line.dy_dz), -1, 1)),
        np.arccos(np.clip(pz / np.hypot(pz, line.dx_dz), -1, 1)),
    )
    z = np.arange(n, dtype=float)
    return tuple(np.interp(z, line.z, angle) for angle in angles)  # np.interp holds the end values


def tumor_slices(tumor: np.ndarray) -> np.ndarray:
    """Indices z of the axial slices holding tumour."""
    return np.nonzero(tumor.any(axis=(1, 2)))[0]


# --- per-tumour metrics (``tumour``: one component, or all of them for "total"; bool a[z, y, x]) --


def volume(tumor: np.ndarray, spacing) -> float:
    """volume [mm^3] = N_vox * pz * py * px (no angle correction); volume_ml = volume / 1000."""
    return float(tumor.sum() * np.prod(spacing))


def craniocaudal_length(tumor: np.ndarray, pz: float, angle_3d: np.ndarray) -> float:
    """craniocaudal_length [mm] = sum over the axial slices holding tumour of pz / cos(angle_3d(z)).

    With a cord this is the length along the cord centreline (as the lesion length); without one
    angle_3d = 0 and, a connected component spanning consecutive slices, it is (z_max - z_min + 1) * pz.
    For several tumours each slice counts once (gaps between tumours are not counted).
    """
    z = tumor_slices(tumor)
    return float(np.sum(pz / np.cos(angle_3d[z])))


def max_extent(tumor: np.ndarray, axis: int, size: float, angle: np.ndarray) -> float:
    """max over axial slices z of (last - first + 1 voxels along ``axis``, 1 = y, 2 = x) * size * cos(angle(z))."""
    profile = tumor.any(axis=3 - axis)  # (z, y) for axis 1, (z, x) for axis 2
    z = np.nonzero(profile.any(axis=1))[0]
    first, last = first_last(profile[z])
    return float(np.max((last - first + 1) * size * np.cos(angle[z])))


def max_ap_diameter(tumor: np.ndarray, py: float, angle_sag: np.ndarray) -> float:
    """max_ap_diameter [mm] = max_z (A-P extent in voxels, last - first + 1) * py * cos(angle_sag(z)).

    The extent over the whole axial slice, as the lesion width; cos(angle_sag) undoes the
    lengthening of an A-P section of a cord tilted in the sagittal plane (cord-aligned frame).
    """
    return max_extent(tumor, 1, py, angle_sag)


def max_rl_diameter(tumor: np.ndarray, px: float, angle_cor: np.ndarray) -> float:
    """max_rl_diameter [mm] = max_z (R-L extent in voxels, last - first + 1) * px * cos(angle_cor(z))."""
    return max_extent(tumor, 2, px, angle_cor)


def surface_corners(tumor: np.ndarray) -> np.ndarray:
    """(N, 3) distinct corner indices (z, y, x) of the tumour's surface voxels; corner k of voxel i has index i + k.

    Surface voxels: those with a face neighbour outside the tumour (within its bounding box). A
    corner of a voxel whose six face neighbours are all tumour cannot be a convex-hull vertex.
    """
    box = ndimage.find_objects(tumor.astype(np.uint8))[0]
    crop = tumor[box]
    surface = crop & ~ndimage.binary_erosion(crop)
    corners = np.zeros(tuple(n + 1 for n in crop.shape), dtype=bool)
    for k in VOXEL_CORNERS:
        corners[k[0] : k[0] + crop.shape[0], k[1] : k[1] + crop.shape[1], k[2] : k[2] + crop.shape[2]] |= surface
    return np.argwhere(corners) + [s.start for s in box]


def max_pairwise_distance(points: np.ndarray) -> float:
    """Largest distance between two rows of ``points`` (N, 3), compared pair by pair in blocks."""
    best = 0.0
    for start in range(0, len(points), PAIR_BLOCK):
        block = points[start : start + PAIR_BLOCK]
        squared = ((block[:, None, :] - points[None, start:, :]) ** 2).sum(axis=2)
        best = max(best, float(squared.max()))
    return math.sqrt(best)


def hull_vertices(points: np.ndarray) -> np.ndarray:
    """Rows of ``points`` that are vertices of their convex hull (all rows for small or degenerate sets)."""
    if len(points) <= BRUTE_FORCE_MAX_POINTS:
        return points
    try:
        return points[ConvexHull(points).vertices]
    except QhullError:  # flat or otherwise degenerate: compare all pairs
        return points


def max_3d_diameter(tumor: np.ndarray, spacing) -> float:
    """max_3d_diameter [mm]: maximum 3D Feret diameter of the voxelised tumour, voxels taken as boxes.

    = max distance between two voxel *corners* of the tumour, in mm (corner k of voxel i at
    (i + k - 1/2) * spacing, k in {0, 1}^3): the box of a x b x c voxels gives its full diagonal
    sqrt((a pz)^2 + (b py)^2 + (c px)^2), one voxel its diagonal. This matches the voxel extents
    (last - first + 1) of the other columns, so the Feret diameter is never below the uncorrected
    A-P, R-L or z extent (centre-to-centre distances would be about one voxel shorter). The farthest pair of a
    polytope lies on its vertices: corners of the surface voxels, then their convex hull
    (scipy ConvexHull), then all pairs of hull vertices. No angle correction (Feret is rotation-free).
    """
    points = surface_corners(tumor) * np.asarray(spacing, dtype=float)  # the -1/2 shift cancels in distances
    return max_pairwise_distance(hull_vertices(points))


def fraction_in_cord(tumor: np.ndarray, cord: np.ndarray) -> float:
    """fraction_in_cord = N_vox(tumour and cord) / N_vox(tumour); NaN when the cord is empty."""
    if not cord.any():
        return math.nan
    return float(np.count_nonzero(tumor & cord) / np.count_nonzero(tumor))


def compartment(fraction: float) -> str:
    """ "intramedullary" (fraction_in_cord >= 0.9), "outside the cord" (<= 0.1), else "mixed"; NaN: "unknown (no cord)".

    "outside the cord" covers both intradural-extramedullary (IDEM) and extradural tumours: telling
    them apart (spec section 3) needs a thecal-sac mask, which the tumour label map does not hold.
    """
    if math.isnan(fraction):
        return NO_CORD
    if fraction >= INTRAMEDULLARY_MIN:
        return INTRAMEDULLARY
    return OUTSIDE if fraction <= OUTSIDE_MAX else MIXED


def level_codes(tumor: np.ndarray, levels: np.ndarray | None) -> list[int]:
    """Sorted distinct vertebral level codes (> 0) of the slices holding tumour; [] without levels."""
    if levels is None:
        return []
    codes = levels[tumor_slices(tumor)]
    return sorted(int(code) for code in np.unique(codes[codes > 0]))


def levels_text(codes: list[int]) -> str:
    """Levels as runs of consecutive codes joined by ",": [3, 4, 5] -> "C3-C5", [4] -> "C4", [4, 6] -> "C4,C6".

    [3, 4, 7, 8] -> "C3-C4,C7-T1" (codes run on across regions, C7 = 7, T1 = 8); "" when empty.
    """
    runs: list[list[int]] = []
    for code in codes:
        if runs and code == runs[-1][1] + 1:
            runs[-1][1] = code
        else:
            runs.append([code, code])
    return ",".join(level_name(a) if a == b else f"{level_name(a)}-{level_name(b)}" for a, b in runs)


def normal_cord_mean(cord: np.ndarray, tumors: np.ndarray, image: np.ndarray | None) -> float:
    """Mean image intensity of the cord voxels outside every tumour; NaN without image or such voxels."""
    if image is None:
        return math.nan
    normal = cord & ~tumors
    return float(image[normal].mean()) if normal.any() else math.nan


def enhancement_ratio(tumor: np.ndarray, image: np.ndarray | None, reference: float) -> float:
    """enhancement_ratio = mean(post-Gd intensity in the tumour) / mean(in tumour-free cord) [PROPOSAL].

    ``reference`` = ``normal_cord_mean`` (the whole tumour-free cord of the scan, not a local
    ring). NaN without image, without tumour-free cord or when the reference is <= 0. A PROPOSAL of
    the spec: uncalibrated, sensitive to coil shading and to the scan's intensity scaling.
    """
    if image is None or not reference > 0:
        return math.nan
    return float(image[tumor].mean() / reference)


# --- rows -------------------------------------------------------------------------------------


def union_columns(label, n_components: int, tumor, cord, spacing, angles, levels, image, reference) -> dict:
    """The columns that are computed on the tumour mask itself, for one tumour or for the union of all."""
    pz = spacing[0]
    size = volume(tumor, spacing)
    fraction = fraction_in_cord(tumor, cord)
    codes = level_codes(tumor, levels)
    return {
        "label": label,
        "n_components": n_components,
        "volume": size,
        "volume_ml": size / 1000,
        "craniocaudal_length": craniocaudal_length(tumor, pz, angles[0]),
        "fraction_in_cord": fraction,
        "compartment": compartment(fraction),
        "levels": levels_text(codes),
        "n_levels": len(codes),
        "enhancement_ratio": enhancement_ratio(tumor, image, reference),
    }


def tumor_row(label: int, tumor, cord, spacing, angles, levels, image, reference) -> dict:
    """All columns of one tumour (a connected component)."""
    _, py, px = spacing
    _, angle_sag, angle_cor = angles
    row = union_columns(label, 1, tumor, cord, spacing, angles, levels, image, reference) | {
        "max_ap_diameter": max_ap_diameter(tumor, py, angle_sag),
        "max_rl_diameter": max_rl_diameter(tumor, px, angle_cor),
        "max_3d_diameter": max_3d_diameter(tumor, spacing),
    }
    return {key: row[key] for key in TUMOR_COLUMNS}


def total_row(rows: list[dict], tumors: np.ndarray, cord, spacing, angles, levels, image, reference) -> dict:
    """The "total" row: the union of all tumours, except the max-type columns.

    volume: sum (= volume of the union); craniocaudal_length: slices holding any tumour (each once);
    fraction_in_cord, compartment, enhancement_ratio: over all tumour voxels; levels: over the union;
    max_ap/rl/3d_diameter: max over the tumours (not the Feret diameter of the union).
    """
    total = union_columns(TOTAL, len(rows), tumors, cord, spacing, angles, levels, image, reference)
    total |= {key: max(row[key] for row in rows) for key in MAX_COLUMNS}
    return {key: total[key] for key in TUMOR_COLUMNS}


def empty_total_row() -> dict:
    """Total row without tumour: sizes 0, fraction_in_cord and enhancement_ratio NaN, compartment "no tumour"."""
    row = dict.fromkeys(TUMOR_COLUMNS, 0.0)
    return row | {
        "label": TOTAL,
        "n_components": 0,
        "fraction_in_cord": math.nan,
        "compartment": NO_TUMOR,
        "levels": "",
        "n_levels": 0,
        "enhancement_ratio": math.nan,
    }


def checked_levels(levels, n_slices: int, notes: list) -> np.ndarray | None:
    """Per-slice level codes as ints (codes outside C1..S1 = 1..25 set to 0 = unknown, with a note)."""
    if levels is None:
        return None
    codes = np.asarray(levels)
    if codes.shape != (n_slices,):
        raise ValueError(f"levels must hold one code per axial slice ({n_slices}), got shape {codes.shape}")
    codes = np.where(np.isfinite(codes), codes, 0).astype(np.int64)
    odd = (codes != 0) & ((codes < FIRST_LEVEL) | (codes > LAST_LEVEL))
    if odd.any():
        notes.append(f"{int(odd.sum())} slices hold level codes outside C1..S1 (1..25): treated as unknown")
    return np.where(odd, 0, codes)


def tumor_metrics(
    cord: np.ndarray,
    tumor: np.ndarray,
    spacing: tuple[float, float, float],
    image: np.ndarray | None = None,
    levels: np.ndarray | None = None,
) -> tuple[list[dict], dict]:
    """Tumour table of canonical masks a[z, y, x] (bool or 0/1) with ``spacing = (pz, py, px)`` mm.

    ``cord`` includes any intramedullary tumour (label-map bit 1); ``image``: the scan's canonical
    intensities (post-Gd T1) for ``enhancement_ratio``; ``levels``: per-slice vertebral level codes
    (length n_slices, 0 = unknown). Returns (rows, flags). rows: one dict per tumour (keys
    ``TUMOR_COLUMNS``, label 1..n by decreasing volume) then the "total" row; without tumour only
    ``empty_total_row``. flags: tumor_found, cord_found, n_components, notes (list of str).
    Never raises on empty masks; raises ``ValueError`` for arrays of the wrong shape.
    """
    cord, tumor = np.asarray(cord) > 0, np.asarray(tumor) > 0
    if cord.shape != tumor.shape or cord.ndim != 3:
        raise ValueError(f"cord and tumour must be 3D arrays of one shape, got {cord.shape} and {tumor.shape}")
    if image is not None:
        image = np.asarray(image, dtype=np.float64)
        if image.shape != cord.shape:
            raise ValueError(f"image shape {image.shape} differs from the masks' {cord.shape}")
    flags = {"tumor_found": bool(tumor.any()), "cord_found": bool(cord.any()), "n_components": 0, "notes": []}
    notes = flags["notes"]
    levels = checked_levels(levels, cord.shape[0], notes)
    if not flags["tumor_found"]:
        notes.append("no tumour")
        return [empty_total_row()], flags
    angles = slice_angles(cord, spacing)
    if flags["cord_found"]:
        notes.append(
            "craniocaudal_length is angle-corrected along the cord centreline (sum of pz / cos(angle_3d)); "
            "A-P / R-L diameters are multiplied by cos of the cord's sagittal / coronal angle"
        )
        cord_z = tumor_slices(cord)
        beyond = np.setdiff1d(tumor_slices(tumor), np.arange(cord_z[0], cord_z[-1] + 1))
        if beyond.size:
            notes.append(
                f"{beyond.size} tumour slices lie beyond the cord's ends: the nearest cord slice's angles used"
            )
        notes.append("compartment: intradural-extramedullary vs extradural needs a thecal-sac mask (not available)")
    else:
        notes.append(
            "no cord: compartment unknown; craniocaudal_length = (z_max - z_min + 1) * pz and "
            "diameters without angle correction"
        )
    if levels is not None:
        unknown = np.count_nonzero(levels[tumor_slices(tumor)] == 0)
        if unknown:
            notes.append(f"{unknown} tumour slices have no vertebral level")
    reference = normal_cord_mean(cord, tumor, image)
    if image is None:
        notes.append("no image: enhancement_ratio is NaN")
    elif math.isnan(reference):
        notes.append("no tumour-free cord voxel: enhancement_ratio is NaN")
    elif reference <= 0:
        notes.append("mean intensity of the tumour-free cord is <= 0: enhancement_ratio is NaN")
    else:
        notes.append("enhancement_ratio (tumour / tumour-free cord mean intensity) is a PROPOSAL, not validated")
    components = components_by_volume(tumor)
    rows = [
        tumor_row(k, component, cord, spacing, angles, levels, image, reference)
        for k, component in enumerate(components, start=1)
    ]
    flags["n_components"] = len(rows)
    return rows + [total_row(rows, tumor, cord, spacing, angles, levels, image, reference)], flags


# --- label maps (any orientation) -------------------------------------------------------------


def levels_per_slice(levels: sitk.Image, label_map: sitk.Image, cord: np.ndarray, spacing, notes: list):
    """Per-slice level codes (canonical z, 0 = unknown) of a labelled cord or disc points image; None if empty.

    As ``levels.slice_levels``, but for every slice of the grid (a tumour may extend beyond the
    cord) and with or without a cord: disc points are projected onto the cord centreline, or keep
    their own z when the cord is empty. Raises ``InputError`` for a level image off the label
    map's grid or with values that are not whole numbers >= 0.
    """
    if not np.any(sitk.GetArrayViewFromImage(levels) > 0):
        notes.append("the levels image holds no label: no vertebral level")
        return None
    check_levels(levels, label_map, "levels")
    labels = np.round(canonical_array(to_canonical(levels), np.float64)).astype(np.int64)
    slices = np.arange(labels.shape[0])
    if is_point_labels(labels):
        points = label_centroids_mm(labels, spacing)
        if cord.any():
            line = fit_centerline(cord, spacing)
            discs = {value: project_onto_centerline(point, line) for value, point in points.items()}
        else:
            discs = {value: float(point[0] / spacing[0]) for value, point in points.items()}
        by_slice = levels_from_discs(discs, slices, "levels")
    else:
        by_slice = levels_from_labelled_mask(labels, slices)
    return np.array([by_slice[int(z)] or 0 for z in slices], dtype=np.int64)


def tumor_table(
    label_map: sitk.Image, image: sitk.Image | None = None, levels: sitk.Image | None = None
) -> tuple[list[dict], dict]:
    """``tumor_metrics`` of a tumour label map on any grid/orientation (reoriented to canonical first).

    Labels: 0 background, 1 cord, 2 tumour outside the cord, 3 tumour inside the cord; other values
    count as background (noted in flags). ``image``: the post-Gd scan on the same grid;
    ``levels``: a labelled cord or disc points on the same grid (as ``spineai.measure.levels``).
    Raises ``InputError`` when ``image`` or ``levels`` is not on the label map's grid.
    """
    canonical = to_canonical(label_map)
    array = canonical_array(canonical)
    spacing = spacing_zyx(canonical)
    cord, tumor = np.isin(array, CORD_VALUES), np.isin(array, TUMOR_VALUES)
    notes = []
    intensities = None
    if image is not None:
        check_same_grid(image, label_map, "image", "the tumour label map")
        intensities = canonical_array(to_canonical(image), np.float64)
    codes = levels_per_slice(levels, label_map, cord, spacing, notes) if levels is not None else None
    rows, flags = tumor_metrics(cord, tumor, spacing, intensities, codes)
    stray = int(np.count_nonzero((array != 0) & ~np.isin(array, CORD_VALUES + TUMOR_VALUES)))
    if stray:
        notes.append(f"{stray} voxels with labels other than 0, 1, 2, 3 were treated as background")
    flags["notes"] += notes
    return rows, flags
