"""Spinal tumour metrics: known answers on box, ellipsoid and tilted-cylinder phantoms."""

import math

import numpy as np
import pytest
import SimpleITK as sitk
from phantoms import render
from scipy.spatial.distance import pdist

from spineai.errors import InputError
from spineai.measure.tumor import (
    COLUMN_UNITS,
    TUMOR_COLUMNS,
    levels_text,
    max_3d_diameter,
    tumor_metrics,
    tumor_table,
)

SPACING = (1.5, 0.5, 0.75)  # (pz, py, px) mm: three different sizes, so that a swapped axis shows
SHAPE = (40, 40, 36)
LAS = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)


def box(shape=SHAPE, z=(0, 39), y=(10, 29), x=(8, 27)):
    """Bool array, true over the index ranges z[0]..z[1], y[0]..y[1], x[0]..x[1] (inclusive)."""
    mask = np.zeros(shape, dtype=bool)
    mask[z[0] : z[1] + 1, y[0] : y[1] + 1, x[0] : x[1] + 1] = True
    return mask


def corner_diameter(mask, spacing):
    """Brute force: max distance between the 8 corners of every voxel of ``mask`` (all pairs, scipy pdist)."""
    offsets = np.array([(a, b, c) for a in (-0.5, 0.5) for b in (-0.5, 0.5) for c in (-0.5, 0.5)])
    corners = np.unique((np.argwhere(mask)[:, None, :] + offsets[None]).reshape(-1, 3), axis=0)
    return float(pdist(corners * np.asarray(spacing)).max())


def label_image(array, spacing=SPACING):
    """Canonical (LAS) image of a[z, y, x]."""
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing[::-1])
    image.SetDirection(LAS)
    image.SetOrigin((12.0, -30.0, 40.0))
    return image


def same(a, b):
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b, rel=1e-9, abs=1e-12)
    return a == b


# --- columns -------------------------------------------------------------------------------------


def test_columns_have_units_and_a_stable_order():
    assert TUMOR_COLUMNS[:4] == ["label", "n_components", "volume", "volume_ml"]
    assert set(COLUMN_UNITS) == set(TUMOR_COLUMNS)
    assert COLUMN_UNITS["volume"] == "mm^3" and COLUMN_UNITS["volume_ml"] == "mL"
    assert all(COLUMN_UNITS[key] == "mm" for key in TUMOR_COLUMNS[4:8])
    rows, _ = tumor_metrics(box(), box(z=(10, 19), y=(14, 21), x=(12, 17)), SPACING)
    assert all(list(row) == TUMOR_COLUMNS for row in rows)


# --- sizes -----------------------------------------------------------------------------------------


def test_box_tumor_in_a_straight_cord():
    cord, tumor = box(), box(z=(10, 19), y=(14, 21), x=(12, 17))  # 10 x 8 x 6 voxels, inside the cord
    rows, flags = tumor_metrics(cord, tumor, SPACING)
    assert flags == {"tumor_found": True, "cord_found": True, "n_components": 1, "notes": flags["notes"]}
    assert any("angle-corrected" in note for note in flags["notes"])
    assert [row["label"] for row in rows] == [1, "total"]
    row = rows[0]
    voxel = np.prod(SPACING)
    assert row["volume"] == pytest.approx(480 * voxel) and row["volume_ml"] == pytest.approx(480 * voxel / 1000)
    assert row["craniocaudal_length"] == pytest.approx(10 * 1.5)
    assert row["max_ap_diameter"] == pytest.approx(8 * 0.5)
    assert row["max_rl_diameter"] == pytest.approx(6 * 0.75)
    # Feret convention: voxels as boxes, so the full diagonal of the box (corner to corner)
    assert row["max_3d_diameter"] == pytest.approx(math.sqrt(15.0**2 + 4.0**2 + 4.5**2))
    assert row["fraction_in_cord"] == 1.0 and row["compartment"] == "intramedullary"
    assert row["levels"] == "" and row["n_levels"] == 0 and math.isnan(row["enhancement_ratio"])
    assert all(same(rows[1][key], row[key]) for key in TUMOR_COLUMNS[2:])
    assert rows[1]["n_components"] == 1


def test_ellipsoid_tumor_matches_its_analytic_size():
    c, semi = np.array([30.0, 10.1, 13.2]), np.array([12.0, 3.0, 4.5])  # centre, semi-axes (z, y, x) mm

    def ellipsoid(z, y, x):
        return ((z - c[0]) / semi[0]) ** 2 + ((y - c[1]) / semi[1]) ** 2 + ((x - c[2]) / semi[2]) ** 2 <= 1

    tumor = render(ellipsoid, SHAPE, SPACING)
    row = tumor_metrics(box(), tumor, SPACING)[0][0]
    assert row["volume"] == pytest.approx(4 / 3 * math.pi * np.prod(semi), rel=0.03)
    assert row["craniocaudal_length"] == pytest.approx(2 * semi[0], abs=SPACING[0])
    assert row["max_ap_diameter"] == pytest.approx(2 * semi[1], abs=SPACING[1])
    assert row["max_rl_diameter"] == pytest.approx(2 * semi[2], abs=SPACING[2])
    # the longest chord is the z axis (whole slices: within one slice of 24 mm)
    assert row["max_3d_diameter"] == pytest.approx(2 * semi[0], abs=SPACING[0])
    assert row["max_3d_diameter"] == pytest.approx(corner_diameter(tumor, SPACING))


def test_feret_diameter_hull_agrees_with_brute_force_and_small_sets():
    assert max_3d_diameter(box(z=(5, 5), y=(5, 5), x=(5, 5)), SPACING) == pytest.approx(math.hypot(*SPACING))
    flat = box(z=(7, 7), y=(3, 12), x=(4, 4))  # one voxel thick in z and x: a line of voxels
    assert max_3d_diameter(flat, SPACING) == pytest.approx(math.sqrt(1.5**2 + 5.0**2 + 0.75**2))
    rng = np.random.default_rng(0)
    blob = np.zeros(SHAPE, dtype=bool)
    for centre in rng.integers(8, 28, size=(6, 3)):
        blob |= box(z=(centre[0] - 3, centre[0] + 2), y=(centre[1] - 2, centre[1] + 4), x=(centre[2], centre[2] + 5))
    assert max_3d_diameter(blob, SPACING) == pytest.approx(corner_diameter(blob, SPACING), rel=1e-12)


# --- compartment -------------------------------------------------------------------------------------


def test_compartments_from_the_fraction_in_the_cord():
    cord = box()  # y 10..29
    inside = box(z=(10, 19), y=(14, 21), x=(12, 17))
    outside = box(z=(10, 19), y=(31, 36), x=(12, 17))  # anterior to the cord
    mixed = box(z=(10, 19), y=(26, 33), x=(12, 17))  # rows 26..29 in, 30..33 out
    expected = [(inside, 1.0, "intramedullary"), (outside, 0.0, "outside the cord"), (mixed, 0.5, "mixed")]
    for tumor, fraction, name in expected:
        row = tumor_metrics(cord, tumor, SPACING)[0][0]
        assert row["fraction_in_cord"] == pytest.approx(fraction) and row["compartment"] == name
    nearly = box(z=(10, 19), y=(20, 29), x=(12, 17)) | box(z=(10, 19), y=(30, 30), x=(12, 17))  # 10/11 in
    assert tumor_metrics(cord, nearly, SPACING)[0][0]["compartment"] == "intramedullary"


def test_two_tumors_are_ordered_by_volume_with_a_total():
    cord = box()
    small = box(z=(3, 5), y=(14, 17), x=(12, 15))  # first in raster order, inside the cord
    large = box(z=(20, 29), y=(31, 38), x=(10, 15))  # outside the cord, anterior
    rows, flags = tumor_metrics(cord, small | large, SPACING)
    assert [row["label"] for row in rows] == [1, 2, "total"] and flags["n_components"] == 2
    first, second, total = rows
    voxel = np.prod(SPACING)
    assert first["volume"] == pytest.approx(480 * voxel) and second["volume"] == pytest.approx(48 * voxel)
    assert first["compartment"] == "outside the cord" and second["compartment"] == "intramedullary"
    assert total["n_components"] == 2
    assert total["volume"] == pytest.approx(528 * voxel) and total["volume_ml"] == pytest.approx(528 * voxel / 1000)
    assert total["craniocaudal_length"] == pytest.approx(13 * 1.5)  # slices 3..5 and 20..29, the gap not counted
    assert total["max_ap_diameter"] == pytest.approx(8 * 0.5) and total["max_rl_diameter"] == pytest.approx(6 * 0.75)
    assert total["max_3d_diameter"] == first["max_3d_diameter"]  # max over the tumours, not the union's Feret
    assert total["fraction_in_cord"] == pytest.approx(48 / 528) and total["compartment"] == "outside the cord"


# --- levels ----------------------------------------------------------------------------------------


def test_levels_text_joins_runs_of_consecutive_levels():
    assert levels_text([3, 4, 5]) == "C3-C5" and levels_text([4]) == "C4" and levels_text([]) == ""
    assert levels_text([3, 4, 7, 8]) == "C3-C4,C7-T1" and levels_text([4, 6]) == "C4,C6"


def test_levels_spanned_from_a_labelled_cord():
    cord = box()
    labels = np.where(cord, 1, 0).astype(np.uint8)
    labels[12:27, 14:22, 12:18] = 3  # intramedullary tumour over slices 12..26
    labels[30:33, 31:35, 12:16] = 2  # a small extramedullary tumour at slices 30..32
    vertebrae = np.zeros(SHAPE, dtype=np.uint8)
    for code, (z0, z1) in {3: (10, 17), 4: (18, 23), 5: (24, 29), 6: (30, 39)}.items():
        vertebrae[z0 : z1 + 1][cord[z0 : z1 + 1]] = code
    rows, flags = tumor_table(label_image(labels), levels=label_image(vertebrae))
    first, second, total = rows
    assert first["levels"] == "C3-C5" and first["n_levels"] == 3
    assert second["levels"] == "C6" and second["n_levels"] == 1
    assert total["levels"] == "C3-C6" and total["n_levels"] == 4
    # slices 0..9 have no level: a tumour there is reported
    labels[2:4, 14:18, 12:15] = 3
    rows, flags = tumor_table(label_image(labels), levels=label_image(vertebrae))
    assert rows[2]["levels"] == "" and rows[-1]["levels"] == "C3-C6"
    assert any("2 tumour slices have no vertebral level" in note for note in flags["notes"])


def test_levels_from_disc_points_and_from_an_array():
    labels = np.where(box(), 1, 0).astype(np.uint8)
    labels[12:27, 14:22, 12:18] = 3
    discs = np.zeros(SHAPE, dtype=np.uint8)
    for value, z in {4: 30, 5: 20, 6: 10}.items():  # C3-C4 disc at slice 30, C4-C5 at 20, C5-C6 at 10
        discs[z, 19, 17] = value
    row = tumor_table(label_image(labels), levels=label_image(discs))[0][0]
    assert row["levels"] == "C4-C5" and row["n_levels"] == 2  # slices 12..26: between discs 30 and 10
    codes = np.zeros(SHAPE[0])
    codes[10:20], codes[20:40] = 8, 9  # T1, T2
    row = tumor_metrics(box(), labels >= 2, SPACING, levels=codes)[0][0]
    assert row["levels"] == "T1-T2" and row["n_levels"] == 2
    with pytest.raises(ValueError):
        tumor_metrics(box(), labels >= 2, SPACING, levels=codes[:-1])


def test_levels_image_off_grid_is_an_input_error():
    labels = np.where(box(), 1, 0).astype(np.uint8)
    labels[12:27, 14:22, 12:18] = 3
    vertebrae = label_image(np.where(box(), 4, 0).astype(np.uint8), spacing=(1.0, 0.5, 0.75))
    with pytest.raises(InputError):
        tumor_table(label_image(labels), levels=vertebrae)
    rows, flags = tumor_table(label_image(labels), levels=label_image(np.zeros(SHAPE, np.uint8)))
    assert rows[0]["levels"] == "" and any("no label" in note for note in flags["notes"])


# --- enhancement ratio -------------------------------------------------------------------------------


def test_enhancement_ratio_against_the_tumor_free_cord():
    cord, tumor = box(), box(z=(10, 19), y=(14, 21), x=(12, 17))
    image = np.where(cord, 100.0, 7.0)  # background intensities do not count
    image[tumor] = 200.0
    rows, flags = tumor_metrics(cord, tumor, SPACING, image=image)
    assert rows[0]["enhancement_ratio"] == pytest.approx(2.0) and rows[1]["enhancement_ratio"] == pytest.approx(2.0)
    assert any("PROPOSAL" in note for note in flags["notes"])
    rows, flags = tumor_metrics(cord, cord, SPACING, image=image)  # the tumour fills the cord: no reference
    assert math.isnan(rows[0]["enhancement_ratio"]) and any("tumour-free cord" in note for note in flags["notes"])
    assert math.isnan(tumor_metrics(np.zeros(SHAPE), tumor, SPACING, image=image)[0][0]["enhancement_ratio"])


# --- empty inputs -------------------------------------------------------------------------------------


def test_no_tumor_gives_a_zero_total_row():
    rows, flags = tumor_metrics(box(), np.zeros(SHAPE), SPACING, image=np.ones(SHAPE), levels=np.zeros(SHAPE[0]))
    assert flags == {"tumor_found": False, "cord_found": True, "n_components": 0, "notes": ["no tumour"]}
    assert len(rows) == 1 and list(rows[0]) == TUMOR_COLUMNS
    total = rows[0]
    assert total["label"] == "total" and total["n_components"] == 0 and total["n_levels"] == 0
    for key in ("volume", "volume_ml", "craniocaudal_length", "max_ap_diameter", "max_rl_diameter", "max_3d_diameter"):
        assert total[key] == 0
    assert math.isnan(total["fraction_in_cord"]) and total["compartment"] == "no tumour"
    rows, flags = tumor_metrics(np.zeros(SHAPE), np.zeros(SHAPE), SPACING)
    assert len(rows) == 1 and flags["cord_found"] is False and flags["tumor_found"] is False


def test_empty_cord_gives_unknown_compartment_and_straight_length():
    tumor = box(z=(10, 19), y=(14, 21), x=(12, 17))
    rows, flags = tumor_metrics(np.zeros(SHAPE), tumor, SPACING)
    assert flags["cord_found"] is False and flags["tumor_found"] is True and flags["n_components"] == 1
    row = rows[0]
    assert row["compartment"] == "unknown (no cord)" and math.isnan(row["fraction_in_cord"])
    assert row["craniocaudal_length"] == pytest.approx((19 - 10 + 1) * 1.5)
    assert row["max_ap_diameter"] == pytest.approx(4.0) and row["volume"] == pytest.approx(480 * np.prod(SPACING))
    assert rows[1]["compartment"] == "unknown (no cord)"
    assert any("no cord" in note for note in flags["notes"])


# --- label maps in any orientation ----------------------------------------------------------------------


def test_label_map_in_any_orientation_gives_the_same_rows():
    labels = np.where(box(), 1, 0).astype(np.uint8)
    labels[12:27, 14:22, 12:18] = 3  # intramedullary
    labels[30:33, 31:35, 12:16] = 2  # outside the cord
    labels[5:8, 26:33, 20:24] = np.where(labels[5:8, 26:33, 20:24] == 1, 3, 2)  # mixed
    labels[0, 0, 0] = 9  # a stray label
    image = np.where(labels & 1, 100.0, 5.0) + np.where(labels & 2, 150.0, 0.0)
    vertebrae = np.zeros(SHAPE, dtype=np.uint8)
    for code, (z0, z1) in {3: (0, 9), 4: (10, 19), 5: (20, 29), 6: (30, 39)}.items():
        vertebrae[z0 : z1 + 1][box()[z0 : z1 + 1]] = code
    images = [label_image(a) for a in (labels, image, vertebrae)]
    rows, flags = tumor_table(*images)
    cord, tumor = np.isin(labels, (1, 3)), np.isin(labels, (2, 3))
    reference, _ = tumor_metrics(cord, tumor, SPACING, image=image, levels=np.repeat([3, 4, 5, 6], 10))
    assert [row["compartment"] for row in rows] == ["intramedullary", "mixed", "outside the cord", "intramedullary"]
    assert rows[0]["levels"] == "C4-C5" and rows[1]["levels"] == "C3" and rows[2]["levels"] == "C6"
    assert rows[3]["levels"] == "C3-C6" and rows[3]["fraction_in_cord"] == pytest.approx(768 / 852)
    assert any("labels other than 0, 1, 2, 3" in note for note in flags["notes"])
    for expected_rows in (reference, rows):
        turned = [sitk.DICOMOrient(image, "PSR") for image in images]
        assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(turned[0].GetDirection()) == "PSR"
        turned_rows, _ = tumor_table(*turned)
        assert len(turned_rows) == len(expected_rows) == 4
        for row, expected in zip(turned_rows, expected_rows, strict=True):
            assert all(same(row[key], expected[key]) for key in TUMOR_COLUMNS)


# --- tilted cord -------------------------------------------------------------------------------------------


def test_tilted_cord_length_is_the_length_along_the_cord():
    spacing = (1.0, 0.5, 0.5)
    tilt = math.radians(25)  # sagittal tilt: the cord runs anteriorly as it goes up
    along, across = np.array([math.cos(tilt), math.sin(tilt)]), np.array([-math.sin(tilt), math.cos(tilt)])
    centre = np.array([40.0, 24.0])  # (z, y) mm of the tumour centre; x centre 8.1 mm
    half_length, r_ap, r_rl = 30.0, 1.5, 2.5  # cylinder 60 mm long along the cord, 3 mm AP, 5 mm RL

    def coordinates(z, y, x):
        dz, dy = z - centre[0], y - centre[1]
        return dz * along[0] + dy * along[1], dz * across[0] + dy * across[1], x - 8.1

    def in_cord(z, y, x):
        _, ap, rl = coordinates(z, y, x)
        return (ap / 4.0) ** 2 + (rl / 6.0) ** 2 <= 1

    def in_tumor(z, y, x):
        s, ap, rl = coordinates(z, y, x)
        return (np.abs(s) <= half_length) & ((ap / r_ap) ** 2 + (rl / r_rl) ** 2 <= 1)

    shape = (80, 96, 32)
    cord, tumor = render(in_cord, shape, spacing), render(in_tumor, shape, spacing)
    assert not cord[:, [0, -1], :].any()
    row = tumor_metrics(cord, tumor, spacing)[0][0]
    assert row["craniocaudal_length"] == pytest.approx(2 * half_length, rel=0.05)
    straight = tumor.any(axis=(1, 2)).sum() * spacing[0]  # no angle correction: about 9% short
    assert straight < 0.93 * 2 * half_length
    assert row["max_ap_diameter"] == pytest.approx(2 * r_ap, abs=2 * spacing[1])  # AP section 3 / cos(25) uncorrected
    assert row["max_rl_diameter"] == pytest.approx(2 * r_rl, abs=spacing[2])
    assert row["max_3d_diameter"] == pytest.approx(math.hypot(2 * half_length, 2 * r_ap), rel=0.03)
    assert row["volume"] == pytest.approx(math.pi * r_ap * r_rl * 2 * half_length, rel=0.05)
