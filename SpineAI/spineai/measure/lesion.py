"""Spinal cord injury lesion metrics (SCT ``sct_analyze_lesion`` semantics) and clinical proposals.

Reference: ``docs/measurements.md`` sections 0 and 2, and ``docs/lesion.md``. Arrays
follow the engine convention (``spineai.orientation``): canonical ``a[z, y, x]`` with z = I->S,
y = P->A (dorsal = posterior = low y), x = R->L, and ``spacing = (pz, py, px)`` in mm. Slice
indices in the output (``epicentre_slice``, ``interpolated_midsagittal_slice``) are canonical
indices: z counted I->S (SCT's "Slice (I->S)"), x counted R->L (SCT's RPI sagittal index).

As SCT does:

* the lesion is multiplied by the cord (a lesion voxel outside the cord is not cord damage); the
  voxels dropped are counted in ``flags["lesion_voxels_outside_cord"]``;
* lesions are the 3D connected components of what remains, 18-connected (skimage
  ``label(connectivity=2)``); here they are numbered 1..n by decreasing volume;
* angles come from the cord centreline (``centerline.fit_centerline``), tangent
  t = (pz, dy/dz, dx/dz) in mm: angle_3d(z) = arccos(t.z / |t|), angle_sag(z) the same for the
  tangent projected on the sagittal plane, (pz, dy/dz, 0).

Each lesion row also holds the epicentre (slice of maximum axial damage ratio), an MSCC-style
cord AP ratio there and a BASIC grade *proposal* (see ``basic_proposed``). A final row labelled
"total" summarises all lesions (see ``total_row``).

Differences from SCT: each lesion's interpolated midsagittal slice x_t is centred on its own S-I
centre of mass (SCT uses the largest lesion's for all lesions; the largest lesion's row and the
total row agree with SCT); lesions are numbered by decreasing volume (SCT: raster order).
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..orientation import canonical_array, spacing_zyx, to_canonical
from .centerline import fit_centerline

CORD_LABEL, LESION_LABEL = 1, 2  # label map of ``lesion_table``: the cord region is labels 1 or 2
CONNECTIVITY = ndimage.generate_binary_structure(3, 2)  # 18-connectivity = skimage connectivity=2
MIDSAGITTAL_HALF_RANGE = 2  # x_t averages the cord R-L centre over z_c - 2 .. z_c + 2 (SCT)
BASIC_WHOLE_SECTION = 0.95  # damage ratio at the epicentre from which the whole cross-section counts as lesion

TOTAL = "total"
LESION_COLUMNS = [
    "label",
    "n_lesions",
    "volume",
    "length",
    "width",
    "max_equivalent_diameter",
    "max_axial_damage_ratio",
    "interpolated_midsagittal_slice",
    "length_interpolated_midsagittal_slice",
    "width_interpolated_midsagittal_slice",
    "interpolated_dorsal_bridge_width",
    "interpolated_ventral_bridge_width",
    "interpolated_total_bridge_width",
    "dorsal_bridge_ratio",
    "ventral_bridge_ratio",
    "epicentre_slice",
    "epicentre_cord_ap_ratio",
    "BASIC_proposed",
]
COLUMN_UNITS = {
    "label": "",
    "n_lesions": "",
    "volume": "mm^3",
    "length": "mm",
    "width": "mm",
    "max_equivalent_diameter": "mm",
    "max_axial_damage_ratio": "",
    "interpolated_midsagittal_slice": "",
    "length_interpolated_midsagittal_slice": "mm",
    "width_interpolated_midsagittal_slice": "mm",
    "interpolated_dorsal_bridge_width": "mm",
    "interpolated_ventral_bridge_width": "mm",
    "interpolated_total_bridge_width": "mm",
    "dorsal_bridge_ratio": "%",
    "ventral_bridge_ratio": "%",
    "epicentre_slice": "",
    "epicentre_cord_ap_ratio": "%",
    "BASIC_proposed": "",
}
MIDSAGITTAL_COLUMNS = LESION_COLUMNS[7:15]  # x_t .. ventral_bridge_ratio: taken from the largest lesion in "total"
EPICENTRE_COLUMNS = ["epicentre_slice", "epicentre_cord_ap_ratio", "BASIC_proposed"]

BASIC_NONE, BASIC_LOW, BASIC_HIGH, BASIC_UNKNOWN = "0", "1-2", "3-4", "n/a"


# --- angles and per-slice profiles ------------------------------------------------------------


def cord_angles(cord: np.ndarray, spacing: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """(angle_3d, angle_sag) [rad] per axial slice z (NaN outside the cord's first..last slice).

    angle_3d = arccos(pz / |(pz, dy/dz, dx/dz)|), angle_sag = arccos(pz / |(pz, dy/dz)|), with the
    derivatives of the fitted centreline in mm per slice.
    """
    line = fit_centerline(cord, spacing)
    angle_3d, angle_sag = np.full(cord.shape[0], np.nan), np.full(cord.shape[0], np.nan)
    z = line.z.astype(int)
    angle_3d[z] = np.arccos(np.clip(line.pz / np.sqrt(line.pz**2 + line.dy_dz**2 + line.dx_dz**2), -1, 1))
    angle_sag[z] = np.arccos(np.clip(line.pz / np.hypot(line.pz, line.dy_dz), -1, 1))
    return angle_3d, angle_sag


def slice_areas(mask: np.ndarray) -> np.ndarray:
    """Voxel count per axial slice z."""
    return mask.sum(axis=(1, 2))


def first_last(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Index of the first and last true element of each row of a 2D bool array (rows must hold one)."""
    n = rows.shape[1]
    return np.argmax(rows, axis=1), n - 1 - np.argmax(rows[:, ::-1], axis=1)


# --- per-lesion metrics (``lesion``: one component, bool a[z, y, x]) --------------------------


def volume(lesion: np.ndarray, spacing) -> float:
    """volume [mm^3] = N_vox * pz * py * px (no angle correction)."""
    return float(lesion.sum() * np.prod(spacing))


def length(lesion: np.ndarray, pz: float, angle_3d: np.ndarray) -> float:
    """length [mm] = sum over the axial slices holding lesion of pz / cos(angle_3d(z))."""
    z = np.nonzero(slice_areas(lesion))[0]
    return float(np.sum(pz / np.cos(angle_3d[z])))


def width(lesion: np.ndarray, py: float, angle_sag: np.ndarray) -> float:
    """width [mm] = max_z (AP extent in voxels, last - first + 1) * py * cos(angle_sag(z)), all sagittal slices."""
    profile = lesion.any(axis=2)  # (z, y): lesion present in the row
    z = np.nonzero(profile.any(axis=1))[0]
    first, last = first_last(profile[z])
    return float(np.max((last - first + 1) * py * np.cos(angle_sag[z])))


def max_equivalent_diameter(lesion: np.ndarray, spacing, angle_3d: np.ndarray) -> float:
    """max_equivalent_diameter [mm] = 2 * sqrt(max_z(area(z) * cos(angle_3d(z))) / pi), area = N_vox(z) * py * px."""
    counts = slice_areas(lesion)
    z = np.nonzero(counts)[0]
    areas = counts[z] * spacing[1] * spacing[2] * np.cos(angle_3d[z])
    return float(2 * math.sqrt(areas.max() / math.pi))


def damage_ratios(lesion: np.ndarray, cord: np.ndarray) -> dict[int, float]:
    """{z: lesion area / cord area} for every axial slice holding lesion (raw voxel areas; Smith 2021)."""
    lesion_area, cord_area = slice_areas(lesion), slice_areas(cord)
    return {int(z): float(lesion_area[z] / cord_area[z]) for z in np.nonzero(lesion_area)[0]}


# --- interpolated midsagittal slice and tissue bridges ----------------------------------------


def midsagittal_position(lesion: np.ndarray, cord: np.ndarray) -> float:
    """x_t: mean of the cord's R-L centre of mass over slices z_c - 2 .. z_c + 2 (those holding cord).

    z_c = rounded S-I centre of mass of ``lesion``; NaN when none of these slices holds cord.
    """
    z_c = int(round(ndimage.center_of_mass(lesion)[0]))
    centres = [
        np.nonzero(cord[z])[1].mean()
        for z in range(max(z_c - MIDSAGITTAL_HALF_RANGE, 0), min(z_c + MIDSAGITTAL_HALF_RANGE + 1, cord.shape[0]))
        if cord[z].any()
    ]
    return float(np.mean(centres)) if centres else math.nan


def interpolation_slices(x_t: float) -> tuple[int, int, float]:
    """(floor(x_t), ceil(x_t), f): the sagittal slices around x_t and the weight f = x_t - floor(x_t) of the second."""
    return math.floor(x_t), math.ceil(x_t), x_t - math.floor(x_t)


def interpolated_sagittal(mask: np.ndarray, x_t: float) -> np.ndarray:
    """(z, y) plane at R-L position x_t: (1 - f) * mask[:, :, floor] + f * mask[:, :, ceil] (linear)."""
    x1, x2, f = interpolation_slices(x_t)
    return (1 - f) * mask[:, :, x1].astype(float) + f * mask[:, :, x2].astype(float)


def midsagittal_length(plane: np.ndarray, pz: float, angle_sag: np.ndarray) -> float:
    """length_interpolated_midsagittal_slice [mm] (automated IMLL).

    sum over z of mean(non-zero values of the interpolated row) * pz / cos(angle_sag(z)): the soft
    values weight each slice by how much of it the lesion fills at x_t.
    """
    total = 0.0
    for z in np.nonzero(plane.any(axis=1))[0]:
        row = plane[z]
        total += row[row > 0].mean() * pz / math.cos(angle_sag[z])
    return float(total)


def midsagittal_width(plane: np.ndarray, py: float, angle_sag: np.ndarray) -> float:
    """width_interpolated_midsagittal_slice [mm] = max_z sum(interpolated row) * py * cos(angle_sag(z)); 0 if absent."""
    z = np.nonzero(plane.any(axis=1))[0]
    return float(np.max(plane[z].sum(axis=1) * py * np.cos(angle_sag[z]))) if z.size else 0.0


def column_bridges(lesion_plane: np.ndarray, cord_plane: np.ndarray) -> dict[int, tuple[int, int]]:
    """{z: (dorsal, ventral)} bridges in voxels of one sagittal slice, for every z where it holds lesion.

    dorsal = first lesion y - first cord y, ventral = last cord y - last lesion y (y runs P->A, so
    "first" is the most posterior = dorsal), each clamped at >= 0 (Huber 2017).
    """
    z = np.nonzero(lesion_plane.any(axis=1))[0]
    lesion_first, lesion_last = first_last(lesion_plane[z])
    cord_first, cord_last = first_last(cord_plane[z])  # the lesion lies inside the cord: the cord row is not empty
    dorsal, ventral = np.maximum(lesion_first - cord_first, 0), np.maximum(cord_last - lesion_last, 0)
    return {int(k): (int(d), int(v)) for k, d, v in zip(z, dorsal, ventral, strict=True)}


def interpolated_bridges(
    lesion: np.ndarray, cord: np.ndarray, x_t: float, py: float, angle_sag: np.ndarray
) -> tuple[float, float]:
    """(interpolated_dorsal_bridge_width, interpolated_ventral_bridge_width) [mm].

    Per axial slice z where the lesion is in either sagittal slice around x_t: bridges of each
    slice (``column_bridges``; 0 in a slice where the lesion is absent at that z, as SCT does),
    interpolated with weight f, times py * cos(angle_sag(z)); then the minimum over z, separately
    for dorsal and ventral. NaN when the lesion is in neither slice.
    """
    x1, x2, f = interpolation_slices(x_t)
    first, second = (column_bridges(lesion[:, :, x], cord[:, :, x]) for x in (x1, x2))
    slices = sorted(set(first) | set(second))
    if not slices:
        return math.nan, math.nan
    dorsal, ventral = [], []
    for z in slices:
        scale = py * math.cos(angle_sag[z])
        b1, b2 = first.get(z, (0, 0)), second.get(z, (0, 0))
        dorsal.append(((1 - f) * b1[0] + f * b2[0]) * scale)
        ventral.append(((1 - f) * b1[1] + f * b2[1]) * scale)
    return float(min(dorsal)), float(min(ventral))


def bridge_ratios(dorsal: float, ventral: float) -> tuple[float, float, float]:
    """(total [mm], dorsal_bridge_ratio [%], ventral_bridge_ratio [%]).

    total = dorsal + ventral (each the minimum over its own slices, as SCT: not the minimum of the
    per-slice sums); ratio = part / total * 100, 0 when total = 0, NaN when the bridges are NaN.
    """
    total = dorsal + ventral
    if math.isnan(total):
        return math.nan, math.nan, math.nan
    if total == 0:
        return 0.0, 0.0, 0.0
    return total, dorsal / total * 100, ventral / total * 100


def midsagittal_metrics(lesion: np.ndarray, cord: np.ndarray, spacing, angle_sag: np.ndarray) -> dict:
    """The interpolated-midsagittal columns of one lesion, x_t from the lesion's own S-I centre z_c.

    (SCT takes z_c of the largest lesion for every lesion; the same for the largest lesion.)
    """
    pz, py, _ = spacing
    x_t = midsagittal_position(lesion, cord)
    if math.isnan(x_t):
        return dict.fromkeys(MIDSAGITTAL_COLUMNS, math.nan)
    plane = interpolated_sagittal(lesion, x_t)
    dorsal, ventral = interpolated_bridges(lesion, cord, x_t, py, angle_sag)
    total, dorsal_ratio, ventral_ratio = bridge_ratios(dorsal, ventral)
    values = [
        x_t,
        midsagittal_length(plane, pz, angle_sag),
        midsagittal_width(plane, py, angle_sag),
        dorsal,
        ventral,
        total,
        dorsal_ratio,
        ventral_ratio,
    ]
    return dict(zip(MIDSAGITTAL_COLUMNS, values, strict=True))


# --- epicentre: MSCC-style cord ratio and BASIC proposal --------------------------------------


def epicentre(ratios: dict[int, float], lesion: np.ndarray) -> int:
    """Slice of maximum axial damage ratio; on a tie (e.g. several slices fully damaged) the one nearest
    the lesion's S-I centre of mass, so that the epicentre sits in the middle of the worst segment."""
    best = max(ratios.values())
    z_c = ndimage.center_of_mass(lesion)[0]
    return min((z for z, r in ratios.items() if r >= best - 1e-12), key=lambda z: (abs(z - z_c), z))


def cord_ap_diameter(cord: np.ndarray, z: int, py: float, angle_sag: np.ndarray) -> float:
    """Cord AP diameter [mm] at slice z: AP extent of the cord (last - first + 1, all x) * py * cos(angle_sag(z))."""
    rows = np.nonzero(cord[z].any(axis=1))[0]
    return float((rows[-1] - rows[0] + 1) * py * math.cos(angle_sag[z]))


def nearest_healthy_slice(cord: np.ndarray, lesions: np.ndarray, z: int, step: int) -> int | None:
    """Nearest slice from z in direction ``step`` (+1 = above) that holds cord and no lesion at all."""
    has_cord, has_lesion = cord.any(axis=(1, 2)), lesions.any(axis=(1, 2))
    k = z + step
    while 0 <= k < cord.shape[0]:
        if has_cord[k] and not has_lesion[k]:
            return k
        k += step
    return None


def epicentre_cord_ap_ratio(
    cord: np.ndarray, lesions: np.ndarray, z_i: int, py: float, angle_sag: np.ndarray, notes: list, name: str
) -> float:
    """MSCC-style ratio [%] = (1 - D_i / ((D_a + D_b) / 2)) * 100 (Fehlings 1999, Miyanji 2007).

    D = ``cord_ap_diameter`` at the epicentre (i) and at the nearest slice above (a) / below (b) that
    holds cord and no lesion. NaN, with a note, when one side has no such slice (no one-sided fallback:
    a single reference would hide cord tapering).
    """
    above, below = (nearest_healthy_slice(cord, lesions, z_i, step) for step in (1, -1))
    missing = [side for side, z in (("above", above), ("below", below)) if z is None]
    if missing:
        notes.append(f"{name}: no lesion-free cord slice {' or '.join(missing)}; epicentre_cord_ap_ratio is NaN")
        return math.nan
    d_i, d_a, d_b = (cord_ap_diameter(cord, z, py, angle_sag) for z in (z_i, above, below))
    return float((1 - d_i / ((d_a + d_b) / 2)) * 100)


def basic_proposed(epicentre_damage_ratio: float | None) -> str:
    """BASIC grade (Talbott 2015) as far as a cord + lesion mask allow: a PROPOSAL, to be calibrated.

    "0": no lesion; "3-4": damage ratio at the epicentre >= 0.95 (whole axial cross-section; grade 4
    = grade 3 plus haemorrhage, which needs a haemorrhage mask we do not have); "1-2": any other
    lesion (1 = confined to grey matter, 2 = beyond it: not separable without a grey-matter mask);
    "n/a": no cord to judge by.
    """
    if epicentre_damage_ratio is None:
        return BASIC_NONE
    if math.isnan(epicentre_damage_ratio):
        return BASIC_UNKNOWN
    return BASIC_HIGH if epicentre_damage_ratio >= BASIC_WHOLE_SECTION else BASIC_LOW


# --- rows -------------------------------------------------------------------------------------


def lesion_row(label: int, lesion: np.ndarray, cord: np.ndarray, lesions: np.ndarray, spacing, angles, notes) -> dict:
    """All columns of one lesion; ``lesions`` = every lesion (for the lesion-free reference slices)."""
    pz, py, _ = spacing
    angle_3d, angle_sag = angles
    ratios = damage_ratios(lesion, cord)
    z_i = epicentre(ratios, lesion)
    name = f"lesion {label}"
    row = {
        "label": label,
        "n_lesions": 1,
        "volume": volume(lesion, spacing),
        "length": length(lesion, pz, angle_3d),
        "width": width(lesion, py, angle_sag),
        "max_equivalent_diameter": max_equivalent_diameter(lesion, spacing, angle_3d),
        "max_axial_damage_ratio": ratios[z_i],
    } | midsagittal_metrics(lesion, cord, spacing, angle_sag)
    if math.isnan(row["interpolated_dorsal_bridge_width"]):
        notes.append(f"{name} is not on the interpolated midsagittal slice: no midsagittal tissue bridges")
    row["epicentre_slice"] = z_i
    row["epicentre_cord_ap_ratio"] = epicentre_cord_ap_ratio(cord, lesions, z_i, py, angle_sag, notes, name)
    row["BASIC_proposed"] = basic_proposed(ratios[z_i])
    return row


def total_row(rows: list[dict], lesions: np.ndarray, pz: float, angle_3d: np.ndarray) -> dict:
    """The "total" row over all lesion rows (ordered by volume, largest first).

    volume: sum; length: angle-corrected length of the slices holding any lesion (union, so
    overlapping lesions count once); width, max_equivalent_diameter, max_axial_damage_ratio: max over
    lesions; midsagittal columns and bridges: those of the largest lesion (as the clinical
    midsagittal reading is of the main lesion); epicentre columns: those of the lesion with the
    highest damage ratio (the largest on a tie).
    """
    worst = max(rows, key=lambda row: row["max_axial_damage_ratio"])  # max keeps the first (largest) on a tie
    total = {
        "label": TOTAL,
        "n_lesions": len(rows),
        "volume": float(sum(row["volume"] for row in rows)),
        "length": length(lesions, pz, angle_3d),
    }
    total |= {key: max(row[key] for row in rows) for key in ("width", "max_equivalent_diameter")}
    total["max_axial_damage_ratio"] = worst["max_axial_damage_ratio"]
    total |= {key: rows[0][key] for key in MIDSAGITTAL_COLUMNS}
    total |= {key: worst[key] for key in EPICENTRE_COLUMNS}
    return total


def empty_total_row(cord_found: bool) -> dict:
    """Total row without lesion: sizes 0, undefined metrics NaN, BASIC "0" (no cord: all NaN, BASIC "n/a")."""
    row = dict.fromkeys(LESION_COLUMNS, math.nan) | {"label": TOTAL, "n_lesions": 0}
    if not cord_found:
        return row | {"BASIC_proposed": BASIC_UNKNOWN}
    zeros = ["volume", "length", "width", "max_equivalent_diameter", "max_axial_damage_ratio"]
    zeros += ["length_interpolated_midsagittal_slice", "width_interpolated_midsagittal_slice"]
    return row | dict.fromkeys(zeros, 0.0) | {"BASIC_proposed": basic_proposed(None)}


def components_by_volume(lesions: np.ndarray) -> list[np.ndarray]:
    """18-connected components of ``lesions``, largest first (equal sizes keep scipy's raster order)."""
    labels, n = ndimage.label(lesions, structure=CONNECTIVITY)
    sizes = np.bincount(labels.ravel(), minlength=n + 1)[1:]
    return [labels == k + 1 for k in np.argsort(-sizes, kind="stable")]


def lesion_metrics(
    cord: np.ndarray, lesion: np.ndarray, spacing: tuple[float, float, float]
) -> tuple[list[dict], dict]:
    """Lesion table of canonical masks a[z, y, x] (bool or 0/1) with ``spacing = (pz, py, px)`` mm.

    Returns (rows, flags). rows: one dict per lesion (keys ``LESION_COLUMNS``, label 1..n by
    decreasing volume) then the "total" row; without lesion or cord only the total row
    (``empty_total_row``). flags: cord_found, lesion_found (lesion inside the cord),
    lesion_voxels_outside_cord (dropped from every metric), n_lesions, notes (list of str).
    """
    cord, lesion = np.asarray(cord) > 0, np.asarray(lesion) > 0
    if cord.shape != lesion.shape or cord.ndim != 3:
        raise ValueError(f"cord and lesion must be 3D arrays of one shape, got {cord.shape} and {lesion.shape}")
    inside = lesion & cord
    outside = int(lesion.sum() - inside.sum())
    flags = {
        "cord_found": bool(cord.any()),
        "lesion_found": bool(inside.any()),
        "lesion_voxels_outside_cord": outside,
        "n_lesions": 0,
        "notes": [],
    }
    if outside:
        flags["notes"].append(f"{outside} lesion voxels lie outside the cord and were excluded")
    if not flags["cord_found"]:
        flags["notes"].append("empty cord mask: no lesion metric can be computed")
        return [empty_total_row(cord_found=False)], flags
    if not flags["lesion_found"]:
        flags["notes"].append("no lesion inside the cord")
        return [empty_total_row(cord_found=True)], flags
    angles = cord_angles(cord, spacing)
    rows = [
        lesion_row(k, component, cord, inside, spacing, angles, flags["notes"])
        for k, component in enumerate(components_by_volume(inside), start=1)
    ]
    flags["n_lesions"] = len(rows)
    flags["notes"].append(
        "BASIC_proposed is a proposal: grades 1 and 2 need a grey-matter mask, grade 4 a haemorrhage mask"
    )
    return rows + [total_row(rows, inside, spacing[0], angles[0])], flags


def lesion_table(label_map: sitk.Image) -> tuple[list[dict], dict]:
    """``lesion_metrics`` of a label map on any grid/orientation: 0 background, 1 cord, 2 lesion.

    The cord region is labels 1 or 2 (so the lesion lies inside it), the lesion label 2; other
    values count as background (noted in flags). The map is reoriented to canonical first.
    """
    canonical = to_canonical(label_map)
    array = canonical_array(canonical)
    rows, flags = lesion_metrics(
        np.isin(array, (CORD_LABEL, LESION_LABEL)), array == LESION_LABEL, spacing_zyx(canonical)
    )
    stray = int(np.count_nonzero((array != 0) & ~np.isin(array, (CORD_LABEL, LESION_LABEL))))
    if stray:
        flags["notes"].append(f"{stray} voxels with labels other than 0, 1, 2 were treated as background")
    return rows, flags
