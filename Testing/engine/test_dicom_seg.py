"""``spineai segment SERIES --dicom-seg``: the cord mask as DICOM SEG and the cord CSA as DICOM SR, read back.

Two real scans are written as MR series (a sagittal T2 with vertebral levels, an axial T2*) and
segmented once each through the CLI. The SEG and SR are then read with pydicom alone, not with the
library that wrote them: the SEG must reference the source series and its images, carry the
SNOMED CT codes, and decode, frame by frame through its plane positions, to exactly the NIfTI mask
of the same run; the SR's CSA values must be the CSV's. highdicom reads the SEG to the same mask,
and dciodvfy (dicom3tools) finds no error in either object. The other tasks: ``test_dicom_tasks.py``.
"""

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_checks import dciodvfy_problems, seg_volumes_highdicom, seg_volumes_pydicom, sr_groups
from dicom_series import MRSeries, write_mr_series

from spineai import __version__
from spineai.cli import EXIT_USER_ERROR, main
from spineai.dicom import require_dicom_extra
from spineai.errors import SpineAIError
from spineai.io import read_image
from spineai.orientation import orientation_code

SEGMENTATION_STORAGE = "1.2.840.10008.5.1.4.1.1.66.4"
COMPREHENSIVE_3D_SR_STORAGE = "1.2.840.10008.5.1.4.1.1.88.34"
AREA, MEAN, FINDING_SITE, DERIVATION, REFERENCED_SEGMENT = "42798000", "373098007", "363698007", "121401", "121191"
MEASUREMENT_GROUP = "125007"


@dataclass
class Run:
    series: MRSeries
    out: Path
    stem: str
    manual_mask: Path

    def path(self, suffix: str) -> Path:
        return self.out / f"{self.stem}{suffix}"


@pytest.fixture(scope="module")
def sagittal(data_dir, tmp_path_factory) -> Run:
    """Sagittal T2 (60x55x52, 1 mm) with the manual vertebral levels 2-5 moved onto the series' grid."""
    base = tmp_path_factory.mktemp("sagittal")
    t2 = data_dir / "sct-testing" / "t2"
    series = write_mr_series(t2 / "t2.nii.gz", base / "t2_sag", description="T2 sagittal")
    levels_path = base / "levels.nii.gz"
    sitk.WriteImage(on_grid_of(read_image(t2 / "t2_seg-manual_labeled.nii.gz"), read_image(series.folder)), levels_path)
    return segment_series(series, base / "out", t2 / "t2_seg-manual.nii.gz", "--vertebral-levels", levels_path)


@pytest.fixture(scope="module")
def axial(data_dir, tmp_path_factory) -> Run:
    """Axial T2* (0.5 x 0.5 x 7.5 mm, 9 slices): one SEG frame per acquired slice with cord."""
    base = tmp_path_factory.mktemp("axial")
    t2s = data_dir / "sct-testing" / "t2s"
    series = write_mr_series(t2s / "t2s.nii.gz", base / "t2s_ax", description="T2* ax")
    return segment_series(series, base / "out", t2s / "t2s_seg.nii.gz")


@pytest.fixture(params=["sagittal", "axial"])
def run(request) -> Run:
    return request.getfixturevalue(request.param)


def segment_series(series: MRSeries, out: Path, manual_mask: Path, *options) -> Run:
    argv = ["segment", series.folder, "--task", "cord", "--out", out, "--device", "cpu", "--dicom-seg", *options]
    assert main([str(a) for a in argv]) == 0
    return Run(series, out, series.folder.name, manual_mask)


def on_grid_of(labels: sitk.Image, image: sitk.Image) -> sitk.Image:
    """``labels`` permuted (losslessly) onto ``image``'s grid, which holds the same voxels in another order."""
    moved = sitk.DICOMOrient(labels, orientation_code(image))
    assert np.allclose(moved.GetOrigin(), image.GetOrigin(), atol=1e-3)
    moved.CopyInformation(image)
    return moved


def test_dicom_results_join_the_other_outputs(run):
    sidecar = json.loads(run.path("_cord_seg.json").read_text())
    assert sidecar["outputs"]["dicom_seg"] == f"{run.stem}_cord_seg.dcm"
    assert sidecar["outputs"]["dicom_sr"] == f"{run.stem}_cord_morphometry_sr.dcm"
    for name in sidecar["outputs"].values():
        assert (run.out / name).is_file()
    assert not [p for p in run.out.iterdir() if p.name.startswith(".partial")]


def test_seg_references_the_source_series_with_snomed_codes(run):
    seg = pydicom.dcmread(run.path("_cord_seg.dcm"))
    source = [pydicom.dcmread(path, stop_before_pixels=True) for path in run.series.files]
    assert (seg.SOPClassUID, seg.Modality, seg.SegmentationType) == (SEGMENTATION_STORAGE, "SEG", "BINARY")
    assert seg.StudyInstanceUID == run.series.study_uid
    assert seg.FrameOfReferenceUID == run.series.frame_of_reference_uid
    assert (seg.PatientID, seg.PatientName) == (source[0].PatientID, source[0].PatientName)
    assert seg.SeriesInstanceUID != run.series.series_uid
    (referenced,) = seg.ReferencedSeriesSequence
    assert referenced.SeriesInstanceUID == run.series.series_uid
    assert {i.ReferencedSOPInstanceUID for i in referenced.ReferencedInstanceSequence} <= {
        d.SOPInstanceUID for d in source
    }

    (segment,) = seg.SegmentSequence
    assert (segment.SegmentNumber, segment.SegmentLabel) == (1, "Spinal cord")
    assert segment.SegmentAlgorithmType == "AUTOMATIC"
    category, kind = segment.SegmentedPropertyCategoryCodeSequence[0], segment.SegmentedPropertyTypeCodeSequence[0]
    assert (category.CodeValue, category.CodingSchemeDesignator, category.CodeMeaning) == (
        "123037004",
        "SCT",
        "Anatomical Structure",
    )
    assert (kind.CodeValue, kind.CodingSchemeDesignator, kind.CodeMeaning) == ("2748008", "SCT", "Spinal cord")
    algorithm = segment.SegmentationAlgorithmIdentificationSequence[0]
    assert (algorithm.AlgorithmName, algorithm.AlgorithmVersion) == ("SpineAI", __version__)
    sidecar = json.loads(run.path("_cord_seg.json").read_text())
    assert sidecar["model"] in algorithm.AlgorithmParameters
    assert sidecar["model_sha256"] in algorithm.AlgorithmParameters


def test_seg_frames_rebuild_the_nifti_mask_exactly(run):
    seg = pydicom.dcmread(run.path("_cord_seg.dcm"))
    mask = sitk.ReadImage(str(run.path("_cord_seg.nii.gz")))  # not read_image: a result may be all 0 or all 1
    assert_seg_decodes_to(seg, mask, run)


def test_seg_of_the_manual_mask_decodes_to_it_exactly(run, tmp_path):
    """Independent of the model's output: an expert's asymmetric cord mask must survive the round trip."""
    from spineai.dicom.results import encoded
    from spineai.dicom.seg import build_segmentation
    from spineai.dicom.series import read_source_series

    image = read_image(run.series.folder)
    manual = sitk.Cast(on_grid_of(read_image(run.manual_mask), image) > 0, sitk.sitkUInt8)
    sidecar = json.loads(run.path("_cord_seg.json").read_text())
    seg = build_segmentation(read_source_series(run.series.folder, image), manual, "cord", sidecar)
    (tmp_path / "manual.dcm").write_bytes(encoded(seg))
    assert_seg_decodes_to(pydicom.dcmread(tmp_path / "manual.dcm"), manual, run)


def assert_seg_decodes_to(seg, mask: sitk.Image, run: Run) -> None:
    """Rebuild the volume from the SEG's frames placed by their ImagePositionPatient; compare with ``mask``."""
    expected = sitk.GetArrayFromImage(mask)
    frames = int(seg.NumberOfFrames)
    non_empty = int(np.count_nonzero(expected.reshape(len(expected), -1).any(axis=1)))
    assert frames == (non_empty or len(expected))  # empty frames are left out unless all are empty
    assert np.array_equal(seg_volumes_pydicom(seg, mask, run.series.files)[1], expected)


def test_highdicom_reads_the_seg_back_to_the_nifti_mask(run):
    mask = sitk.ReadImage(str(run.path("_cord_seg.nii.gz")))
    volumes = seg_volumes_highdicom(run.path("_cord_seg.dcm"), mask, run.series.files)
    assert list(volumes) == [1] and np.array_equal(volumes[1], sitk.GetArrayFromImage(mask))


def test_dciodvfy_finds_no_error_in_the_seg_and_the_sr(run):
    for suffix in ("_cord_seg.dcm", "_cord_morphometry_sr.dcm"):
        assert dciodvfy_problems(run.path(suffix)) == []


def test_sr_mean_csa_is_the_csv_mean_and_references_the_seg_segment(run):
    seg = pydicom.dcmread(run.path("_cord_seg.dcm"), stop_before_pixels=True)
    sr = pydicom.dcmread(run.path("_cord_morphometry_sr.dcm"))
    assert (sr.SOPClassUID, sr.Modality) == (COMPREHENSIVE_3D_SR_STORAGE, "SR")
    assert sr.StudyInstanceUID == seg.StudyInstanceUID
    assert (sr.CompletionFlag, sr.VerificationFlag) == ("COMPLETE", "UNVERIFIED")

    groups = [i for i in content_items(sr) if code_of(i) == MEASUREMENT_GROUP]
    references = [i for i in content_items(sr) if code_of(i) == REFERENCED_SEGMENT]
    assert groups and len(references) == len(groups)  # every group (whole cord, each level) references the cord
    for reference in references:
        assert reference.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == seg.SOPInstanceUID
        assert reference.ReferencedSOPSequence[0].ReferencedSegmentNumber == 1

    per_slice = read_csv(run.path("_cord_morphometry.csv"))
    areas = [a for a in (float(row["MEAN(area)"]) for row in per_slice) if math.isfinite(a)]
    whole_cord = [m for m in csa_measurements(sr) if m["site"] is None]
    assert areas, "the CSV has no measured slice: the check below would be empty"
    assert len(whole_cord) == 1
    assert whole_cord[0]["unit"] == ("mm2", "UCUM") and whole_cord[0]["derivation"] == MEAN
    assert whole_cord[0]["value"] == pytest.approx(float(np.mean(areas)), rel=1e-12, abs=0)


def test_sr_has_one_csa_per_vertebral_level_as_the_per_level_csv(sagittal):
    sr = pydicom.dcmread(sagittal.path("_cord_morphometry_sr.dcm"))
    per_level = read_csv(sagittal.path("_cord_morphometry_per_level.csv"))
    expected = {f"C{int(row['VertLevel'])} vertebra": float(row["MEAN(area)"]) for row in per_level}
    expected = {site: value for site, value in expected.items() if math.isfinite(value)}
    measured = {m["site"]: m["value"] for m in csa_measurements(sr) if m["site"] is not None}
    assert expected and measured.keys() == expected.keys()
    for site, value in expected.items():
        assert measured[site] == pytest.approx(value, rel=1e-12, abs=0)


def test_highdicom_reads_the_sr_groups_as_the_csv(run):
    """The whole cord (mean CSA of the per-slice CSV) and, with levels, one group per level with its
    vertebra as finding site, each referencing segment 1 of the SEG."""
    seg = pydicom.dcmread(run.path("_cord_seg.dcm"), stop_before_pixels=True)
    groups = sr_groups(run.path("_cord_morphometry_sr.dcm"))
    areas = [
        a for a in (float(row["MEAN(area)"]) for row in read_csv(run.path("_cord_morphometry.csv"))) if math.isfinite(a)
    ]
    expected = [("Spinal cord", [], float(np.mean(areas)))]
    per_level = run.path("_cord_morphometry_per_level.csv")
    vertebrae = {2: "39976000", 3: "113205007", 4: "5329002", 5: "36978003"}  # SNOMED CT "C2 vertebra" ...
    for row in read_csv(per_level) if per_level.is_file() else []:
        level = int(row["VertLevel"])
        expected.append((f"Spinal cord at C{level}", [(vertebrae[level], "SCT")], float(row["MEAN(area)"])))
    assert [g["tracking"] for g in groups] == [name for name, _, _ in expected]
    for group, (_, sites, value) in zip(groups, expected, strict=True):
        assert group["sites"] == sites and group["segment"] == (seg.SOPInstanceUID, 1)
        area = group["numbers"][(AREA, "SCT")]
        assert area["unit"] == ("mm2", "UCUM") and area["derivation"] == (MEAN, "SCT")
        assert area["value"] == pytest.approx(value, rel=1e-12, abs=0)


def test_nifti_input_is_refused_before_any_work(data_dir, tmp_path, capsys, monkeypatch):
    import spineai.pipeline

    def must_not_run(*args, **kwargs):
        raise AssertionError("segmentation started for an input that cannot give a DICOM SEG")

    monkeypatch.setattr(spineai.pipeline, "segment", must_not_run)
    scan = data_dir / "sct-testing" / "t2" / "t2.nii.gz"
    out = tmp_path / "out"
    code = main(["segment", str(scan), "--out", str(out), "--dicom-seg"])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    assert err.count("\n") == 1 and f"{scan}: DICOM SEG output needs a DICOM series folder" in err
    assert not out.exists()


def test_missing_optional_dependency_names_the_install_command():
    with pytest.raises(SpineAIError, match=r"not_an_installed_module missing\): pip install 'spineai\[dicom\]'"):
        require_dicom_extra("not_an_installed_module")


def test_empty_result_gives_a_seg_of_every_frame_and_an_sr_without_values(axial):
    from spineai.dicom.seg import build_segmentation
    from spineai.dicom.series import read_source_series
    from spineai.dicom.sr import build_measurement_report

    image = read_image(axial.series.folder)
    empty = sitk.Image(image.GetSize(), sitk.sitkUInt8)
    empty.CopyInformation(image)
    sidecar = json.loads(axial.path("_cord_seg.json").read_text())
    source = read_source_series(axial.series.folder, image)
    seg = build_segmentation(source, empty, "cord", sidecar)
    sr = build_measurement_report(source, seg, "cord", {"per_slice": []}, sidecar)
    assert int(seg.NumberOfFrames) == image.GetDepth() and not seg.pixel_array.any()
    assert csa_measurements(sr) == []


# --- reading back, with pydicom only ------------------------------------------------------------


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def content_items(dataset):
    for item in dataset.get("ContentSequence", []):
        yield item
        yield from content_items(item)


def code_of(item, attribute="ConceptNameCodeSequence") -> str | None:
    return item[attribute][0].CodeValue if attribute in item else None


def csa_measurements(sr) -> list[dict]:
    """Every NUM item "Area" with its value, unit, derivation and its group's finding site (meaning), as stored."""
    found = []
    for group in content_items(sr):
        if code_of(group) != MEASUREMENT_GROUP:
            continue
        children = list(group.ContentSequence)
        sites = [child for child in children if code_of(child) == FINDING_SITE]
        for item in children:
            if item.ValueType == "NUM" and code_of(item) == AREA:
                value = item.MeasuredValueSequence[0]
                unit = value.MeasurementUnitsCodeSequence[0]
                derivation = {code_of(child): child for child in item.get("ContentSequence", [])}.get(DERIVATION)
                found.append(
                    {
                        "value": float(value.NumericValue),
                        "unit": (unit.CodeValue, unit.CodingSchemeDesignator),
                        "derivation": code_of(derivation, "ConceptCodeSequence") if derivation is not None else None,
                        "site": sites[0].ConceptCodeSequence[0].CodeMeaning if sites else None,
                    }
                )
    return found
