"""Normalised compression ratio: (1 - m_i / mean(m_above, m_below)) * 100 with references 10-30 mm away."""

import math

import numpy as np
import pytest
import SimpleITK as sitk
from phantoms import elliptic_cylinder, grid

from spineai.errors import SpineAIError
from spineai.measure.compression import centreline_positions, normalised_compression_ratio
from spineai.measure.cord import cord_morphometry


def rows_of(values, length=1.0, metric="diameter_AP"):
    return [{"Slice (I->S)": z, f"MEAN({metric})": v, "SUM(length)": length} for z, v in enumerate(values)]


def test_ratio_uses_the_slices_10_to_30_mm_away_on_both_sides():
    values = np.full(80, 8.0)
    values[50:] = 9.0  # healthier above
    values[40] = 5.0
    result = normalised_compression_ratio(rows_of(values))
    assert result["Slice (I->S)"] == 40
    assert result["slices_above"] == "50:70" and result["slices_below"] == "10:30"
    assert result["m_above"] == 9.0 and result["m_below"] == 8.0
    assert result["diameter_AP_ratio"] == pytest.approx((1 - 5.0 / 8.5) * 100)


def test_distances_follow_the_centreline_length_not_the_slice_count():
    rows = rows_of(np.full(40, 8.0), length=2.5)
    assert centreline_positions(rows)[:3] == pytest.approx([1.25, 3.75, 6.25])
    result = normalised_compression_ratio(rows, slice_index=20)
    assert result["slices_above"] == "24:32" and result["slices_below"] == "8:16"


def test_one_missing_side_is_replaced_by_the_other():
    values = np.full(40, 8.0)
    values[5] = 4.0
    result = normalised_compression_ratio(rows_of(values), slice_index=5)
    assert math.isnan(result["m_below"]) and result["m_above"] == 8.0
    assert result["diameter_AP_ratio"] == pytest.approx(50.0)


def test_worst_slice_prefers_slices_with_references_on_both_sides():
    values = np.full(60, 8.0)
    values[0] = 3.0  # a partial end slice: smaller, but no reference below
    values[30] = 6.0
    assert normalised_compression_ratio(rows_of(values))["Slice (I->S)"] == 30


def test_rejected_slices_have_no_weight_and_unmeasured_slices_are_refused():
    values = np.full(60, 8.0)
    values[[12, 14, 45]] = np.nan
    values[30] = 6.0
    rows = rows_of(values)
    rows[45]["SUM(length)"] = math.nan
    assert normalised_compression_ratio(rows, slice_index=30)["diameter_AP_ratio"] == pytest.approx(25.0)
    with pytest.raises(SpineAIError, match="no measured"):
        normalised_compression_ratio(rows, slice_index=45)
    with pytest.raises(SpineAIError):
        normalised_compression_ratio(rows_of(np.full(5, 8.0)))


def test_compressed_cylinder_phantom():
    """A 13 x 8 mm cord flattened to 13 x 5 mm over 4 mm: MSCC = 1 - 5/8 = 37.5 %."""
    reference = grid((60, 60, 60), (0.5, 0.5, 1.0))
    healthy = sitk.GetArrayFromImage(elliptic_cylinder(reference, 6.5, 4.0))
    flattened = sitk.GetArrayFromImage(elliptic_cylinder(reference, 6.5, 2.5))
    healthy[28:32] = flattened[28:32]
    mask = sitk.GetImageFromArray(healthy)
    mask.CopyInformation(reference)
    rows = cord_morphometry(mask)
    result = normalised_compression_ratio(rows)
    assert 28 <= result["Slice (I->S)"] <= 31
    assert result["diameter_AP_ratio"] == pytest.approx(37.5, abs=3)
    by_area = normalised_compression_ratio(rows, slice_index=result["Slice (I->S)"], metric="area")
    assert by_area["area_ratio"] == pytest.approx(37.5, abs=3)
