"""SCI lesion metrics (sct_analyze_lesion semantics): known answers on analytic and voxel phantoms."""

import math

import numpy as np
import pytest
import SimpleITK as sitk
from phantoms import render

from spineai.measure.lesion import COLUMN_UNITS, LESION_COLUMNS, lesion_metrics, lesion_table

SPACING = (1.0, 0.5, 0.5)  # (pz, py, px) mm: thick axial slices, as on clinical axial T2
A_AP, A_RL = 4.0, 6.0  # cord semi-axes (mm)


def straight_phantom(lesion_slices=range(20, 36), b_ap=2.0, a_rl=3.0):
    """Straight elliptic cord along z and an elliptic-cylinder lesion on the same axis over ``lesion_slices``.

    Axis at x = 9.75 mm (between voxels 19 and 20: both sagittal slices around x_t are alike) and
    y = 9.9 mm (off the voxel grid's symmetry, whose correlated rounding errors would bias the areas).
    """
    shape = (60, 40, 40)

    def ellipse(b, a):
        return lambda z, y, x: ((y - 9.9) / b) ** 2 + ((x - 9.75) / a) ** 2 <= 1

    cord = render(ellipse(A_AP, A_RL), shape, SPACING)
    lesion = render(ellipse(b_ap, a_rl), shape, SPACING)
    in_slab = np.zeros(shape[0], dtype=bool)
    in_slab[list(lesion_slices)] = True
    return cord, lesion & in_slab[:, None, None]


def box_cord(shape=(40, 40, 36), y=(10, 29), x=(10, 25)):
    """Cord with a rectangular cross-section: rows y[0]..y[1] (P->A), columns x[0]..x[1] (R->L)."""
    cord = np.zeros(shape, dtype=bool)
    cord[:, y[0] : y[1] + 1, x[0] : x[1] + 1] = True
    return cord


def rows_by_label(rows):
    return {row["label"]: row for row in rows}


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return a == b


# --- columns ------------------------------------------------------------------------------------


def test_columns_have_units_and_a_stable_order():
    assert LESION_COLUMNS[:3] == ["label", "n_lesions", "volume"]
    assert set(COLUMN_UNITS) == set(LESION_COLUMNS)
    assert COLUMN_UNITS["volume"] == "mm^3" and COLUMN_UNITS["length"] == "mm"
    assert COLUMN_UNITS["dorsal_bridge_ratio"] == "%" and COLUMN_UNITS["max_axial_damage_ratio"] == ""
    rows, _ = lesion_metrics(*straight_phantom(), SPACING)
    assert all(list(row) == LESION_COLUMNS for row in rows)


# --- one lesion on a straight cord ---------------------------------------------------------------


def test_straight_cord_lesion_matches_its_analytic_size():
    cord, lesion = straight_phantom()
    rows, flags = lesion_metrics(cord, lesion, SPACING)
    assert flags == {
        "cord_found": True,
        "lesion_found": True,
        "lesion_voxels_outside_cord": 0,
        "n_lesions": 1,
        "notes": flags["notes"],
    }
    assert [row["label"] for row in rows] == [1, "total"]
    row = rows[0]
    assert row["volume"] == pytest.approx(math.pi * 2 * 3 * 16, rel=0.02)
    assert row["length"] == pytest.approx(16 * SPACING[0], abs=1e-9)  # 16 slices, no tilt: exact
    ap_rows = np.nonzero(lesion.any(axis=(0, 2)))[0]
    assert row["width"] == pytest.approx((ap_rows[-1] - ap_rows[0] + 1) * SPACING[1], abs=1e-9)
    assert row["width"] == pytest.approx(4.0, abs=SPACING[1])
    area = lesion[28].sum() * SPACING[1] * SPACING[2]
    assert row["max_equivalent_diameter"] == pytest.approx(2 * math.sqrt(area / math.pi), rel=1e-9)
    assert row["max_equivalent_diameter"] == pytest.approx(2 * math.sqrt(2 * 3), rel=0.02)
    assert row["max_axial_damage_ratio"] == pytest.approx(lesion[28].sum() / cord[28].sum(), rel=1e-9)
    assert row["max_axial_damage_ratio"] == pytest.approx(2 * 3 / (A_AP * A_RL), rel=0.03)
    assert 20 <= row["epicentre_slice"] <= 35
    # midsagittal: x_t = 19.5, both sagittal slices alike, so the interpolated lesion is the slice itself
    assert row["interpolated_midsagittal_slice"] == pytest.approx(19.5)
    assert row["length_interpolated_midsagittal_slice"] == pytest.approx(16.0)
    assert row["width_interpolated_midsagittal_slice"] == pytest.approx(row["width"])
    # the lesion sits in the middle of the cord: equal bridges, cord AP minus lesion AP
    cord_ap = np.nonzero(cord[28, :, 19])[0]
    lesion_ap = np.nonzero(lesion[28, :, 19])[0]
    assert row["interpolated_dorsal_bridge_width"] == pytest.approx((lesion_ap[0] - cord_ap[0]) * SPACING[1])
    assert row["interpolated_ventral_bridge_width"] == pytest.approx((cord_ap[-1] - lesion_ap[-1]) * SPACING[1])
    total_bridge = (lesion_ap[0] - cord_ap[0] + cord_ap[-1] - lesion_ap[-1]) * SPACING[1]
    assert row["interpolated_total_bridge_width"] == pytest.approx(total_bridge)
    assert row["dorsal_bridge_ratio"] == pytest.approx((lesion_ap[0] - cord_ap[0]) * SPACING[1] / total_bridge * 100)
    # the cord keeps its diameter through the lesion: no MSCC-style narrowing
    assert row["epicentre_cord_ap_ratio"] == pytest.approx(0.0, abs=1e-9)
    assert row["BASIC_proposed"] == "1-2"
    total = rows[1]
    for key in ("volume", "length", "width", "max_equivalent_diameter", "interpolated_total_bridge_width"):
        assert total[key] == pytest.approx(row[key])
    assert total["n_lesions"] == 1


def test_tilted_cord_length_is_the_length_along_the_cord():
    tilt = math.radians(25)  # sagittal tilt: the cord runs anteriorly as it goes up
    along, across = np.array([math.cos(tilt), math.sin(tilt)]), np.array([-math.sin(tilt), math.cos(tilt)])
    centre = np.array([40.0, 24.0])  # (z, y) mm of the lesion centre; x centre 8.1 mm
    half_length = 25.0  # the lesion: ellipsoid 50 mm long along the cord, 4 mm AP, 6 mm RL

    def coordinates(z, y, x):
        dz, dy = z - centre[0], y - centre[1]
        return dz * along[0] + dy * along[1], dz * across[0] + dy * across[1], x - 8.1

    def in_cord(z, y, x):
        _, ap, rl = coordinates(z, y, x)
        return (ap / A_AP) ** 2 + (rl / A_RL) ** 2 <= 1

    def in_lesion(z, y, x):
        s, ap, rl = coordinates(z, y, x)
        return (s / half_length) ** 2 + (ap / 2.0) ** 2 + (rl / 3.0) ** 2 <= 1

    shape = (80, 96, 32)
    cord, lesion = render(in_cord, shape, SPACING), render(in_lesion, shape, SPACING)
    assert not cord[:, [0, -1], :].any()  # the cord stays inside the grid
    rows, _ = lesion_metrics(cord, lesion, SPACING)
    row = rows[0]
    assert row["length"] == pytest.approx(2 * half_length, rel=0.05)
    assert row["volume"] == pytest.approx(4 / 3 * math.pi * half_length * 2 * 3, rel=0.03)
    straight_length = lesion.any(axis=(1, 2)).sum() * SPACING[0]  # without the angle correction: 10% short
    assert straight_length < 0.92 * 2 * half_length


# --- tissue bridges -----------------------------------------------------------------------------


def test_bridges_are_dorsal_posterior_interpolated_and_minimal():
    cord = box_cord()  # rows y 10..29, columns x 10..25: x_t = 17.5 between sagittal slices 17 and 18
    lesion = np.zeros_like(cord)
    dorsal_rim = {x: 3 for x in range(14, 22)} | {18: 5}
    ventral_rim = 5
    for x, rim in dorsal_rim.items():
        lesion[15:25, 10 + rim : 30 - ventral_rim, x] = True
    # dorsal rims at x_t: (3 + 5) / 2 = 4 voxels, except in axial slice 20 where they are 2 and 4 voxels
    lesion[20, 10 + 2 : 10 + 3, 17] = True
    lesion[20, 10 + 4 : 10 + 5, 18] = True
    lesion[22, 30 - ventral_rim : 30 - 2, 17:19] = True  # axial slice 22: ventral rim 2 voxels
    rows, _ = lesion_metrics(cord, lesion, SPACING)
    row = rows[0]
    py = SPACING[1]
    assert row["interpolated_midsagittal_slice"] == pytest.approx(17.5)
    assert row["interpolated_dorsal_bridge_width"] == pytest.approx(3 * py)  # min over slices, at z 20
    assert row["interpolated_ventral_bridge_width"] == pytest.approx(2 * py)  # at z 22
    # total = sum of each side's own minimum (SCT), not the thinnest dorsal + ventral of one slice (6 voxels)
    assert row["interpolated_total_bridge_width"] == pytest.approx(5 * py)
    assert row["dorsal_bridge_ratio"] == pytest.approx(60.0) and row["ventral_bridge_ratio"] == pytest.approx(40.0)
    assert rows[-1]["interpolated_dorsal_bridge_width"] == row["interpolated_dorsal_bridge_width"]


def test_lesion_off_the_midsagittal_slice_has_no_bridges():
    cord = box_cord()
    lesion = np.zeros_like(cord)
    lesion[15:20, 14:20, 11:13] = True  # far right, away from x_t = 17.5
    rows, flags = lesion_metrics(cord, lesion, SPACING)
    row = rows[0]
    assert math.isnan(row["interpolated_dorsal_bridge_width"]) and math.isnan(row["dorsal_bridge_ratio"])
    assert row["length_interpolated_midsagittal_slice"] == 0 and row["width_interpolated_midsagittal_slice"] == 0
    assert row["length"] == pytest.approx(5.0)
    assert any("midsagittal" in note for note in flags["notes"])


# --- several lesions, lesion outside the cord, empty inputs ---------------------------------------


def test_two_lesions_give_two_rows_ordered_by_volume_and_a_total():
    cord = box_cord()
    lesion = np.zeros_like(cord)
    lesion[3:6, 18:22, 16:20] = True  # small, first in raster order
    lesion[15:25, 15:25, 13:23] = True  # large
    rows, flags = lesion_metrics(cord, lesion, SPACING)
    assert [row["label"] for row in rows] == [1, 2, "total"]
    large, small, total = rows
    voxel = np.prod(SPACING)
    assert large["volume"] == pytest.approx(10 * 10 * 10 * voxel)
    assert small["volume"] == pytest.approx(3 * 4 * 4 * voxel)
    assert large["length"] == pytest.approx(10.0) and small["length"] == pytest.approx(3.0)
    assert total["volume"] == pytest.approx(large["volume"] + small["volume"])
    assert total["length"] == pytest.approx(13.0)
    assert total["n_lesions"] == 2 and flags["n_lesions"] == 2
    assert total["width"] == large["width"] == pytest.approx(10 * SPACING[1])
    assert total["max_axial_damage_ratio"] == pytest.approx(100 / (20 * 16))
    assert total["interpolated_dorsal_bridge_width"] == large["interpolated_dorsal_bridge_width"]
    assert total["epicentre_slice"] == large["epicentre_slice"]


def test_lesion_voxels_outside_the_cord_are_counted_and_excluded():
    cord = box_cord()
    lesion = np.zeros_like(cord)
    lesion[15:25, 20:35, 14:22] = True  # rows 30..34 lie anterior to the cord
    outside = int((lesion & ~cord).sum())
    rows, flags = lesion_metrics(cord, lesion, SPACING)
    reference, reference_flags = lesion_metrics(cord, lesion & cord, SPACING)
    assert outside == 10 * 5 * 8
    assert flags["lesion_voxels_outside_cord"] == outside and reference_flags["lesion_voxels_outside_cord"] == 0
    assert any("outside the cord" in note for note in flags["notes"])
    assert all(same(row[key], ref[key]) for row, ref in zip(rows, reference, strict=True) for key in LESION_COLUMNS)
    assert rows[0]["interpolated_ventral_bridge_width"] == 0


def test_no_lesion_gives_a_zero_total_row():
    rows, flags = lesion_metrics(box_cord(), np.zeros((40, 40, 36)), SPACING)
    assert flags["lesion_found"] is False and flags["cord_found"] is True and flags["n_lesions"] == 0
    assert len(rows) == 1 and list(rows[0]) == LESION_COLUMNS
    total = rows[0]
    assert total["label"] == "total" and total["n_lesions"] == 0
    assert total["volume"] == 0 and total["length"] == 0 and total["max_axial_damage_ratio"] == 0
    assert math.isnan(total["interpolated_dorsal_bridge_width"])
    assert total["BASIC_proposed"] == "0"


def test_empty_cord_is_reported_not_raised():
    lesion = np.zeros((40, 40, 36), dtype=bool)
    lesion[10:12, 10:12, 10:12] = True
    rows, flags = lesion_metrics(np.zeros_like(lesion), lesion, SPACING)
    assert flags["cord_found"] is False and flags["lesion_found"] is False
    assert flags["lesion_voxels_outside_cord"] == 8
    assert len(rows) == 1 and rows[0]["label"] == "total" and math.isnan(rows[0]["volume"])
    rows, flags = lesion_metrics(np.zeros_like(lesion), np.zeros_like(lesion), SPACING)
    assert flags["cord_found"] is False and len(rows) == 1


# --- epicentre: MSCC-style ratio and BASIC proposal ----------------------------------------------


def test_epicentre_cord_ap_ratio_compares_with_the_nearest_lesion_free_slices():
    cord = box_cord()  # AP 20 voxels
    cord[18:22, 10:14, :] = False  # narrowed to AP 12 voxels over slices 18..21
    cord[18:22, 26:30, :] = False
    lesion = np.zeros_like(cord)
    lesion[18:22, 17:23, 15:21] = True
    row = lesion_metrics(cord, lesion, SPACING)[0][0]
    assert 18 <= row["epicentre_slice"] <= 21
    assert row["epicentre_cord_ap_ratio"] == pytest.approx((1 - 12 / 20) * 100)
    lesion[35:40, 17:23, 15:21] = True  # a second lesion up to the cord's top slice: no healthy slice above it
    rows, flags = lesion_metrics(cord, lesion, SPACING)
    top, narrowed = rows[0], rows[1]  # the top lesion is the larger (5 slices against 4)
    assert top["epicentre_slice"] >= 35 and math.isnan(top["epicentre_cord_ap_ratio"])
    assert narrowed["epicentre_cord_ap_ratio"] == pytest.approx(40.0)
    assert any("lesion 1: no lesion-free cord slice above" in note for note in flags["notes"])


def test_basic_proposal():
    cord = box_cord()
    whole = np.zeros_like(cord)
    whole[15:25, 15:25, 13:23] = True
    whole[18:21] = cord[18:21]  # the whole cross-section over slices 18..20
    row = lesion_metrics(cord, whole, SPACING)[0][0]
    assert row["max_axial_damage_ratio"] == 1.0 and row["epicentre_slice"] == 19
    assert row["BASIC_proposed"].startswith("3")
    central = np.zeros_like(cord)
    central[15:25, 17:23, 15:21] = True
    assert lesion_metrics(cord, central, SPACING)[0][0]["BASIC_proposed"] == "1-2"
    assert lesion_metrics(cord, np.zeros_like(cord), SPACING)[0][0]["BASIC_proposed"] == "0"


# --- label maps in any orientation ----------------------------------------------------------------


def test_label_map_in_any_orientation_gives_the_same_rows():
    cord, lesion = straight_phantom()
    second = np.zeros_like(lesion)
    second[45:48, 18:22, 16:20] = True
    labels = np.where(lesion | (second & cord), 2, np.where(cord, 1, 0)).astype(np.uint8)
    image = sitk.GetImageFromArray(labels)  # canonical a[z, y, x] = LAS
    image.SetSpacing(SPACING[::-1])
    image.SetDirection((1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0))
    rows, flags = lesion_table(image)
    reference, _ = lesion_metrics(cord, lesion | (second & cord), SPACING)
    assert len(rows) == 3 and flags["lesion_voxels_outside_cord"] == 0
    for orientation in ("PSR", "RPI", "SLA"):
        turned = sitk.DICOMOrient(image, orientation)
        assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(turned.GetDirection()) == orientation
        turned_rows, _ = lesion_table(turned)
        for row, expected in zip(turned_rows, reference, strict=True):
            assert all(same(row[key], expected[key]) for key in LESION_COLUMNS), orientation
