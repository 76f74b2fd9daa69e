"""Vertebral level of each slice: from a labelled cord or from disc points projected on the centreline."""

import math

import numpy as np
import pytest
import SimpleITK as sitk
from phantoms import elliptic_cylinder, grid

from spineai.errors import InputError
from spineai.measure.cord import aggregate_per_level, cord_morphometry
from spineai.measure.levels import is_point_labels, level_between_discs, level_name, levels_from_discs


def test_sct_level_codes_and_names():
    assert [level_name(c) for c in (1, 7, 8, 19, 20, 24, 25)] == ["C1", "C7", "T1", "T12", "L1", "L5", "S1"]
    with pytest.raises(ValueError):
        level_name(26)


def test_slices_between_two_discs_belong_to_the_vertebra_below_the_upper_disc():
    levels = levels_from_discs({3: 40.0, 4: 25.0}, np.arange(0, 60))
    assert all(levels[z] == 3 for z in range(26, 41))  # disc C2-C3 at 40 (inclusive) down to C3-C4 at 25
    assert all(levels[z] == 2 for z in range(41, 56))  # one mean vertebral height (15 slices) of C2 above
    assert all(levels[z] == 4 for z in range(11, 26))  # and of C4 below the lowest disc
    assert levels[56] is None and levels[10] is None  # beyond that nothing is guessed


def test_missing_discs_split_the_gap_evenly():
    levels = levels_from_discs({3: 40.0, 6: 10.0}, np.arange(11, 41))
    assert [levels[z] for z in (40, 31, 30, 21, 20, 11)] == [3, 3, 4, 4, 5, 5]
    assert level_between_discs(25.0, (3, 40.0), (6, 10.0)) == 4


def test_a_single_disc_labels_the_two_neighbouring_vertebrae():
    levels = levels_from_discs({21: 30.0}, np.arange(0, 60))
    assert levels[59] == 20 and levels[31] == 20 and levels[30] == 21 and levels[0] == 21


def test_discs_out_of_anatomical_order_are_refused():
    with pytest.raises(InputError, match="anatomical order"):
        levels_from_discs({3: 10.0, 4: 30.0}, np.arange(0, 40), source="discs.nii.gz")


def test_point_labels_are_told_from_a_labelled_cord():
    labels = np.zeros((20, 20, 20), dtype=int)
    labels[5, 10, 10] = 3
    labels[15, 9:11, 10] = 4
    assert is_point_labels(labels)
    labels[0:8, 8:12, 8:12] = 5
    assert not is_point_labels(labels)


def test_discs_and_labelled_levels_agree_on_the_pam50_template(data_dir):
    """PAM50 (1x1x2 mm) holds both a level-labelled cord and the disc points of the same template."""
    template = data_dir / "sct-testing" / "template" / "template"
    cord = sitk.ReadImage(str(template / "PAM50_small_cord.nii.gz"))
    from_levels = cord_morphometry(cord, sitk.ReadImage(str(template / "PAM50_small_levels.nii.gz")))
    from_discs = cord_morphometry(cord, sitk.ReadImage(str(template / "PAM50_small_label_disc.nii.gz")))
    pairs = [(a["VertLevel"], b["VertLevel"]) for a, b in zip(from_levels, from_discs, strict=True)]
    assert all(a is not None and b is not None for a, b in pairs)
    agreement = np.mean([a == b for a, b in pairs])
    assert agreement > 0.9, agreement  # measured 0.955: they differ only on boundary slices
    assert all(abs(a - b) <= 1 for a, b in pairs)
    per_level = {r["VertLevel"]: r for r in aggregate_per_level(from_discs)}
    assert set(range(2, 19)) <= set(per_level)
    assert all(50 < per_level[c]["MEAN(area)"] < 100 for c in range(2, 7))  # C2-C6


def test_disc_points_of_the_t2_scan_are_projected_on_its_cord(data_dir):
    """sct-testing t2 'labels' holds two points, values 3 (C2-C3) and 5 (C4-C5), at slices 44 and 9."""
    t2 = data_dir / "sct-testing" / "t2"
    rows = cord_morphometry(sitk.ReadImage(str(t2 / "t2_seg-manual.nii.gz")), sitk.ReadImage(str(t2 / "labels.nii.gz")))
    level = {r["Slice (I->S)"]: r["VertLevel"] for r in rows}
    # each disc, projected on the (slightly tilted) centreline, lands within a slice of its own z
    assert level[43] == 3 and level[45] == 2
    assert level[8] == 5 and level[10] == 4
    assert {level[z] for z in range(10, 45)} == {3, 4}  # C3 and C4 share the gap between the two discs
    levels = [level[z] for z in sorted(level)]
    assert levels == sorted(levels, reverse=True)  # levels only grow downwards
    per_level = aggregate_per_level(rows)
    assert [r["VertLevel"] for r in per_level] == [2, 3, 4, 5]
    assert all(50 < r["MEAN(area)"] < 100 for r in per_level)


def test_levels_off_the_mask_grid_are_refused():
    mask = elliptic_cylinder(grid((40, 40, 6), (0.5, 0.5, 2.0)), 6.5, 4.0)
    labels = sitk.Image(mask)
    labels.SetSpacing((0.5, 0.5, 2.5))
    with pytest.raises(InputError, match="geometry of the cord mask"):
        cord_morphometry(mask, labels)


def test_levels_must_be_whole_numbers():
    mask = elliptic_cylinder(grid((40, 40, 6), (0.5, 0.5, 2.0)), 6.5, 4.0)
    labels = sitk.Cast(mask, sitk.sitkFloat32) * 2.5
    with pytest.raises(InputError, match="whole numbers"):
        cord_morphometry(mask, labels)
    rows = cord_morphometry(mask, sitk.Cast(mask, sitk.sitkFloat32) * 4)
    assert {r["VertLevel"] for r in rows} == {4} and not math.isnan(rows[0]["MEAN(area)"])
