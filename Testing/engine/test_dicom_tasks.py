"""DICOM SEG and SR of the lesion, tumour and stenosis tasks, read back and compared value by value.

Each task runs once through the CLI (``segment SERIES --task T --dicom-seg``) on a real scan written
as an MR series: the held-out axial T2w of unf01 with one SYNTHETIC lesion painted into its manual
cord (lesion), the held-out axial T2*w of gm-challenge 9604 with one large SYNTHETIC intramedullary
tumour painted into its cord (tumour; the network is contrast-agnostic), and the lumbar T2 of ivd46
(stenosis). Then:

* the SEG, decoded with pydicom alone and again with highdicom, is the NIfTI label map of the same
  run, segment by segment as the task defines its segments (bit flags: overlapping segments);
* the SR, read with highdicom, has one group per CSV row, each number the CSV's, each grade the CSV's
  with its rule text, each finding site the row's level, and declares its private coding scheme;
* dciodvfy (dicom3tools) reports no error in either.

The cord task's SEG and SR: ``test_dicom_seg.py``.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest
import SimpleITK as sitk
from dicom_checks import (
    code_key,
    csv_number,
    dciodvfy_iod,
    dciodvfy_problems,
    expected_segment_volumes,
    seg_volumes_highdicom,
    seg_volumes_pydicom,
    sr_groups,
)
from dicom_series import MRSeries, write_mr_series

from spineai.cli import EXIT_USER_ERROR, main
from spineai.io import read_image
from spineai.orientation import canonical_array, spacing_zyx, to_canonical
from spineai.tasks import get_task
from spineai.terminology import TERMINOLOGY_CSV

PRIVATE = "99SPINEAI"
STANDARD_SCHEMES = {"SCT", "DCM", "UCUM", "LN", "RFC5646"}  # PS3.16 Table 8-1; RFC5646: the language
UNF01_T2 = "ivadomed-unf01/sub-unf01_T2w.nii.gz"
UNF01_CORD = "ivadomed-unf01/sub-unf01_T2w_seg-manual.nii.gz"
GM_9604 = "gm-challenge/sub-9604/anat/sub-9604_run-1_T2starw.nii.gz"
GM_9604_CORD = "gm-challenge/derivatives/labels/sub-9604/anat/sub-9604_run-1_T2starw_seg-manual.nii.gz"


@dataclass
class Run:
    task: str
    series: MRSeries
    out: Path
    stem: str
    extra: dict

    def path(self, suffix: str) -> Path:
        return self.out / f"{self.stem}{suffix}"

    @property
    def seg_path(self) -> Path:
        return self.path(f"_{self.task}_seg.dcm")

    @property
    def sr_path(self) -> Path:
        return self.path(f"_{self.task}_sr.dcm")

    def labels(self) -> sitk.Image:
        return sitk.ReadImage(str(self.path(f"_{self.task}_seg.nii.gz")))

    def rows(self) -> list[dict]:
        with open(self.path(f"_{self.task}.csv"), newline="", encoding="utf-8") as handle:
            return list(csv.DictReader(handle))


def segment_series(task: str, image: sitk.Image, base: Path, extra: dict | None = None) -> Run:
    series = write_mr_series(image, base / f"{task}_series", description=f"{task} test series")
    out = base / "out"
    argv = ["segment", series.folder, "--task", task, "--out", out, "--device", "cpu", "--dicom-seg"]
    assert main([str(a) for a in argv]) == 0
    return Run(task, series, out, series.folder.name, extra or {})


def painted(data_dir, scan: str, cord_mask: str, synthesise, shape, seed: int):
    """A real scan (canonical) with one synthetic finding painted into its manual cord: (image, finding, cord)."""
    image = to_canonical(read_image(data_dir / scan))
    cord = canonical_array(to_canonical(read_image(data_dir / cord_mask))) > 0
    array, finding = synthesise(
        canonical_array(image, np.float32), cord, spacing_zyx(image), np.random.default_rng(seed), 1, shape
    )
    result = sitk.GetImageFromArray(array)
    result.CopyInformation(image)
    return result, finding.astype(bool), cord


@pytest.fixture(scope="module")
def lesion_run(data_dir, tmp_path_factory) -> Run:
    from spineai.training.synthetic_lesions import LesionShape, synthesise_lesions

    clear = LesionShape(
        length_mm=(20.0, 20.0), radius_mm=(2.5, 2.5), contrast=(1.0, 1.0), haemorrhage_probability=0.0, irregularity=0.0
    )
    image, _, _ = painted(data_dir, UNF01_T2, UNF01_CORD, synthesise_lesions, clear, seed=1)
    return segment_series("lesion", image, tmp_path_factory.mktemp("lesion"))


@pytest.fixture(scope="module")
def tumor_run(data_dir, tmp_path_factory) -> Run:
    from spineai.training.synthetic_tumors import TumorShape, synthesise_tumors

    large = TumorShape(
        length_mm=(30.0, 30.0),
        radius_mm=(5.0, 5.0),
        enhancement=(1.5, 1.5),
        intramedullary_probability=1.0,
        core_probability=0.0,
        irregularity=0.0,
    )
    image, tumor, cord = painted(data_dir, GM_9604, GM_9604_CORD, synthesise_tumors, large, seed=3)
    return segment_series("tumor", image, tmp_path_factory.mktemp("tumor"), {"tumour": tumor, "cord": cord})


@pytest.fixture(scope="module")
def stenosis_run(data_dir, tmp_path_factory) -> Run:
    from spineai.training.lumbar_ivd import with_documented_axes

    image = with_documented_axes(sitk.ReadImage(str(data_dir / "lumbar-ivd" / "ivd46_t2.nii.gz")))
    return segment_series("stenosis", image, tmp_path_factory.mktemp("stenosis"))


@pytest.fixture(params=["lesion", "tumor", "stenosis"])
def run(request) -> Run:
    return request.getfixturevalue(f"{request.param}_run")


# --- SEG ------------------------------------------------------------------------------------------


def test_seg_and_sr_join_the_run_outputs(run):
    sidecar = json.loads(run.path(f"_{run.task}_seg.json").read_text())
    assert sidecar["outputs"]["dicom_seg"] == run.seg_path.name
    assert sidecar["outputs"]["dicom_sr"] == run.sr_path.name
    assert all((run.out / name).is_file() for name in sidecar["outputs"].values())


def test_seg_has_every_segment_of_the_task_coded_as_in_the_terminology_table(run):
    seg = pydicom.dcmread(run.seg_path, stop_before_pixels=True)
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == run.series.series_uid
    assert seg.StudyInstanceUID == run.series.study_uid and seg.SegmentationType == "BINARY"
    with open(TERMINOLOGY_CSV, newline="", encoding="utf-8") as handle:
        table = {row["Segment"]: row for row in csv.DictReader(handle) if row["Task"] == run.task}
    names = [name for _, name in get_task(run.task).segments]
    assert [int(s.SegmentNumber) for s in seg.SegmentSequence] == list(range(1, len(names) + 1))
    assert [s.SegmentLabel for s in seg.SegmentSequence] == names
    for segment in seg.SegmentSequence:
        row = table[segment.SegmentLabel]
        for prefix, attribute in (("Category", "SegmentedPropertyCategory"), ("Type", "SegmentedPropertyType")):
            code = segment[f"{attribute}CodeSequence"][0]
            assert (code.CodingSchemeDesignator, code.CodeValue, code.CodeMeaning) == (
                row[f"{prefix}Scheme"],
                row[f"{prefix}Code"],
                row[f"{prefix}Meaning"],
            )
        regions = [(r.CodingSchemeDesignator, r.CodeValue) for r in segment.get("AnatomicRegionSequence", [])]
        assert regions == ([(row["RegionScheme"], row["RegionCode"])] if row["RegionCode"] else [])
        assert segment.SegmentAlgorithmType == "AUTOMATIC"


def test_seg_read_with_pydicom_alone_is_the_nifti_label_map_segment_by_segment(run):
    labels = run.labels()
    expected = expected_segment_volumes(run.task, sitk.GetArrayFromImage(labels))
    assert any(volume.any() for volume in expected.values()), "an empty result would make this check trivial"
    decoded = seg_volumes_pydicom(pydicom.dcmread(run.seg_path), labels, run.series.files)
    assert decoded.keys() == expected.keys()
    for number, volume in expected.items():
        assert np.array_equal(decoded[number], volume), f"segment {number}"


def test_seg_read_with_highdicom_is_the_nifti_label_map_segment_by_segment(run):
    labels = run.labels()
    expected = expected_segment_volumes(run.task, sitk.GetArrayFromImage(labels))
    decoded = seg_volumes_highdicom(run.seg_path, labels, run.series.files)
    assert decoded.keys() == expected.keys()
    for number, volume in expected.items():
        assert np.array_equal(decoded[number], volume), f"segment {number}"


def test_stenosis_csf_overlaps_the_dural_sac_in_the_seg(stenosis_run):
    """Bit flags 1 sac, 2 CSF: CSF lies inside the sac, so the two SEG segments share voxels."""
    labels = stenosis_run.labels()
    decoded = seg_volumes_pydicom(pydicom.dcmread(stenosis_run.seg_path), labels, stenosis_run.series.files)
    both = (decoded[1] > 0) & (decoded[2] > 0)
    assert both.any()
    assert np.array_equal(both, (sitk.GetArrayFromImage(labels) & 3) == 3)


def test_tumor_inside_the_cord_is_in_both_overlapping_segments(tumor_run):
    """Independent of what the model found: the manual cord and the painted intramedullary tumour as
    bit flags (3 = tumour in cord) must come back as two segments that overlap exactly there."""
    from spineai.dicom.results import encoded
    from spineai.dicom.seg import build_segmentation
    from spineai.dicom.series import read_source_series

    image = read_image(tumor_run.series.folder)
    canonical = to_canonical(image)
    flags = tumor_run.extra["cord"].astype(np.uint8) | (tumor_run.extra["tumour"].astype(np.uint8) << 1)
    label_map = sitk.GetImageFromArray(flags)
    label_map.CopyInformation(canonical)
    from spineai.orientation import from_canonical

    label_map = from_canonical(label_map, image)
    sidecar = json.loads(tumor_run.path("_tumor_seg.json").read_text())
    seg = build_segmentation(read_source_series(tumor_run.series.folder, image), label_map, "tumor", sidecar)
    path = tumor_run.out.parent / "manual_tumour_seg.dcm"
    path.write_bytes(encoded(seg))
    decoded = seg_volumes_pydicom(pydicom.dcmread(path), label_map, tumor_run.series.files)
    array = sitk.GetArrayFromImage(label_map)
    assert (array == 3).any()
    assert np.array_equal((decoded[1] > 0) & (decoded[2] > 0), array == 3)
    assert np.array_equal(decoded[2] > 0, (array & 2) > 0)
    assert dciodvfy_problems(path) == []


# --- SR -------------------------------------------------------------------------------------------


def test_sr_has_one_group_per_csv_row_with_the_csv_values(run):
    """Every mapped column of every row: the number (to the 16-character DICOM decimal string), its
    UCUM unit and concept; every grade with the CSV's rule text; the group references the task's segment."""
    from spineai.dicom.report_content import report_content

    content = report_content(run.task)
    rows = run.rows()
    groups = sr_groups(run.sr_path)
    seg = pydicom.dcmread(run.seg_path, stop_before_pixels=True)
    segment = next(int(s.SegmentNumber) for s in seg.SegmentSequence if s.SegmentLabel == content.segment)
    assert len(groups) == len(rows) and rows
    checked = 0
    for row, group in zip(rows, groups, strict=True):
        assert group["segment"] == (seg.SOPInstanceUID, segment)
        assert row_name(run.task, row) in group["tracking"]
        expected_numbers = {}
        for number in content.numbers:
            value = csv_number(row.get(number.column, ""))
            if value is not None:
                expected_numbers[code_key(number.concept)] = value
                measured = group["numbers"][code_key(number.concept)]
                assert measured["value"] == pytest.approx(value, rel=1e-12, abs=1e-13), number.column
                assert measured["unit"] == code_key(number.unit)
                checked += 1
        assert group["numbers"].keys() == expected_numbers.keys()  # nothing more, nothing invented
        for grade in content.grades:
            written = group["grades"].get(code_key(grade.concept))
            if not row.get(grade.column):
                assert written is None
                continue
            assert written["value"] == code_key(grade.values[row[grade.column]])
            if grade.rule_column:
                assert written["rule"] == [row[grade.rule_column]]
                assert written["rule_relationship"] == ["HAS PROPERTIES"]
    assert checked >= len(rows)


def row_name(task: str, row: dict) -> str:
    if task == "stenosis":
        return row["level"]
    return "All" if row["label"] == "total" else row["label"]


def test_lesion_sr_carries_volume_length_width_damage_ratio_and_bridges(lesion_run):
    (lesion, total) = sr_groups(lesion_run.sr_path)
    row = lesion_run.rows()[0]
    assert lesion["finding"] == ("52988006", "SCT") and lesion["sites"] == [("2748008", "SCT")]
    numbers = lesion["numbers"]
    assert numbers[("118565006", "SCT")]["unit"] == ("mm3", "UCUM")  # volume
    assert numbers[("118565006", "SCT")]["value"] == pytest.approx(float(row["volume"]), rel=1e-12)
    assert numbers[("410668003", "SCT")]["value"] == pytest.approx(float(row["length"]), rel=1e-12)
    assert numbers[("103355008", "SCT")]["value"] == pytest.approx(float(row["width"]), rel=1e-12)
    assert numbers[("DAMAGE-RATIO-MAX", PRIVATE)]["value"] == pytest.approx(float(row["max_axial_damage_ratio"]))
    bridges = (("interpolated_dorsal_bridge_width", "BRIDGE-DORSAL"), ("dorsal_bridge_ratio", "BRIDGE-DORS-RAT"))
    for column, code in bridges:
        assert numbers[(code, PRIVATE)]["value"] == pytest.approx(float(row[column]), abs=1e-12)
    assert lesion["grades"][("BASIC-PROPOSAL", PRIVATE)]["meaning"].startswith(f"BASIC {row['BASIC_proposed'][0]}")
    assert total["tracking"] == "All spinal cord injury lesions"


def test_tumor_sr_carries_volume_diameters_and_the_compartment_as_a_coded_finding(tumor_run):
    groups = sr_groups(tumor_run.sr_path)
    for row, group in zip(tumor_run.rows(), groups, strict=True):
        assert group["finding"] == ("108369006", "SCT")  # Neoplasm
        assert group["numbers"][("118565006", "SCT")]["value"] == pytest.approx(float(row["volume"]), rel=1e-12)
        feret = group["numbers"][("81827009", "SCT")]  # Diameter, derivation Maximum
        assert feret["derivation"] == ("56851009", "SCT")
        assert feret["value"] == pytest.approx(float(row["max_3d_diameter"]), rel=1e-12)
        compartment = group["grades"][("COMPARTMENT", PRIVATE)]
        expected = {"intramedullary": "INTRAMEDULLARY", "outside the cord": "OUTSIDE-CORD", "mixed": "MIXED-COMPART"}
        assert compartment["value"] == (expected[row["compartment"]], PRIVATE)


def test_stenosis_sr_grades_each_disc_level_with_its_rule(stenosis_run):
    disc_levels = {"L1-L2": "243920003", "L2-L3": "243921004", "L3-L4": "243922006", "L4-L5": "243923001"}
    disc_levels["L5-S1"] = "243927000"  # SNOMED CT "Level of L5/S1 intervertebral disc"
    groups = sr_groups(stenosis_run.sr_path)
    rows = stenosis_run.rows()
    assert [row["level"] for row in rows] == list(disc_levels)
    for row, group in zip(rows, groups, strict=True):
        assert group["sites"] == [(disc_levels[row["level"]], "SCT")]
        assert group["finding"] == ("18545000", "SCT")  # Dura mater
        if row["assessable"] != "True":
            assert group["notes"] == {("NOT-ASSESSABLE", PRIVATE): row["not_assessable_reason"]}
            continue
        area = group["numbers"][("42798000", "SCT")]
        assert area["unit"] == ("mm2", "UCUM") and area["value"] == float(row["dural_sac_area_mm2"])
        assert group["numbers"][("DSAC-AP-DIAM", PRIVATE)]["value"] == float(row["ap_diameter_mm"])
        schizas = group["grades"][("SCHIZAS-GRADE", PRIVATE)]
        assert schizas["meaning"] == f"Schizas grade {row['schizas_grade']}"
        assert schizas["rule"] == [row["schizas_rule"]]
        lee = group["grades"][("LEE-GRADE", PRIVATE)]
        assert lee["meaning"] == f"Lee grade {row['lee_grade']}" and lee["rule"] == [row["lee_rule"]]


def test_a_level_not_assessable_says_why_and_has_no_measurement(stenosis_run):
    from spineai.dicom.seg import build_segmentation
    from spineai.dicom.series import read_source_series
    from spineai.dicom.sr import build_measurement_report

    image = read_image(stenosis_run.series.folder)
    rows = stenosis_run.rows()
    rows[-1] = {"level": "L5-S1", "assessable": False, "not_assessable_reason": "level not found"}
    sidecar = json.loads(stenosis_run.path("_stenosis_seg.json").read_text())
    source = read_source_series(stenosis_run.series.folder, image)
    seg = build_segmentation(source, stenosis_run.labels(), "stenosis", sidecar)
    sr = build_measurement_report(source, seg, "stenosis", {"table": rows}, sidecar)
    path = stenosis_run.out.parent / "not_assessable_sr.dcm"
    sr.save_as(path, enforce_file_format=True)
    last = sr_groups(path)[-1]
    assert last["notes"] == {("NOT-ASSESSABLE", PRIVATE): "level not found"}
    assert last["numbers"] == {} and last["grades"] == {}


def test_sr_declares_the_private_scheme_and_uses_no_other_nonstandard_one(run):
    sr = pydicom.dcmread(run.sr_path)
    (declared,) = sr.CodingSchemeIdentificationSequence
    assert declared.CodingSchemeDesignator == PRIVATE and declared.CodingSchemeName == "SpineAI private codes"
    used = set()

    def collect(dataset):
        for element in dataset:
            if element.VR == "SQ":
                for item in element.value:
                    if "CodingSchemeDesignator" in item:
                        used.add(str(item.CodingSchemeDesignator))
                    collect(item)

    collect(sr)
    assert PRIVATE in used and used <= STANDARD_SCHEMES | {PRIVATE}


def test_dciodvfy_finds_no_error_in_the_seg_and_the_sr(run):
    assert dciodvfy_iod(run.seg_path) == "Segmentation"
    assert dciodvfy_iod(run.sr_path) == "Comprehensive3DSR"
    assert dciodvfy_problems(run.seg_path) == []
    assert dciodvfy_problems(run.sr_path) == []


# --- mapping ------------------------------------------------------------------------------------


def test_tumor_levels_become_vertebra_finding_sites():
    from spineai.dicom.report_content import tumor_sites

    sites = [(code.value, code.scheme_designator) for code in tumor_sites({"levels": "C3-C5,C7"})]
    assert sites == [("113205007", "SCT"), ("5329002", "SCT"), ("36978003", "SCT"), ("87391001", "SCT")]
    assert tumor_sites({"levels": ""}) == ()
    assert [c.value for c in tumor_sites({"levels": "L5-S1"})] == ["49668003", "S1-VERTEBRA"]


def test_a_task_without_sr_mapping_is_refused_before_any_work(lesion_run, tmp_path, capsys, monkeypatch):
    import spineai.dicom.report_content
    import spineai.pipeline

    def must_not_run(*args, **kwargs):
        raise AssertionError("segmentation started for a task that cannot be written as SR")

    monkeypatch.setattr(spineai.pipeline, "segment", must_not_run)
    mappings = dict(spineai.dicom.report_content.REPORT_CONTENT)
    del mappings["lesion"]
    monkeypatch.setattr(spineai.dicom.report_content, "REPORT_CONTENT", mappings)
    out = tmp_path / "out"
    argv = ["segment", str(lesion_run.series.folder), "--task", "lesion", "--out", str(out), "--dicom-seg"]
    code = main(argv)
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR
    expected = "DICOM SR output has no mapping for the 'lesion' task (it exists for: cord, tumor, stenosis)"
    assert err == f"spineai: error: {expected}\n"
    assert not out.exists()
