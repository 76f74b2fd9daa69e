"""Stenosis measurements and grades on phantoms of known area and known Schizas grade (no network)."""

import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
from phantoms import elliptic_cylinder, grid

from spineai.errors import InputError
from spineai.measure.stenosis import section_measurements, stenosis_table
from spineai.stenosis.grading import lee_grade, schizas_grade
from spineai.stenosis.levels import (
    LevelPoint,
    level_markups,
    level_problems,
    read_level_points,
    with_normals,
)
from spineai.training.synthetic_canal import GRADES, canal_phantom

SAC_RL, SAC_AP = 9.0, 6.5  # semi-axes (mm): 183.8 mm2, a normal lumbar dural sac
TRUE_AREA = math.pi * SAC_RL * SAC_AP
AXIAL_STACK = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # LPS
SAGITTAL = (0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, -1.0, 0.0)  # columns: A->P, S->I, R->L... a PSR-like grid


def sac_volume(reference, axis=(0.0, 0.0, 1.0), centre=(0.0, 0.0, 0.0)) -> sitk.Image:
    """A dural sac cylinder, CSF in all of it but a dorsal band of roots (bits 1 sac, 2 CSF)."""
    sac = sitk.GetArrayFromImage(elliptic_cylinder(reference, SAC_RL, SAC_AP, axis, centre))
    labels = sitk.GetImageFromArray((sac * 3).astype(np.uint8))
    labels.CopyInformation(reference)
    return labels


def levels_along(axis, centre=(0.0, 0.0, 0.0), spacing_mm=35.0, normals=True, anterior_mm=25.0):
    """Five level points on the disc centres, ``anterior_mm`` in front of the sac axis, L1-L2 on top."""
    axis = np.asarray(axis, float) / np.linalg.norm(axis)
    front = np.array([0.0, -1.0, 0.0]) - axis[1] * axis
    front /= np.linalg.norm(front)
    return [
        LevelPoint(21 + i, tuple(np.asarray(centre) + (2 - i) * spacing_mm * axis + anterior_mm * front),
                   tuple(axis) if normals else None, "test")
        for i in range(5)
    ]  # fmt: skip


def areas(rows):
    return [row["dural_sac_area_mm2"] for row in rows]


def test_area_of_a_known_sac_on_an_axial_stack_within_3_percent():
    reference = grid((200, 200, 45), (0.5, 0.5, 4.0), AXIAL_STACK)
    labels = sac_volume(reference)
    rows = stenosis_table(labels, levels_along((0, 0, 1)))
    assert [row["level"] for row in rows] == ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]
    assert all(row["assessable"] for row in rows)
    assert all(abs(area / TRUE_AREA - 1) < 0.03 for area in areas(rows)), areas(rows)


@pytest.mark.parametrize("tilt_deg", [0.0, 25.0])
def test_area_on_a_sagittal_grid_with_a_tilted_sac_within_3_percent(tilt_deg):
    """A 1 mm sagittal volume; the sac leans 25 degrees (lordosis): the plane follows the disc normal."""
    axis = (0.0, -math.sin(math.radians(tilt_deg)), math.cos(math.radians(tilt_deg)))
    reference = grid((200, 200, 40), (1.0, 1.0, 1.0), SAGITTAL)
    rows = stenosis_table(sac_volume(reference, axis), levels_along(axis))
    assert all(abs(area / TRUE_AREA - 1) < 0.03 for area in areas(rows)), areas(rows)


def test_points_without_normals_take_the_spine_axis_from_their_neighbours():
    axis = (0.0, -math.sin(math.radians(20)), math.cos(math.radians(20)))
    reference = grid((200, 200, 40), (1.0, 1.0, 1.0), SAGITTAL)
    rows = stenosis_table(sac_volume(reference, axis), with_normals(levels_along(axis, normals=False)))
    assert all(abs(area / TRUE_AREA - 1) < 0.03 for area in areas(rows)), areas(rows)
    # Without the tilt known, the axial plane would cut the sac obliquely: 1/cos(20) = 6 % too large.
    axial = stenosis_table(
        sac_volume(reference, axis), [LevelPoint(lv.code, lv.point, (0, 0, 1), "x") for lv in levels_along(axis)]
    )
    assert all(area / TRUE_AREA - 1 > 0.04 for area in areas(axial))


def test_a_level_missing_or_outside_the_scan_is_not_assessable_never_graded():
    reference = grid((200, 200, 12), (0.5, 0.5, 4.0), AXIAL_STACK)  # 48 mm: only L3-L4 is in the stack
    levels = levels_along((0, 0, 1))
    rows = stenosis_table(sac_volume(reference), [lv for lv in levels if lv.name != "L5-S1"])
    by_level = {row["level"]: row for row in rows}
    assert by_level["L3-L4"]["assessable"] and by_level["L3-L4"]["schizas_grade"]
    assert not by_level["L5-S1"]["assessable"] and by_level["L5-S1"]["not_assessable_reason"] == "level not found"
    assert "schizas_grade" not in by_level["L5-S1"]


@pytest.mark.parametrize("grade", GRADES)
def test_a_phantom_built_to_each_schizas_grade_gets_that_grade(grade):
    expected = "A1" if grade == "A2" else grade  # the horseshoe is not told apart (documented)
    rng = np.random.default_rng(GRADES.index(grade))
    for _ in range(5):
        phantom = canal_phantom(grade, rng)
        assert schizas_grade(section_measurements(phantom.labels, 0.5)).value == expected


def test_lee_grade_where_derivable():
    rng = np.random.default_rng(7)
    assert lee_grade(section_measurements(canal_phantom("A1", rng).labels, 0.5)).value == "0"
    assert lee_grade(section_measurements(canal_phantom("B", rng).labels, 0.5)).value == "1-2"
    assert lee_grade(section_measurements(canal_phantom("D", rng).labels, 0.5)).value == "3"


def test_each_row_says_the_rule_and_thresholds_that_gave_its_grade():
    reference = grid((200, 200, 45), (0.5, 0.5, 4.0), AXIAL_STACK)
    row = stenosis_table(sac_volume(reference), levels_along((0, 0, 1)))[2]
    assert row["schizas_grade"].startswith("A") and "CSF" in row["schizas_rule"]
    assert row["dsca_category"] == "none" and "100 mm2" in row["dsca_rule"]
    assert row["grade_source"] == "rule" and row["ap_diameter_mm"] == pytest.approx(13.0, abs=0.6)


def test_levels_out_of_order_or_with_a_cervical_spacing_are_flagged():
    levels = levels_along((0, 0, 1))
    swapped = [LevelPoint(lv.code, levels[4 - i].point, None, "x") for i, lv in enumerate(levels)]
    assert "out of order" in level_problems(swapped)[21]
    cervical = levels_along((0, 0, 1), spacing_mm=17.0)
    assert "not a lumbar spine" in level_problems(cervical)[23]
    assert level_problems(levels) == {}


def test_markups_round_trip_keeps_points_labels_and_normals(tmp_path):
    axis = np.array([0.0, -0.3, 1.0]) / np.linalg.norm([0.0, -0.3, 1.0])
    levels = levels_along(axis)
    path = tmp_path / "levels.mrk.json"
    path.write_text(json.dumps(level_markups(levels)))
    back = read_level_points(path)
    assert [lv.name for lv in back] == [lv.name for lv in levels]
    for a, b in zip(levels, back, strict=True):
        assert np.allclose(a.point, b.point, atol=1e-3) and np.allclose(a.normal, b.normal, atol=1e-5)


def test_points_placed_in_slicer_ras_without_normals_are_read(tmp_path):
    path = tmp_path / "points.mrk.json"
    control = [{"label": "L4-L5", "position": [1.0, 2.0, 3.0], "orientation": [-1, 0, 0, 0, -1, 0, 0, 0, 1]}]
    path.write_text(
        json.dumps({"markups": [{"type": "Fiducial", "coordinateSystem": "RAS", "controlPoints": control}]})
    )
    (level,) = read_level_points(path)
    assert level.name == "L4-L5" and level.point == (-1.0, -2.0, 3.0) and level.normal is None


@pytest.mark.parametrize(
    "content, problem",
    [
        ({"markups": [{"controlPoints": [{"label": "C5-C6", "position": [0, 0, 0]}]}]}, "not a lumbar level"),
        ({"markups": [{"controlPoints": []}]}, "no level point"),
        ({"points": []}, "not a Slicer markups file"),
    ],
)
def test_bad_points_files_are_refused_naming_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.mrk.json"
    path.write_text(json.dumps(content))
    with pytest.raises(InputError, match=problem) as error:
        read_level_points(path)
    assert "bad.mrk.json" in str(error.value)
