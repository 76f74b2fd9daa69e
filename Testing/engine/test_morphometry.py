"""Cord morphometry: known answers on analytic phantoms, sane values on real manual masks, clear refusals."""

import csv
import math

import numpy as np
import pytest
import SimpleITK as sitk
from phantoms import LAS, axis_from_tilts, elliptic_cylinder, grid

from spineai.errors import InputError
from spineai.measure import measure_file
from spineai.measure.cord import (
    COLUMN_UNITS,
    MORPHOMETRY_COLUMNS,
    aggregate,
    aggregate_per_level,
    check_mask,
    cord_morphometry,
    solidity,
)

A_RL, B_AP = 6.5, 4.0  # semi-axes (mm) of an adult cervical cord, 13 x 8 mm
TRUE_CSA = math.pi * A_RL * B_AP


def mean_of(rows, metric):
    return aggregate(rows)[f"MEAN({metric})"]


def sub_voxel_centres(spacing_xyz):
    """Four cylinder centres a fraction of a voxel apart: their mean cancels the binary staircase."""
    return [
        (fx * spacing_xyz[0], fy * spacing_xyz[1], 0.0) for fx, fy in ((0, 0), (0.25, 0.5), (0.5, 0.25), (0.75, 0.75))
    ]


# --- analytic phantoms --------------------------------------------------------------------------


def test_columns_follow_sct_order_with_units():
    assert MORPHOMETRY_COLUMNS[:4] == ["Slice (I->S)", "VertLevel", "MEAN(area)", "STD(area)"]
    assert MORPHOMETRY_COLUMNS[-1] == "SUM(length)"
    sct_order = [
        "area",
        "angle_AP",
        "angle_RL",
        "diameter_AP",
        "diameter_RL",
        "eccentricity",
        "orientation",
        "solidity",
    ]
    positions = [MORPHOMETRY_COLUMNS.index(f"MEAN({m})") for m in sct_order]
    assert positions == sorted(positions)
    assert set(COLUMN_UNITS) == set(MORPHOMETRY_COLUMNS)
    assert COLUMN_UNITS["MEAN(area)"] == "mm^2" and COLUMN_UNITS["SUM(length)"] == "mm"
    assert COLUMN_UNITS["MEAN(angle_AP)"] == "deg" and COLUMN_UNITS["MEAN(diameter_RL)"] == "mm"


@pytest.mark.parametrize(
    "spacing", [(1.0, 1.0, 1.0), (0.5, 0.5, 3.0), (0.3, 0.6, 2.0)], ids=["iso1mm", "axial-T2s", "anisotropic"]
)
def test_area_keeps_the_partial_volume_and_matches_pi_a_b(spacing):
    errors = []
    for centre in sub_voxel_centres(spacing):
        mask = elliptic_cylinder(
            grid((int(24 / spacing[0]), int(24 / spacing[1]), 4), spacing), A_RL, B_AP, centre_lps=centre
        )
        rows = cord_morphometry(mask)
        voxels = sitk.GetArrayFromImage(mask)
        for row in rows:  # upsampling and cropping lose no area: CSA = voxel count x pixel area
            assert row["MEAN(area)"] == pytest.approx(
                voxels[row["Slice (I->S)"]].sum() * spacing[0] * spacing[1], rel=1e-6
            )
            assert row["MEAN(angle_AP)"] == pytest.approx(0, abs=1e-6) and row["MEAN(angle_RL)"] == pytest.approx(
                0, abs=1e-6
            )
            assert row["SUM(length)"] == pytest.approx(spacing[2])
            assert row["STD(area)"] == 0.0
        errors.append(mean_of(rows, "area") / TRUE_CSA - 1)
    assert abs(np.mean(errors)) < 0.01, f"CSA errors {np.round(errors, 4)}"


def test_shape_metrics_of_an_elliptic_cylinder():
    spacing = (0.5, 0.5, 2.0)
    rows = [
        r
        for c in sub_voxel_centres(spacing)
        for r in cord_morphometry(elliptic_cylinder(grid((48, 48, 4), spacing), A_RL, B_AP, centre_lps=c))
    ]
    assert mean_of(rows, "diameter_RL") == pytest.approx(2 * A_RL, rel=0.02)
    assert mean_of(rows, "diameter_AP_ellipse") == pytest.approx(2 * B_AP, rel=0.03)
    # diameter_AP averages the chord over a 3 mm band: 2b * mean(sqrt(1 - u^2/a^2)), |u| < 1.5 mm
    band = np.linspace(-1.5, 1.5, 301)
    assert mean_of(rows, "diameter_AP") == pytest.approx(2 * B_AP * np.mean(np.sqrt(1 - band**2 / A_RL**2)), rel=0.02)
    assert mean_of(rows, "eccentricity") == pytest.approx(math.sqrt(1 - (B_AP / A_RL) ** 2), abs=0.02)
    assert mean_of(rows, "compression_ratio") == pytest.approx(B_AP / A_RL, rel=0.03)
    assert 0.94 < mean_of(rows, "solidity") <= 1.0
    assert mean_of(rows, "orientation") == pytest.approx(0, abs=1.0)


def solidity_phantoms():
    """2D masks: turned ellipses of several sizes, a crescent, a ring, a line, a pixel, one cut by the border."""
    rows, cols = np.mgrid[0:40, 0:50].astype(float)
    shapes = []
    for a, b, turn in ((15, 6, 0), (12, 7, 20), (9, 3, -35), (18, 17, 60), (4, 2, 45), (2.5, 1.2, 10)):
        u = (cols - 25.3) * math.cos(math.radians(turn)) + (rows - 19.6) * math.sin(math.radians(turn))
        v = -(cols - 25.3) * math.sin(math.radians(turn)) + (rows - 19.6) * math.cos(math.radians(turn))
        shapes.append((u / a) ** 2 + (v / b) ** 2 <= 1)
    disc = (rows - 20) ** 2 + (cols - 25) ** 2
    shapes.append((disc <= 144) & ((rows - 14) ** 2 + (cols - 25) ** 2 > 81))  # crescent: concave
    shapes.append((disc <= 144) & (disc > 36))  # ring: the hole is in the hull
    shapes.append(np.pad(np.ones((1, 9), bool), ((5, 5), (3, 3))))
    shapes.append(np.pad(np.ones((1, 1), bool), 4))
    shapes.append(shapes[0][:, 18:])  # runs off the array edge
    return shapes


def test_solidity_is_scikit_image_regionprops_solidity_as_sct_uses():
    from skimage.measure import regionprops

    for i, binary in enumerate(solidity_phantoms()):
        expected = regionprops(binary.astype(np.uint8))[0].solidity
        assert solidity(binary) == pytest.approx(expected, abs=1e-12), i
    # Known answer: an L of 3 pixels. The hull of the edge midpoints leaves the fourth pixel's centre
    # out (solidity 1); a hull of the pixel corners would pass through it (3/4).
    assert solidity(np.array([[1, 0], [1, 1]], bool)) == 1.0


@pytest.mark.parametrize("turn", [25.0, -30.0])
def test_orientation_is_the_signed_angle_of_the_long_axis_from_right_left(turn):
    rows = cord_morphometry(elliptic_cylinder(grid((60, 60, 4), (0.5, 0.5, 2.0)), A_RL, B_AP, rotation_deg=turn))
    assert mean_of(rows, "orientation") == pytest.approx(turn, abs=2.0)
    # the thickness across the long axis does not depend on how the cord is turned
    assert mean_of(rows, "diameter_AP_ellipse") == pytest.approx(2 * B_AP, rel=0.03)
    assert mean_of(rows, "diameter_RL") == pytest.approx(2 * A_RL, rel=0.03)


@pytest.mark.parametrize("tilt", [(0, 0), (15, 0), (30, 0), (0, 30), (20, 20), (10, -25)], ids=str)
def test_angle_correction_restores_the_true_csa_of_a_tilted_cylinder(tilt):
    spacing = (0.5, 0.5, 1.5)
    mask = elliptic_cylinder(
        grid((80, 80, 14), spacing), A_RL, B_AP, axis=axis_from_tilts(*tilt), centre_lps=(0.2, 0.1, 0)
    )
    rows = cord_morphometry(mask)
    assert mean_of(rows, "angle_AP") == pytest.approx(tilt[0], abs=0.5)
    assert mean_of(rows, "angle_RL") == pytest.approx(tilt[1], abs=0.5)
    assert mean_of(rows, "area") == pytest.approx(TRUE_CSA, rel=0.02)
    assert mean_of(rows, "diameter_RL") == pytest.approx(2 * A_RL, rel=0.03)
    cosines = math.cos(math.radians(tilt[0])) * math.cos(math.radians(tilt[1]))
    assert aggregate(rows)["SUM(length)"] == pytest.approx(len(rows) * spacing[2] / cosines, rel=0.01)
    if tilt != (0, 0):  # without the correction the axial section is larger by 1/cos: the correction matters
        raw = sitk.GetArrayFromImage(mask).sum(axis=(1, 2)).mean() * spacing[0] * spacing[1]
        assert raw / TRUE_CSA - 1 > 0.9 * (1 / cosines - 1)


def test_every_orientation_of_the_same_phantom_gives_the_same_table():
    """The same physical object written in PSR, LAS, RAS, LPS (exact reorientations) gives an identical table."""
    las = grid((40, 44, 12), (0.6, 0.45, 2.0))
    axis = axis_from_tilts(12, -8)
    reference = cord_morphometry(elliptic_cylinder(las, A_RL, B_AP, axis=axis, rotation_deg=15))
    for code in ("PSR", "RAS", "LPS", "SAL"):
        geometry = sitk.DICOMOrient(las, code)
        rows = cord_morphometry(elliptic_cylinder(geometry, A_RL, B_AP, axis=axis, rotation_deg=15))
        assert len(rows) == len(reference)
        for row, expected in zip(rows, reference, strict=True):
            assert row.keys() == expected.keys()
            np.testing.assert_allclose(list(row.values()), list(expected.values()), rtol=1e-6, atol=1e-9, err_msg=code)
    assert mean_of(reference, "orientation") == pytest.approx(15, abs=3)


def test_an_oblique_acquisition_measures_the_same_cord():
    """A vertical cord scanned on a grid tilted by 12 degrees: the angles show the obliquity, the CSA is unchanged."""
    tilt = sitk.VersorTransform((1, 0, 0), math.radians(12)).GetMatrix()
    direction = tuple((np.asarray(tilt).reshape(3, 3) @ np.asarray(LAS).reshape(3, 3)).ravel())
    oblique = grid((80, 80, 14), (0.5, 0.5, 1.5), direction=direction)
    assert sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(direction) == "LAS"
    rows = cord_morphometry(elliptic_cylinder(oblique, A_RL, B_AP, centre_lps=(0.2, 0.1, 0)))
    assert abs(mean_of(rows, "angle_RL")) == pytest.approx(12, abs=0.5)
    assert mean_of(rows, "angle_AP") == pytest.approx(0, abs=0.5)
    assert mean_of(rows, "area") == pytest.approx(TRUE_CSA, rel=0.02)


def test_empty_and_split_slices_are_reported_missing_not_guessed():
    mask = elliptic_cylinder(grid((48, 48, 10), (0.5, 0.5, 2.0)), A_RL, B_AP)
    voxels = sitk.GetArrayFromImage(mask)
    voxels[4] = 0  # a gap in the cord
    voxels[6, :, 20:22] = 0  # a slice cut in two halves
    broken = sitk.GetImageFromArray(voxels)
    broken.CopyInformation(mask)
    rows = cord_morphometry(broken)
    assert [r["Slice (I->S)"] for r in rows] == list(range(10))
    for row in rows:
        missing = row["Slice (I->S)"] in (4, 6)
        assert math.isnan(row["MEAN(area)"]) == missing
        assert math.isnan(row["MEAN(diameter_AP)"]) == missing and math.isnan(row["SUM(length)"]) == missing
    summary = aggregate(rows)
    assert summary["MEAN(area)"] == pytest.approx(np.nanmean([r["MEAN(area)"] for r in rows]))  # NaN weighs 0
    assert summary["SUM(length)"] == pytest.approx(8 * 2.0, rel=1e-3)


def test_rows_span_first_to_last_non_empty_slice():
    mask = elliptic_cylinder(grid((48, 48, 12), (0.5, 0.5, 2.0)), A_RL, B_AP)
    voxels = sitk.GetArrayFromImage(mask)
    voxels[:3] = 0
    voxels[10:] = 0
    cut = sitk.GetImageFromArray(voxels)
    cut.CopyInformation(mask)
    assert [r["Slice (I->S)"] for r in cord_morphometry(cut)] == list(range(3, 10))


def test_aggregation_per_level_is_mean_population_std_and_summed_length():
    rows = [
        {"Slice (I->S)": z, "VertLevel": level, "SUM(length)": 1.0}
        | {
            f"{s}({m})": 0.0
            for m in ("area", "angle_AP", "angle_RL", "diameter_AP", "diameter_AP_ellipse")
            for s in ("MEAN", "STD")
        }
        | {
            f"{s}({m})": 0.0
            for m in ("diameter_RL", "eccentricity", "orientation", "solidity", "compression_ratio")
            for s in ("MEAN", "STD")
        }
        for z, level in [(0, 4), (1, 4), (2, 4), (3, 3), (4, 3), (5, None)]
    ]
    for row, area in zip(rows, [60.0, 70.0, math.nan, 80.0, 90.0, 100.0], strict=True):
        row["MEAN(area)"] = area
    rows[2]["SUM(length)"] = math.nan
    per_level = aggregate_per_level(rows)
    assert [(r["VertLevel"], r["Slice (I->S)"]) for r in per_level] == [(3, "3:4"), (4, "0:2")]
    assert per_level[0]["MEAN(area)"] == 85.0 and per_level[0]["STD(area)"] == 5.0
    assert per_level[1]["MEAN(area)"] == 65.0 and per_level[1]["STD(area)"] == 5.0
    assert per_level[1]["SUM(length)"] == 2.0


# --- real manual masks --------------------------------------------------------------------------


def gm_challenge_mask(data_dir, subject):
    folder = data_dir / "gm-challenge" / "derivatives" / "labels" / subject / "anat"
    return sitk.ReadImage(str(folder / f"{subject}_run-1_T2starw_seg-manual.nii.gz"))


def test_csa_of_the_manual_t2_mask_per_vertebral_level_is_adult(data_dir):
    t2 = data_dir / "sct-testing" / "t2"
    rows = cord_morphometry(
        sitk.ReadImage(str(t2 / "t2_seg-manual.nii.gz")), sitk.ReadImage(str(t2 / "t2_seg-manual_labeled.nii.gz"))
    )
    assert not any(math.isnan(r["MEAN(area)"]) for r in rows)
    per_level = {r["VertLevel"]: r for r in aggregate_per_level(rows)}
    assert sorted(per_level) == [2, 3, 4, 5]
    for level, row in per_level.items():
        assert 50 < row["MEAN(area)"] < 100, (level, row["MEAN(area)"])
        assert 6 < row["MEAN(diameter_AP)"] < 10 and 10 < row["MEAN(diameter_RL)"] < 15
        assert abs(row["MEAN(angle_RL)"]) < 20 and abs(row["MEAN(angle_AP)"]) < 20
    assert per_level[3]["SUM(length)"] == pytest.approx(18, abs=1)  # C3 spans 18 slices of 1 mm


@pytest.mark.parametrize("subject", ["sub-9418", "sub-9584", "sub-9604", "sub-9669", "sub-10062Ses1"])
def test_csa_of_gm_challenge_manual_masks_is_adult(data_dir, subject):
    rows = cord_morphometry(gm_challenge_mask(data_dir, subject))
    assert 50 < mean_of(rows, "area") < 100
    assert sum(math.isnan(r["MEAN(area)"]) for r in rows) <= 1


def test_test_retest_csa_of_the_same_person_scanned_twice(data_dir):
    """sub-10062 Ses1 vs Ses2 (different in-plane resolution, 0.70 vs 0.59 mm): measured 87.65 vs 87.20 mm2."""
    csa = [
        mean_of(cord_morphometry(gm_challenge_mask(data_dir, s)), "area") for s in ("sub-10062Ses1", "sub-10062Ses2")
    ]
    assert abs(csa[0] - csa[1]) / np.mean(csa) < 0.03, csa


# --- files and refusals -------------------------------------------------------------------------


def write(image, path):
    sitk.WriteImage(image, str(path))
    return path


def test_measure_file_writes_per_slice_and_per_level_tables(data_dir, tmp_path):
    t2 = data_dir / "sct-testing" / "t2"
    written, _ = measure_file(
        t2 / "t2_seg-manual.nii.gz",
        tmp_path,
        image_path=t2 / "t2.nii.gz",
        vertebral_levels_path=t2 / "t2_seg-manual_labeled.nii.gz",
    )
    assert written["per_slice"] == tmp_path / "t2_seg-manual_cord_morphometry.csv"
    assert written["per_level"] == tmp_path / "t2_seg-manual_cord_morphometry_per_level.csv"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in written.values())
    with open(written["per_slice"]) as handle:
        per_slice = list(csv.DictReader(handle))
    assert list(per_slice[0]) == MORPHOMETRY_COLUMNS
    assert len(per_slice) == 55 and per_slice[0]["Slice (I->S)"] == "0"
    with open(written["per_level"]) as handle:
        per_level = list(csv.DictReader(handle))
    assert [r["VertLevel"] for r in per_level] == ["2", "3", "4", "5"]
    assert 50 < float(per_level[1]["MEAN(area)"]) < 100


def test_without_levels_there_is_no_vertlevel_column_and_no_per_level_table(data_dir, tmp_path):
    mask = data_dir / "sct-testing" / "t2s" / "t2s_seg.nii.gz"
    written, _ = measure_file(mask, tmp_path)
    assert list(written) == ["per_slice"]
    with open(written["per_slice"]) as handle:
        header = next(csv.reader(handle))
    assert header == [c for c in MORPHOMETRY_COLUMNS if c != "VertLevel"]


def mask_like(reference, array):
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image


@pytest.mark.parametrize(
    "values, fragment",
    [
        (np.array([0, 1, 2]), "not a binary mask"),
        (np.array([0.0, 0.5, 1.0]), "not a binary mask"),
        (np.array([0, 0, 0]), "empty"),
    ],
    ids=["labels", "soft", "empty"],
)
def test_unusable_masks_are_refused_naming_the_file_and_nothing_is_written(tmp_path, values, fragment):
    reference = elliptic_cylinder(grid((40, 40, 6), (0.5, 0.5, 2.0)), A_RL, B_AP)
    array = sitk.GetArrayFromImage(reference).astype(values.dtype)
    array[array == 1] = values[-1]
    array[3, 20, 20:22] = values[1:]
    path = write(mask_like(reference, array), tmp_path / "bad_seg.nii.gz")
    out = tmp_path / "out"
    with pytest.raises(InputError) as error:
        measure_file(path, out)
    assert str(path) in str(error.value) and fragment in str(error.value)
    assert not out.exists() or not any(out.iterdir())


@pytest.mark.parametrize("change", ["spacing", "origin", "size", "direction"])
def test_a_mask_off_the_image_grid_is_refused(tmp_path, change):
    mask = elliptic_cylinder(grid((40, 40, 6), (0.5, 0.5, 2.0)), A_RL, B_AP)
    image = sitk.Cast(mask, sitk.sitkFloat32) * 100 + 5
    if change == "spacing":
        image.SetSpacing((0.5, 0.6, 2.0))
    elif change == "origin":
        image.SetOrigin(tuple(np.add(image.GetOrigin(), (0, 0, 1.0))))
    elif change == "size":
        image = sitk.ConstantPad(image, (0, 0, 0), (0, 0, 1), 5)
    else:
        image.SetDirection(sitk.DICOMOrient(image, "RAS").GetDirection())
    mask_path, image_path = write(mask, tmp_path / "m_seg.nii.gz"), write(image, tmp_path / "t2.nii.gz")
    with pytest.raises(InputError, match=f"geometry of the image: {change}") as error:
        measure_file(mask_path, tmp_path / "out", image_path=image_path)
    assert str(mask_path) in str(error.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_check_mask_accepts_a_float_mask_of_zeros_and_ones():
    mask = sitk.Cast(elliptic_cylinder(grid((40, 40, 6), (0.5, 0.5, 2.0)), A_RL, B_AP), sitk.sitkFloat64)
    check_mask(mask, "float_seg.nii.gz")
    with pytest.raises(InputError, match="empty mask"):
        check_mask(mask * 0, "float_seg.nii.gz")


def test_levels_off_the_mask_grid_are_refused_naming_the_levels_file(tmp_path):
    mask = elliptic_cylinder(grid((40, 40, 6), (0.5, 0.5, 2.0)), A_RL, B_AP)
    levels = sitk.Cast(mask, sitk.sitkUInt8) * 3
    levels.SetOrigin(tuple(np.add(levels.GetOrigin(), (1.0, 0, 0))))
    mask_path, levels_path = write(mask, tmp_path / "m_seg.nii.gz"), write(levels, tmp_path / "m_levels.nii.gz")
    with pytest.raises(InputError, match="geometry of the cord mask: origin") as error:
        measure_file(mask_path, tmp_path / "out", vertebral_levels_path=levels_path)
    assert str(levels_path) in str(error.value)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
