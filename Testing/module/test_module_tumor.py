"""The tumour task in the module: overlapping cord and tumour segments, the tumour table, edits, no tumour.

The engine is injected (``SpineAILogic(engine=...)``) so that these tests do not depend on the
tumour network's weights: its result is a real T1w (ivadomed-unf01, 1 mm isotropic) labelled with
its manual cord mask and a box of tumour straddling the cord's posterior edge, in the engine's bit
flags (1 cord, 2 tumour outside the cord, 3 tumour inside the cord): the anterior half of the box
lies in the cord (intramedullary voxels, in both segments), the posterior half outside it.
"""

import math

import mrml_app
import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import slicerio
from SpineAILib import SpineAILogic
from SpineAILib.Logic import segmentsLabelMap, taskLabel
from SpineAILib.Measurements import MEASUREMENTS
from SpineAILib.MeasurementTable import CHART_REFERENCE, tableColumns, tableFlags, tableRows
from SpineAILib.SceneTransaction import nodeIDs
from SpineAILib.SegmentationNodes import contrastNote, isEditedSinceCreated
from SpineAILib.VolumeConversion import imageOnVolumeGrid, volumeToImage

from spineai.errors import InputError
from spineai.io import OutputSet
from spineai.measure.tumor import COLUMN_UNITS, TUMOR_COLUMNS, tumor_table
from spineai.orientation import canonical_array, from_canonical, to_canonical
from spineai.pipeline import SegmentationResult
from spineai.tasks import TASKS
from spineai.tasks.tumor import input_appearance

T1 = "ivadomed-unf01/sub-unf01_T1w.nii.gz"
T1_CORD = "ivadomed-unf01/sub-unf01_T1w_seg-manual.nii.gz"
T2 = "ivadomed-unf01/sub-unf01_T2w.nii.gz"
T2_CORD = "ivadomed-unf01/sub-unf01_T2w_seg-manual.nii.gz"
CORD_ID, TUMOR_ID = "spinal_cord", "spinal_tumour"
BOX = (4, 4, 4)  # tumour box in canonical voxels (z I->S, y P->A, x R->L)
COLUMNS = [*TUMOR_COLUMNS, "expected_contrast"]
EXPECTED = "Gd-enhanced T1w"


@pytest.fixture
def scan(mrml, data_dir):
    return mrml_app.loadIntoStudy(data_dir / T1)


def manual_cord(path) -> np.ndarray:
    return canonical_array(to_canonical(sitk.ReadImage(str(path)))) > 0


def straddling_box(cord: np.ndarray) -> tuple:
    """A BOX in the middle slices whose anterior half lies in the cord and posterior half outside it."""
    z0, half = cord.shape[0] // 2 - BOX[0] // 2, BOX[1] // 2
    for y0, x0 in np.ndindex(cord.shape[1] - BOX[1], cord.shape[2] - BOX[2]):
        box = np.s_[z0 : z0 + BOX[0], y0 : y0 + BOX[1], x0 : x0 + BOX[2]]
        if cord[box][:, half:].all() and not cord[box][:, :half].any():  # y runs P->A
            return box
    raise AssertionError("no box straddles the cord's posterior edge")


def bit_flags(cord: np.ndarray, tumor: np.ndarray) -> np.ndarray:
    """The tumour task's label map: 1 cord, 2 tumour outside the cord, 3 tumour inside the cord."""
    return (cord.astype(np.uint8) | (tumor.astype(np.uint8) << 1)).astype(np.uint8)


@pytest.fixture(scope="module")
def canonical_labels(data_dir) -> np.ndarray:
    cord = manual_cord(data_dir / T1_CORD)
    tumor = np.zeros_like(cord)
    tumor[straddling_box(cord)] = True
    return bit_flags(cord, tumor)


def engine_returning(labels: np.ndarray):
    """An engine (SpineAILogic's ``engine`` signature) whose tumour result is ``labels`` (canonical).

    Its sidecar has the engine's ``expected_contrast`` and ``input_appearance`` (computed by the
    engine's own function on the scan and the label map's cord).
    """

    def engine(image, task, device, progress=None, should_cancel=None, source="input image"):
        canonical = to_canonical(image)
        assert canonical.GetSize()[::-1] == labels.shape
        result = sitk.GetImageFromArray(labels)
        result.CopyInformation(canonical)
        sidecar = {"engine": "spineai", "task": task, "device": device, "seconds": 0.1}
        sidecar["expected_contrast"] = TASKS[task].expected_contrast
        sidecar["input_appearance"] = input_appearance(canonical_array(canonical), labels & 1)
        return SegmentationResult(from_canonical(result, image), task, TASKS[task].segments, sidecar)

    return engine


def segment_array(segmentation_node, segment_id, volume) -> np.ndarray:
    return slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, segment_id, volume) > 0


def label_map(segmentation_node, volume) -> sitk.Image:
    """The segmentation as the engine's bit-flag label map on the volume's grid, built independently of the module."""
    cord, tumor = (segment_array(segmentation_node, i, volume) for i in (CORD_ID, TUMOR_ID))
    return imageOnVolumeGrid(bit_flags(cord, tumor), volume)


def voxel_volume(volume) -> float:
    return float(np.prod(volume.GetSpacing()))


def total_row(table_node) -> dict:
    (total,) = [row for row in tableRows(table_node) if row["label"] == "total"]
    return total


def test_the_tumor_task_is_offered_as_segment_tumor():
    assert SpineAILogic().availableTasks()[:3] == ["cord", "lesion", "tumor"]
    assert [taskLabel(task) for task in ("cord", "lesion", "tumor")] == ["cord", "lesion", "tumour"]


def test_an_intramedullary_tumor_is_in_both_coded_segments(scan, canonical_labels, tmp_path):
    logic = SpineAILogic(engine=engine_returning(canonical_labels))
    segmentation_node, _ = logic.segment(scan, task="tumor", device="cpu")

    segmentation = segmentation_node.GetSegmentation()
    assert [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())] == [CORD_ID, TUMOR_ID]
    cord, tumor = segmentation.GetSegment(CORD_ID), segmentation.GetSegment(TUMOR_ID)
    assert (cord.GetName(), tumor.GetName()) == ("Spinal cord", "Spinal tumour")
    assert np.allclose(cord.GetColor(), (244 / 255, 214 / 255, 49 / 255))
    assert np.allclose(tumor.GetColor(), (162 / 255, 58 / 255, 214 / 255))
    assert not tumor.GetNameAutoGenerated() and not tumor.GetColorAutoGenerated()
    assert "~SCT^123037004^Anatomical Structure~SCT^2748008^Spinal cord~" in cord.GetTerminology()
    assert tumor.GetTerminology().endswith(
        "~SCT^49755003^Morphologically Altered Structure~SCT^108369006^Neoplasm~^^"
        "~Anatomic codes - DICOM master list~SCT^421060004^Spine~^^"
    )

    # Label 3 is cord and tumour at once: the segments overlap exactly there.
    engine_labels = sitk.GetArrayFromImage(logic.engine(volumeToImage(scan), "tumor", "cpu").mask)
    cord_voxels, tumor_voxels = (
        segment_array(segmentation_node, CORD_ID, scan),
        segment_array(segmentation_node, TUMOR_ID, scan),
    )
    assert np.array_equal(cord_voxels, np.isin(engine_labels, (1, 3)))
    assert np.array_equal(tumor_voxels, np.isin(engine_labels, (2, 3)))
    assert np.count_nonzero(cord_voxels & tumor_voxels) == math.prod(BOX) // 2
    # Measuring rebuilds exactly the engine's bit flags from the two segments.
    rebuilt = segmentsLabelMap(segmentation_node, scan, "tumor", MEASUREMENTS["tumor"])
    assert np.array_equal(sitk.GetArrayFromImage(rebuilt), engine_labels)

    assert segmentation_node.GetAttribute("SpineAI.Task") == "tumor"
    assert segmentation_node.GetName() == f"{scan.GetName()} tumor segmentation"
    assert contrastNote(segmentation_node) == f"model expects {EXPECTED}; this volume looks T1-like"

    # As written to disk (overlapping segments in separate layers) and read back by an independent reader.
    path = tmp_path / "tumour.seg.nrrd"
    assert slicer.util.saveNode(segmentation_node, str(path))
    saved = slicerio.read_segmentation(str(path))
    segments = {segment["id"]: segment for segment in saved["segments"]}
    assert segments[CORD_ID]["layer"] != segments[TUMOR_ID]["layer"]
    assert segments[TUMOR_ID]["terminology"]["type"] == ["SCT", "108369006", "Neoplasm"]
    assert segments[TUMOR_ID]["terminology"]["anatomicRegion"] == ["SCT", "421060004", "Spine"]
    both = slicerio.segment_mask(saved, CORD_ID) & slicerio.segment_mask(saved, TUMOR_ID)
    assert np.count_nonzero(both) == math.prod(BOX) // 2


def test_the_tumor_table_has_the_tumor_columns_the_expected_contrast_and_the_box(scan, canonical_labels, tmp_path):
    logic = SpineAILogic(engine=engine_returning(canonical_labels))
    segmentation_node, table_node = logic.segment(scan, task="tumor", device="cpu")

    assert table_node.GetName() == f"{scan.GetName()} tumor measurements"
    assert tableColumns(table_node) == COLUMNS
    assert all(table_node.GetColumnUnitLabel(column) == unit for column, unit in COLUMN_UNITS.items())
    assert table_node.GetColumnUnitLabel("volume") == "mm^3"
    rows = tableRows(table_node)
    assert [row["label"] for row in rows] == ["1", "total"]
    assert {row["expected_contrast"] for row in rows} == {EXPECTED}
    total = total_row(table_node)
    assert total["volume"] == pytest.approx(math.prod(BOX) * voxel_volume(scan), rel=1e-6)
    assert total["fraction_in_cord"] == 0.5 and total["compartment"] == "mixed"
    assert total["n_components"] == 1
    assert total["enhancement_ratio"] > 0  # the scan was passed: ratio of tumour to tumour-free cord
    flags = tableFlags(table_node)
    assert flags["tumor_found"] and flags["cord_found"] and flags["n_components"] == 1
    assert flags["expected_contrast"] == EXPECTED
    assert table_node.GetNodeReference(CHART_REFERENCE) is None  # one row per tumour: nothing to plot
    assert segmentation_node.GetNodeReference("SpineAI.Measurements") is table_node

    # The exported CSV is byte for byte what the engine writes for the same label map and scan.
    written = logic.exportCSV(table_node, tmp_path / "tumor.csv")
    image = imageOnVolumeGrid(slicer.util.arrayFromVolume(scan), scan)
    engine_rows, _ = tumor_table(label_map(segmentation_node, scan), image)
    with OutputSet(tmp_path / "engine") as out:
        engine_csv = out.write_csv(
            [{**row, "expected_contrast": EXPECTED} for row in engine_rows], "tumor.csv", COLUMNS
        )
    assert written.read_bytes() == engine_csv.read_bytes()


def test_erasing_the_part_outside_the_cord_makes_it_intramedullary_and_a_rerun_keeps_the_edit(scan, canonical_labels):
    logic = SpineAILogic(engine=engine_returning(canonical_labels))
    first, _ = logic.segment(scan, task="tumor", device="cpu")
    segmentation_node, table_node = logic.segment(scan, task="tumor", device="cpu")
    assert not slicer.mrmlScene.IsNodePresent(first)  # untouched: replaced
    assert not isEditedSinceCreated(segmentation_node, scan)

    cord, tumor = segment_array(segmentation_node, CORD_ID, scan), segment_array(segmentation_node, TUMOR_ID, scan)
    slicer.util.updateSegmentBinaryLabelmapFromArray((tumor & cord).astype(np.uint8), segmentation_node, TUMOR_ID, scan)
    assert isEditedSinceCreated(segmentation_node, scan)
    assert np.array_equal(segment_array(segmentation_node, CORD_ID, scan), cord)  # the cord keeps the shared voxels
    assert logic.updateMeasurements(segmentation_node, scan, task="tumor") is table_node
    total = total_row(table_node)
    assert total["volume"] == pytest.approx(math.prod(BOX) // 2 * voxel_volume(scan), rel=1e-6)
    assert total["fraction_in_cord"] == 1.0 and total["compartment"] == "intramedullary"

    # A new run on the same scan never overwrites the edited result.
    rerun, rerun_table = logic.segment(scan, task="tumor", device="cpu")
    assert slicer.mrmlScene.IsNodePresent(segmentation_node) and rerun is not segmentation_node
    assert rerun.GetName() != segmentation_node.GetName()
    assert total_row(table_node)["compartment"] == "intramedullary"
    assert total_row(rerun_table)["compartment"] == "mixed"


def assert_no_tumor_table(table_node, cord_found=True) -> None:
    (row,) = tableRows(table_node)
    assert row["label"] == "total" and row["n_components"] == 0 and row["compartment"] == "no tumour"
    assert row["volume"] == row["craniocaudal_length"] == row["max_3d_diameter"] == 0.0
    assert row["expected_contrast"] == EXPECTED
    flags = tableFlags(table_node)
    assert flags["tumor_found"] is False and flags["cord_found"] is cord_found
    assert "no tumour" in flags["notes"]


def test_no_tumor_is_a_finding_not_an_error(scan, canonical_labels):
    # The engine finds cord and no tumour: the result has both segments, the tumour one empty.
    segmentation_node, table_node = SpineAILogic(engine=engine_returning(canonical_labels & 1)).segment(
        scan, task="tumor"
    )
    assert segmentation_node.GetSegmentation().GetSegment(TUMOR_ID) is not None
    assert not segment_array(segmentation_node, TUMOR_ID, scan).any()
    assert_no_tumor_table(table_node)

    # The user erases the tumour of a result: Update measurements reports no tumour.
    logic = SpineAILogic(engine=engine_returning(canonical_labels))
    segmentation_node, table_node = logic.segment(scan, task="tumor")
    empty = np.zeros_like(segment_array(segmentation_node, TUMOR_ID, scan), np.uint8)
    slicer.util.updateSegmentBinaryLabelmapFromArray(empty, segmentation_node, TUMOR_ID, scan)
    assert logic.updateMeasurements(segmentation_node, scan, task="tumor") is table_node
    assert_no_tumor_table(table_node)


def test_a_tumor_without_cord_is_measured_with_an_unknown_compartment(scan, canonical_labels):
    # The cord network fails on axial T1 (a known limit): the tumour is still segmented and measured.
    tumor_only = (canonical_labels & 2).astype(np.uint8)
    segmentation_node, table_node = SpineAILogic(engine=engine_returning(tumor_only)).segment(scan, task="tumor")
    assert not segment_array(segmentation_node, CORD_ID, scan).any()
    total = total_row(table_node)
    assert total["compartment"] == "unknown (no cord)" and math.isnan(total["fraction_in_cord"])
    assert total["volume"] == pytest.approx(math.prod(BOX) * voxel_volume(scan), rel=1e-6)
    assert tableFlags(table_node)["cord_found"] is False
    assert (
        contrastNote(segmentation_node)
        == f"model expects {EXPECTED}; this volume's contrast is unknown (no cord found)"
    )


def test_all_segments_erased_or_nothing_found_adds_nothing(scan, canonical_labels):
    logic = SpineAILogic(engine=engine_returning(canonical_labels))
    segmentation_node, table_node = logic.segment(scan, task="tumor")
    for segment_id in (CORD_ID, TUMOR_ID):
        empty = np.zeros_like(segment_array(segmentation_node, segment_id, scan), np.uint8)
        slicer.util.updateSegmentBinaryLabelmapFromArray(empty, segmentation_node, segment_id, scan)
    before_rows, before_ids = tableRows(table_node), nodeIDs(slicer.mrmlScene)
    with pytest.raises(InputError, match="'Spinal cord', 'Spinal tumour' segments are all empty"):
        logic.updateMeasurements(segmentation_node, scan, task="tumor")
    assert nodeIDs(slicer.mrmlScene) == before_ids and tableRows(table_node) == before_rows

    with pytest.raises(InputError, match="no spinal cord or spinal tumour found"):
        SpineAILogic(engine=engine_returning(np.zeros_like(canonical_labels))).segment(scan, task="tumor")
    assert nodeIDs(slicer.mrmlScene) == before_ids


def test_a_t2_where_gd_t1_is_expected_is_run_and_says_so(mrml, data_dir):
    # The issue: a T2 given to the Gd-T1 tumour model runs; the table and status say what it expects.
    t2 = mrml_app.loadIntoStudy(data_dir / T2)
    cord = manual_cord(data_dir / T2_CORD)
    tumor = np.zeros_like(cord)
    tumor[straddling_box(cord)] = True
    segmentation_node, table_node = SpineAILogic(engine=engine_returning(bit_flags(cord, tumor))).segment(
        t2, task="tumor"
    )
    assert contrastNote(segmentation_node) == f"model expects {EXPECTED}; this volume looks T2-like"
    assert {row["expected_contrast"] for row in tableRows(table_node)} == {EXPECTED}
