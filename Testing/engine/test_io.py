"""Reading scans: every unusable input is refused with a message naming the file and the problem."""

import os
import shutil

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.errors import InputError
from spineai.io import OutputSet, image_stem, read_image
from spineai.sample import T2


def write(array, path, spacing=(1.0, 1.0, 1.0)):
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(spacing[: image.GetDimension()])
    sitk.WriteImage(image, str(path))
    return path


def refused(path, fragment):
    with pytest.raises(InputError) as error:
        read_image(path)
    assert str(path) in str(error.value)
    assert fragment in str(error.value)


def test_reads_every_supported_format_with_identical_geometry(tmp_path):
    reference = read_image(T2)
    for name in ("copy.nii", "copy.nii.gz", "copy.nrrd", "copy.mha"):
        sitk.WriteImage(reference, str(tmp_path / name))
        image = read_image(tmp_path / name)
        assert image.GetSize() == reference.GetSize()
        assert np.allclose(image.GetDirection(), reference.GetDirection())
        assert np.allclose(image.GetOrigin(), reference.GetOrigin())
        assert np.array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(reference))


def test_reads_a_dicom_series_folder(tmp_path):
    reference = sitk.DICOMOrient(sitk.Cast(read_image(T2), sitk.sitkInt16), "LPS")
    d = reference.GetDirection()
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(reference.GetDepth()):
        tags = {
            "0008|0060": "MR",
            "0020|000e": "1.2.826.0.1.3680043.2.1125.1.1",
            "0020|0013": str(k + 1),
            "0020|0037": "\\".join(str(v) for v in (d[0], d[3], d[6], d[1], d[4], d[7])),
            "0020|0032": "\\".join(str(v) for v in reference.TransformIndexToPhysicalPoint((0, 0, k))),
        }
        slice_image = reference[:, :, k]
        for tag, value in tags.items():
            slice_image.SetMetaData(tag, value)
        writer.SetFileName(str(tmp_path / f"slice{k:03d}.dcm"))
        writer.Execute(slice_image)
    image = read_image(tmp_path)
    assert image.GetSize() == reference.GetSize()
    assert np.allclose(image.GetOrigin(), reference.GetOrigin(), atol=1e-3)
    assert np.array_equal(sitk.GetArrayViewFromImage(image), sitk.GetArrayViewFromImage(reference))


def test_missing_file(tmp_path):
    refused(tmp_path / "absent.nii.gz", "file not found")


def test_non_image_file(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("not an image")
    refused(path, "not a supported image format")


def test_random_bytes_named_like_nifti(tmp_path):
    path = tmp_path / "junk.nii.gz"
    path.write_bytes(os.urandom(4000))
    refused(path, "corrupt")


@pytest.mark.parametrize("name", ["cut.nii.gz", "cut.nii", "cut.nrrd", "cut.mha"])
def test_truncated_file(tmp_path, name):
    full = tmp_path / f"full{name[3:]}"
    sitk.WriteImage(read_image(T2), str(full), useCompression=True)
    data = full.read_bytes()
    (tmp_path / name).write_bytes(data[: len(data) // 2])
    refused(tmp_path / name, "truncated")


def test_empty_folder_is_not_a_dicom_series(tmp_path):
    refused(tmp_path, "no DICOM series")


def test_2d_image(tmp_path):
    refused(write(np.random.rand(20, 20).astype(np.float32), tmp_path / "flat.nii.gz"), "2D image")


def test_4d_image(tmp_path):
    image = sitk.Image([6, 6, 6, 3], sitk.sitkFloat32)
    sitk.WriteImage(image, str(tmp_path / "series.nii.gz"))
    refused(tmp_path / "series.nii.gz", "4D image")


def test_single_slice_volume(tmp_path):
    refused(write(np.random.rand(1, 20, 20).astype(np.float32), tmp_path / "one.nii.gz"), "single slice")


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_voxels(tmp_path, bad):
    array = np.random.rand(8, 8, 8).astype(np.float32)
    array[2, 3, 4] = bad
    # NRRD keeps NaN/Inf as written (ITK's NIfTI reader turns them into 0).
    refused(write(array, tmp_path / "nan.nrrd"), "1 voxels are NaN or infinite")


def test_empty_image(tmp_path):
    refused(write(np.zeros((8, 8, 8), np.int16), tmp_path / "zeros.nii.gz"), "empty image")


@pytest.mark.parametrize("spacing", ["0 1 1", "1 -1 1"])
def test_zero_or_negative_spacing(tmp_path, spacing):
    np.random.rand(4, 5, 6).astype(np.float32).tofile(tmp_path / "data.raw")
    header = tmp_path / "bad.mhd"
    header.write_text(
        f"ObjectType = Image\nNDims = 3\nDimSize = 6 5 4\nElementSpacing = {spacing}\n"
        "ElementType = MET_FLOAT\nElementDataFile = data.raw\n"
    )
    refused(header, "spacing")


def test_negative_nifti_pixdim(tmp_path):
    path = write(np.random.rand(6, 6, 6).astype(np.float32), tmp_path / "flipped.nii")
    data = bytearray(path.read_bytes())
    data[84:88] = np.float32(-1.0).tobytes()  # pixdim[2]
    path.write_bytes(bytes(data))
    refused(path, "invalid voxel spacing")


def test_image_stem():
    assert image_stem("/a/sub-01_T2w.nii.gz") == "sub-01_T2w"
    assert image_stem("scan.NRRD") == "scan"
    assert image_stem("scan.mha") == "scan"
    assert image_stem("dicom_folder") == "dicom_folder"


def test_output_set_writes_all_or_nothing(tmp_path):
    out = tmp_path / "results"
    with pytest.raises(RuntimeError):
        with OutputSet(out) as outputs:
            outputs.write_json({"a": 1}, "first.json")
            raise RuntimeError("failure after the first file")
    assert not out.exists()
    with OutputSet(out) as outputs:
        outputs.write_json({"a": 1}, "first.json")
        outputs.write_csv([{"x": 1}], "second.csv")
    assert sorted(p.name for p in out.iterdir()) == ["first.json", "second.csv"]


def test_output_set_keeps_existing_results_on_failure(tmp_path):
    shutil.copy(T2, tmp_path / "keep.nii.gz")
    with pytest.raises(ValueError):
        with OutputSet(tmp_path) as outputs:
            outputs.write_json({"b": 2}, "keep.nii.gz")
            raise ValueError
    assert read_image(tmp_path / "keep.nii.gz").GetSize() == read_image(T2).GetSize()
    assert [p.name for p in tmp_path.iterdir()] == ["keep.nii.gz"]
