"""DICOM series input: a folder of one series is read as the scan it came from; a damaged series is refused.

GDCM, under SimpleITK, silently drops a slice it cannot parse and closes the gap, which would shift
every measurement; these tests build real scans as DICOM series, damage them as exports and
transfers do, and check that each damage gives an ``InputError`` naming the file or folder and the
problem, while files that are not DICOM images are ignored.
"""

import os
import shutil

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_series import write_mr_series
from pydicom.fileset import FileSet

from spineai.cli import EXIT_USER_ERROR, main
from spineai.errors import InputError
from spineai.io import dicom_series_files, read_image
from spineai.orientation import orientation_code


@pytest.fixture(scope="module")
def axial_t2s(data_dir):
    return data_dir / "sct-testing" / "t2s" / "t2s.nii.gz"


@pytest.fixture
def series(axial_t2s, tmp_path):
    """A clean 9-slice axial T2* series (0.5 x 0.5 x 7.5 mm) written from the real scan."""
    return write_mr_series(axial_t2s, tmp_path / "series", description="T2star axial")


def refused(folder, fragment, names):
    with pytest.raises(InputError) as error:
        read_image(folder)
    message = str(error.value)
    assert fragment in message
    for name in names:
        assert str(name) in message
    return message


def test_series_reads_as_the_scan_it_was_written_from(series, axial_t2s):
    scan = read_image(axial_t2s)
    image = read_image(series.folder)
    back = sitk.DICOMOrient(image, orientation_code(scan))
    assert back.GetSize() == scan.GetSize()
    assert np.allclose(back.GetSpacing(), scan.GetSpacing(), atol=1e-4)
    assert np.allclose(back.GetOrigin(), scan.GetOrigin(), atol=1e-4)
    assert np.allclose(back.GetDirection(), scan.GetDirection(), atol=1e-6)
    expected = np.clip(np.round(sitk.GetArrayFromImage(scan)), 0, 65535)  # the series stores uint16
    assert np.array_equal(sitk.GetArrayFromImage(back), expected)


def test_series_files_come_in_the_volume_slice_order(series):
    image = read_image(series.folder)
    files = dicom_series_files(series.folder)
    assert sorted(files) == sorted(series.files)
    for k, path in enumerate(files):
        position = [float(v) for v in pydicom.dcmread(path, stop_before_pixels=True).ImagePositionPatient]
        assert np.allclose(position, image.TransformIndexToPhysicalPoint((0, 0, k)), atol=1e-4)


def test_files_that_are_not_dicom_images_are_ignored(series):
    reference = sitk.GetArrayFromImage(read_image(series.folder))
    (series.folder / "README.txt").write_text("exported by the PACS\n")
    (series.folder / ".DS_Store").write_bytes(os.urandom(2048))
    (series.folder / "series.json").write_text('{"SeriesDescription": "T2star axial"}')
    _write_dicomdir(series)
    _write_non_image_dicom(series)
    assert np.array_equal(sitk.GetArrayFromImage(read_image(series.folder)), reference)
    assert len(dicom_series_files(series.folder)) == len(series.files)


def test_truncated_slice_is_named(series):
    victim = series.files[4]
    data = victim.read_bytes()
    victim.write_bytes(data[: len(data) - 1000])  # cut inside the pixel data
    refused(series.folder, "DICOM image that cannot be read", [victim])


def test_slice_overwritten_with_garbage_is_found_as_a_gap(series):
    series.files[4].write_bytes(os.urandom(series.files[4].stat().st_size))  # no longer recognisable as DICOM
    message = refused(series.folder, "slices unevenly spaced", [series.folder])
    assert series.files[3].name in message and series.files[5].name in message


def test_missing_slice_is_found_as_a_gap(series):
    series.files[6].unlink()
    refused(series.folder, "a slice is missing", [series.folder, series.files[5].name, series.files[7].name])


def test_duplicated_slice_is_refused(series):
    duplicate = pydicom.dcmread(series.files[2])
    duplicate.SOPInstanceUID = pydicom.uid.generate_uid()
    duplicate.file_meta.MediaStorageSOPInstanceUID = duplicate.SOPInstanceUID
    duplicate.save_as(series.folder / "IM0003-copy.dcm")
    refused(series.folder, "slices unevenly spaced", [series.folder])


def test_slice_of_another_size_is_named(series):
    odd = pydicom.dcmread(series.files[5])
    rows, columns = odd.Rows, odd.Columns
    pixels = odd.pixel_array[:-4]  # four rows fewer, as a reformatted or re-exported slice might have
    odd.Rows = pixels.shape[0]
    odd.PixelData = pixels.tobytes()
    odd.save_as(series.files[5])
    expected = f"slice of size {columns}x{rows - 4} in a series of {columns}x{rows} slices"
    refused(series.folder, expected, [series.files[5]])


def test_slice_oriented_differently_is_named(series):
    localizer = pydicom.dcmread(series.files[0])
    localizer.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]  # a sagittal localizer in the axial series
    localizer.save_as(series.files[0])
    refused(series.folder, "oriented differently", [series.files[0]])


def test_folder_with_two_series_lists_them(axial_t2s, data_dir, tmp_path):
    folder = tmp_path / "study"
    axial = write_mr_series(axial_t2s, folder, description="T2star axial")
    sagittal = write_mr_series(
        data_dir / "sct-testing" / "t2" / "t2.nii.gz", folder / "sagittal", study_uid=axial.study_uid, series_number=2
    )
    for path in sagittal.files:
        shutil.move(path, folder / f"sag-{path.name}")
    refused(folder, "folder holds 2 DICOM series", [axial.series_uid, sagittal.series_uid, "9 files", "52 files"])


def test_cli_refuses_a_damaged_series_in_one_line_and_writes_nothing(series, tmp_path, capsys):
    series.files[4].unlink()
    out = tmp_path / "results"
    code = main(["segment", str(series.folder), "--out", str(out), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert err.count("\n") == 1 and err.startswith(f"spineai: error: {series.folder}: slices unevenly spaced")
    assert not out.exists()


def _write_dicomdir(series):
    """A DICOMDIR (a DICOM file without pixel data) as media exports put beside the images."""
    fileset = FileSet()
    fileset.add(pydicom.dcmread(series.files[0]))
    staging = series.folder.parent / "media"
    fileset.write(staging)
    shutil.copy(staging / "DICOMDIR", series.folder / "DICOMDIR")


def _write_non_image_dicom(series):
    """A Basic Text SR in the same study: DICOM, but not an image of the series."""
    report = pydicom.Dataset()
    report.file_meta = pydicom.dataset.FileMetaDataset()
    report.file_meta.MediaStorageSOPClassUID = report.SOPClassUID = pydicom.uid.BasicTextSRStorage
    report.SOPInstanceUID = report.file_meta.MediaStorageSOPInstanceUID = pydicom.uid.generate_uid()
    report.file_meta.TransferSyntaxUID = pydicom.uid.ExplicitVRLittleEndian
    report.StudyInstanceUID = series.study_uid
    report.SeriesInstanceUID = pydicom.uid.generate_uid()
    report.Modality = "SR"
    report.save_as(series.folder / "report.dcm", enforce_file_format=True)


def test_the_series_description_states_the_contrast_for_the_input_check(series, tmp_path):
    """A DICOM folder's name says nothing of the contrast; its series description does."""
    import json

    assert main(["segment", str(series.folder), "--out", str(tmp_path / "out"), "--device", "cpu"]) == 0
    sidecar = json.loads(next((tmp_path / "out").glob("*_cord_seg.json")).read_text())
    check = sidecar["input_check"]
    assert (check["plane"], check["contrast"], check["supported"]) == ("axial", "T2starw", True)
