"""Any input orientation is handled through the header, and masks come back on the input's exact grid."""

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.io import read_image
from spineai.orientation import canonical_array, from_canonical, orientation_code, to_canonical
from spineai.pipeline import segment
from spineai.sample import T2

# One real scan per orientation present in the shared data.
REAL_SCANS = {
    "PSR": "sct-testing/t2/t2.nii.gz",
    "LAS": "sct-testing/t2s/t2s.nii.gz",
    "RAS": "sct-testing/t1/t1w.nii.gz",
    "LPS": "gm-challenge/sub-9604/anat/sub-9604_run-1_T2starw.nii.gz",
}


def same_grid(a: sitk.Image, b: sitk.Image) -> bool:
    return (
        a.GetSize() == b.GetSize()
        and a.GetSpacing() == b.GetSpacing()
        and a.GetOrigin() == b.GetOrigin()
        and a.GetDirection() == b.GetDirection()
    )


def rotated(image: sitk.Image, degrees: float) -> sitk.Image:
    """A copy whose direction cosines are rotated about the image's own z axis (an oblique scan)."""
    angle = np.deg2rad(degrees)
    rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
    copy = sitk.Image(image)
    copy.SetDirection(tuple((np.array(image.GetDirection()).reshape(3, 3) @ rotation).ravel()))
    return copy


def variants(image: sitk.Image) -> dict[str, sitk.Image]:
    """The same scan stored with permuted, flipped and oblique axes (same anatomy in space)."""
    return {
        "permuted-zxy": sitk.PermuteAxes(image, [2, 0, 1]),
        "permuted-yxz": sitk.PermuteAxes(image, [1, 0, 2]),
        "flipped-x": sitk.Flip(image, [True, False, False]),
        "flipped-yz": sitk.Flip(image, [False, True, True]),
        "reoriented-RAS": sitk.DICOMOrient(image, "RAS"),
        "reoriented-LPI": sitk.DICOMOrient(image, "LPI"),
        "oblique-12deg": rotated(image, 12.0),
    }


@pytest.mark.parametrize("code", sorted(REAL_SCANS))
def test_real_scans_of_every_orientation_keep_their_exact_grid(data_dir, code):
    image = read_image(data_dir / REAL_SCANS[code])
    assert orientation_code(image) == code
    mask = segment(image, device="cpu").mask
    assert same_grid(mask, image)
    assert mask.GetPixelID() == sitk.sitkUInt8
    assert set(np.unique(sitk.GetArrayViewFromImage(mask))) <= {0, 1}


def test_canonical_round_trip_is_exact_for_every_variant():
    image = read_image(T2)
    for name, variant in variants(image).items():
        canonical = to_canonical(variant)
        assert orientation_code(canonical) == "LAS" or name.startswith("oblique"), name
        restored = from_canonical(canonical, variant)
        assert same_grid(restored, variant), name
        assert np.array_equal(sitk.GetArrayViewFromImage(restored), sitk.GetArrayViewFromImage(variant)), name


def test_segmentation_does_not_depend_on_how_axes_are_stored():
    image = read_image(T2)
    expected = canonical_array(to_canonical(segment(image, device="cpu").mask))
    assert expected.any()
    for name, variant in variants(image).items():
        mask = segment(variant, device="cpu").mask
        assert same_grid(mask, variant), name
        assert np.array_equal(canonical_array(to_canonical(mask)), expected), name


def test_canonical_array_runs_inferior_to_superior():
    """Index 0 of the canonical z axis is the most inferior slice, whatever the stored orientation."""
    image = read_image(T2)
    for variant in [image, *variants(image).values()]:
        canonical = to_canonical(variant)
        first = canonical.TransformIndexToPhysicalPoint((0, 0, 0))
        last_z = canonical.TransformIndexToPhysicalPoint((0, 0, canonical.GetSize()[2] - 1))
        # LPS world: +z is superior, +y posterior, +x left.
        assert last_z[2] > first[2]
        last_y = canonical.TransformIndexToPhysicalPoint((0, canonical.GetSize()[1] - 1, 0))
        assert last_y[1] < first[1]  # array y runs posterior -> anterior
