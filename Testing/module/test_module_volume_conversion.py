"""MRML volume nodes <-> SimpleITK images keep the exact geometry, and bad inputs are refused clearly."""

import itertools

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
from SpineAILib.VolumeConversion import addVolumeFromImage, arrayOnVolumeGrid, checkInputVolume, volumeToImage

from spineai.errors import InputError


def oblique(image: sitk.Image) -> sitk.Image:
    """The same voxels with a direction rotated 20 degrees about two axes and a new origin."""
    a, b = np.radians(20), np.radians(-35)
    rx = np.array([[1, 0, 0], [0, np.cos(a), -np.sin(a)], [0, np.sin(a), np.cos(a)]])
    rz = np.array([[np.cos(b), -np.sin(b), 0], [np.sin(b), np.cos(b), 0], [0, 0, 1]])
    result = sitk.Image(image)
    result.SetDirection(tuple((rz @ rx @ np.array(image.GetDirection()).reshape(3, 3)).ravel()))
    result.SetOrigin((12.5, -40.25, 7.75))
    result.SetSpacing((0.7, 1.3, 2.1))
    return result


def corner_samples(image: sitk.Image):
    """Physical position and value of the 8 corner voxels: what must agree whatever the voxel order."""
    size = image.GetSize()
    for index in itertools.product(*[(0, n - 1) for n in size]):
        yield np.array(image.TransformIndexToPhysicalPoint(index)), image[index]


def assert_same_physical_image(a: sitk.Image, b: sitk.Image):
    samples_b = list(corner_samples(b))
    for point, value in corner_samples(a):
        matches = [v for p, v in samples_b if np.allclose(p, point, atol=1e-4)]
        assert matches == [value], f"corner at {point} differs"


def test_real_scan_read_by_slicer_matches_simpleitk_physically(t2_volume, t2_path):
    # Slicer may store a left-handed file's voxels in another order; positions and values must agree.
    assert_same_physical_image(volumeToImage(t2_volume), sitk.ReadImage(str(t2_path)))


@pytest.mark.parametrize("make", [lambda image: image, oblique], ids=["axis-aligned", "oblique"])
def test_round_trip_is_exact(mrml, t2_path, make):
    image = make(sitk.ReadImage(str(t2_path)))
    node = addVolumeFromImage(image, "scan")
    back = volumeToImage(node)
    assert back.GetSize() == image.GetSize()
    assert back.GetSpacing() == image.GetSpacing()
    assert np.allclose(back.GetOrigin(), image.GetOrigin(), rtol=0, atol=1e-12)
    assert np.allclose(back.GetDirection(), image.GetDirection(), rtol=0, atol=1e-12)
    assert np.array_equal(sitk.GetArrayFromImage(back), sitk.GetArrayFromImage(image))
    assert np.array_equal(arrayOnVolumeGrid(back, node), slicer.util.arrayFromVolume(node))


def test_oblique_file_loaded_by_slicer_converts_to_the_same_image(mrml, t2_path, tmp_path):
    image = oblique(sitk.ReadImage(str(t2_path)))
    sitk.WriteImage(image, str(tmp_path / "oblique.nrrd"))
    node = slicer.util.loadVolume(str(tmp_path / "oblique.nrrd"))
    assert_same_physical_image(volumeToImage(node), image)


def test_a_result_on_another_grid_is_refused(mrml, t2_volume):
    shifted = volumeToImage(t2_volume)
    shifted.SetOrigin(tuple(np.array(shifted.GetOrigin()) + 1.0))
    with pytest.raises(InputError, match="another voxel grid"):
        arrayOnVolumeGrid(shifted, t2_volume)


def test_bad_inputs_are_refused_with_a_clear_message(mrml, t2_volume):
    with pytest.raises(InputError, match="no volume selected"):
        checkInputVolume(None)
    labelmap = slicer.util.addVolumeFromArray(np.ones((4, 5, 6), np.uint8), nodeClassName="vtkMRMLLabelMapVolumeNode")
    with pytest.raises(InputError, match="label map"):
        checkInputVolume(labelmap)
    flat = slicer.util.addVolumeFromArray(np.random.default_rng(0).random((1, 40, 50)), name="localizer")
    with pytest.raises(InputError, match="localizer: is a single 2D slice"):
        checkInputVolume(flat)
    frames = slicer.util.addVolumeFromArray(
        np.random.default_rng(0).random((6, 7, 8, 3)), name="dynamic", nodeClassName="vtkMRMLVectorVolumeNode"
    )
    with pytest.raises(InputError, match="dynamic: has 3 values per voxel"):
        checkInputVolume(frames)
    checkInputVolume(t2_volume)  # the real scan passes


def test_an_empty_volume_is_refused_by_the_engine_check(mrml):
    blank = slicer.util.addVolumeFromArray(np.zeros((10, 20, 30), np.int16), name="blank")
    with pytest.raises(InputError, match="blank: empty image"):
        volumeToImage(blank)
