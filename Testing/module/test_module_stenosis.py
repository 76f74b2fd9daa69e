"""The stenosis task in the module: coded sac/CSF/fat segments, disc levels as a point list, the per-level table.

The engine is injected (``SpineAILogic(engine=...)``), so no network runs: its result is an analytic
phantom on an axial stack (0.5 x 0.5 x 4 mm): a dural sac elliptic cylinder (semi-axes 9 x 6.5 mm,
area pi*a*b = 183.8 mm2) full of CSF except a dorsal bundle of roots, and posterior epidural fat
behind it, in the engine's bit flags (1 sac, 2 CSF, 4 fat). Without a point list the fake engine
"finds" five discs 36 mm apart on the sac's axis, as the disc network would report them.
"""

import json
import math
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
import vtk
from SpineAILib import JobState, SegmentationJob, SpineAILogic
from SpineAILib.LevelPoints import LEVELS_REFERENCE, levelPointsFromMarkups, levelRecords
from SpineAILib.Logic import segmentsLabelMap, taskLabel
from SpineAILib.Measurements import MEASUREMENTS
from SpineAILib.MeasurementTable import CHART_REFERENCE, tableColumns, tableFlags, tableRows
from SpineAILib.SegmentationNodes import isEditedSinceCreated
from SpineAILib.VolumeConversion import addVolumeFromImage, volumeToImage

from spineai.errors import InputError
from spineai.io import OutputSet
from spineai.measure.stenosis import COLUMN_UNITS, STENOSIS_COLUMNS, stenosis_table
from spineai.pipeline import SegmentationResult
from spineai.stenosis.levels import CODES_BY_NAME, LevelPoint, read_level_points, with_normals
from spineai.tasks import TASKS

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "engine"))
from phantoms import elliptic_cylinder, grid  # noqa: E402

SIZE, SPACING = (200, 200, 45), (0.5, 0.5, 4.0)  # 100 x 100 x 180 mm, slices at z = -88, -84, ... 88
AXIAL_STACK = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)  # LPS
SAC_RL, SAC_AP = 9.0, 6.5
SAC_AREA = math.pi * SAC_RL * SAC_AP
ROOTS_RL, ROOTS_AP, ROOTS_Y = 4.0, 2.0, 3.5  # a dorsal bundle of roots (no CSF), centre 3.5 mm posterior
LEVEL_Z = (72.0, 36.0, 0.0, -36.0, -72.0)  # L1-L2 ... L5-S1 on slices, 36 mm apart (a lumbar spacing)
DISC_Y = -25.0  # the level points lie on the disc centres, 25 mm in front of the sac axis
SEGMENT_IDS = ["dural_sac", "cerebrospinal_fluid", "posterior_epidural_fat"]
LEVELS = ["L1-L2", "L2-L3", "L3-L4", "L4-L5", "L5-S1"]


def cylinder(reference, a, b, centre=(0.0, 0.0, 0.0)) -> np.ndarray:
    """An S-I elliptic cylinder on the stack: one slice voxelised (``phantoms``), repeated on every slice."""
    size = reference.GetSize()
    one = grid((size[0], size[1], 1), reference.GetSpacing(), reference.GetDirection())
    section = sitk.GetArrayFromImage(elliptic_cylinder(one, a, b, centre_lps=centre))[0] > 0
    return np.repeat(section[None], size[2], axis=0)


@pytest.fixture(scope="module")
def phantom():
    """(scan, label map) on the axial stack: bits 1 sac, 2 CSF (the sac without the roots), 4 fat."""
    reference = grid(SIZE, SPACING, AXIAL_STACK)
    sac = cylinder(reference, SAC_RL, SAC_AP)
    roots = cylinder(reference, ROOTS_RL, ROOTS_AP, (0.0, ROOTS_Y, 0.0)) & sac
    fat = cylinder(reference, 5.0, 2.0, (0.0, SAC_AP + 2.5, 0.0)) & ~sac
    csf = sac & ~roots
    labels = (sac * 1 | csf * 2 | fat * 4).astype(np.uint8)
    image = sitk.GetImageFromArray((100 + 800 * csf + 500 * fat + 200 * roots).astype(np.int16))
    image.CopyInformation(reference)
    labelMap = sitk.GetImageFromArray(labels)
    labelMap.CopyInformation(reference)
    return image, labelMap


def found_levels() -> list[LevelPoint]:
    """What the disc network would report: a point and a normal (S-I) per disc, L1-L2 on top."""
    return [LevelPoint(21 + i, (0.0, DISC_Y, z), (0.0, 0.0, 1.0), "disc network") for i, z in enumerate(LEVEL_Z)]


class FakeEngine:
    """SpineAILogic's engine: returns the phantom's label map; records the level points it was given."""

    def __init__(self, labelMap):
        self.labelMap = labelMap
        self.calls = []

    def __call__(self, image, task, device, progress=None, should_cancel=None, source="input image", **options):
        assert task == "stenosis" and image.GetSize() == self.labelMap.GetSize()
        # As the Logic's engine it is given disc_levels; as spineai.pipeline.segment, the task's inputs.
        points = options.get("disc_levels") or getattr(options.get("inputs"), "disc_levels", None)
        self.calls.append(points)
        levels = with_normals(points) if points else found_levels()
        sidecar = {"engine": "spineai", "task": task, "device": device, "seconds": 0.1}
        sidecar["levels_from"] = "points given" if points else "disc network on the scan"
        sidecar["disc_levels"] = levelRecords(levels)
        return SegmentationResult(self.labelMap, task, TASKS[task].segments, sidecar)


@pytest.fixture
def scan(mrml, phantom):
    return addVolumeFromImage(phantom[0], "lumbar T2 axial")


@pytest.fixture
def engine(phantom):
    return FakeEngine(phantom[1])


def point_list(name: str, levels: dict[str, tuple], transform=None):
    """A markups point list with points at RAS positions, labelled as given."""
    node = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    if transform is not None:
        node.SetAndObserveTransformNodeID(transform.GetID())
    for label, ras in levels.items():
        node.AddControlPoint(vtk.vtkVector3d(*ras), label)
    return node


def ras(lps) -> tuple:
    return (-lps[0], -lps[1], lps[2])


def segment_array(segmentation_node, segment_id, volume) -> np.ndarray:
    return slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, segment_id, volume) > 0


def set_segment(segmentation_node, segment_id, volume, voxels) -> None:
    slicer.util.updateSegmentBinaryLabelmapFromArray(voxels.astype(np.uint8), segmentation_node, segment_id, volume)


def rows_by_level(table_node) -> dict[str, dict]:
    return {row["level"]: row for row in tableRows(table_node)}


def test_stenosis_is_offered_as_segment_dural_sac():
    assert "stenosis" in SpineAILogic().availableTasks()
    assert taskLabel("stenosis") == "dural sac"
    assert MEASUREMENTS["stenosis"].needsLevels


def test_segments_are_coded_coloured_overlapping_and_rebuild_the_engine_label_map(scan, engine, phantom):
    segmentation_node, _ = SpineAILogic(engine=engine).segment(scan, task="stenosis", device="cpu")

    segmentation = segmentation_node.GetSegmentation()
    ids = [segmentation.GetNthSegmentID(i) for i in range(segmentation.GetNumberOfSegments())]
    assert ids == SEGMENT_IDS
    sac, csf, fat = (segmentation.GetSegment(segment_id) for segment_id in SEGMENT_IDS)
    assert [s.GetName() for s in (sac, csf, fat)] == ["Dural sac", "Cerebrospinal fluid", "Posterior epidural fat"]
    assert np.allclose(sac.GetColor(), (255 / 255, 244 / 255, 209 / 255))  # Slicer's dura mater colour
    assert np.allclose(csf.GetColor(), (85 / 255, 188 / 255, 255 / 255))  # Slicer's CSF light blue
    assert np.allclose(fat.GetColor(), (230 / 255, 220 / 255, 70 / 255))  # Slicer's fat yellow
    assert "~SCT^123037004^Anatomical Structure~SCT^18545000^Dura mater~" in sac.GetTerminology()
    assert csf.GetTerminology().startswith(
        "Segmentation category and type - DICOM master list~SCT^123037004^Anatomical Structure"
        "~SCT^65216001^Cerebrospinal Fluid~"
    )
    assert fat.GetTerminology().endswith(
        "~SCT^85756007^Tissue~SCT^248300009^Body fat~^^"
        "~Anatomic codes - DICOM master list~SCT^122496007^Lumbar spine~^^"
    )

    # The CSF lies inside the sac: both segments hold those voxels (bits 1|2 = 3).
    expected = sitk.GetArrayFromImage(phantom[1])
    assert np.array_equal(segment_array(segmentation_node, "dural_sac", scan), (expected & 1) > 0)
    assert np.array_equal(segment_array(segmentation_node, "cerebrospinal_fluid", scan), (expected & 2) > 0)
    rebuilt = segmentsLabelMap(segmentation_node, scan, "stenosis", MEASUREMENTS["stenosis"])
    assert np.array_equal(sitk.GetArrayFromImage(rebuilt), expected)
    assert segmentation_node.GetAttribute("SpineAI.Task") == "stenosis"


def test_found_levels_become_a_point_list_and_the_table_grades_each_level(scan, engine, tmp_path):
    segmentation_node, table_node = SpineAILogic(engine=engine).segment(scan, task="stenosis", device="cpu")
    assert engine.calls == [None]  # no point list chosen: the engine finds the discs

    levels_node = segmentation_node.GetNodeReference(LEVELS_REFERENCE)
    assert levels_node is not None and levels_node.GetName() == "lumbar T2 axial disc levels"
    assert levels_node.IsA("vtkMRMLMarkupsFiducialNode")
    assert [levels_node.GetNthControlPointLabel(i) for i in range(levels_node.GetNumberOfControlPoints())] == LEVELS
    for i, level in enumerate(found_levels()):
        assert np.allclose(levels_node.GetNthControlPointPosition(i), ras(level.point))
        assert levels_node.GetNthControlPointDescription(i) == "disc network"
    # Saved as Slicer writes it (.mrk.json, LPS), the list is what the engine's own reader takes.
    path = tmp_path / "levels.mrk.json"
    storage = slicer.vtkMRMLMarkupsJsonStorageNode()
    slicer.mrmlScene.AddNode(storage)
    storage.SetFileName(str(path))
    assert storage.WriteData(levels_node)
    assert [(lv.code, lv.point) for lv in read_level_points(path)] == [(lv.code, lv.point) for lv in found_levels()]

    assert table_node.GetName() == "lumbar T2 axial stenosis measurements"
    assert segmentation_node.GetNodeReference("SpineAI.Measurements") is table_node
    assert table_node.GetNodeReference(CHART_REFERENCE) is None
    assert tableColumns(table_node) == STENOSIS_COLUMNS
    assert all(table_node.GetColumnUnitLabel(column) == unit for column, unit in COLUMN_UNITS.items())
    rows = tableRows(table_node)
    assert [row["level"] for row in rows] == LEVELS
    assert {row["assessable"] for row in rows} == {"True"} and {row["level_source"] for row in rows} == {"disc network"}
    for row in rows:
        assert row["dural_sac_area_mm2"] == pytest.approx(SAC_AREA, rel=0.03)
        assert row["csf_area_mm2"] == pytest.approx(SAC_AREA - math.pi * ROOTS_RL * ROOTS_AP, rel=0.05)
        assert row["posterior_fat_mm2"] > 2.0
        assert row["schizas_grade"] == "A1" and row["lee_grade"] == "0" and row["dsca_category"] == "none"
    flags = tableFlags(table_node)
    assert flags["levels_assessable"] == LEVELS and flags["worst_schizas_grade"] == "A1"
    assert flags["notes"][0].startswith("worst Schizas grade A1; smallest dural sac")

    # CSV export: byte for byte what the engine writes for the same label map and levels.
    written = SpineAILogic().exportCSV(table_node, tmp_path / "stenosis.csv")
    labels = segmentsLabelMap(segmentation_node, scan, "stenosis", MEASUREMENTS["stenosis"])
    with OutputSet(tmp_path / "engine") as out:
        engine_csv = out.write_csv(stenosis_table(labels, found_levels()), "stenosis.csv", STENOSIS_COLUMNS)
    assert written.read_bytes() == engine_csv.read_bytes()


def test_a_chosen_point_list_goes_to_the_engine_in_lps_and_stays_the_results_list(scan, engine):
    placed = {level.name: ras(level.point) for level in found_levels()}
    placed["l3/l4"] = placed.pop("L3-L4")  # labels are read leniently: 'l3/l4' is L3-L4
    user_list = point_list("my levels", placed)
    nodes_before = slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode")
    segmentation_node, table_node = SpineAILogic(engine=engine).segment(scan, task="stenosis", levelsNode=user_list)

    (given,) = engine.calls
    assert sorted((lv.code, lv.point, lv.normal) for lv in given) == [
        (lv.code, lv.point, lv.normal) for lv in found_levels()
    ]  # LPS, and each normal from the neighbouring levels (the S-I spine axis here)
    assert {lv.source for lv in given} == {"points my levels"}
    assert segmentation_node.GetNodeReference(LEVELS_REFERENCE) is user_list
    assert slicer.mrmlScene.GetNumberOfNodesByClass("vtkMRMLMarkupsFiducialNode") == nodes_before  # no new list
    assert {row["level_source"] for row in tableRows(table_node)} == {"points my levels"}


def test_editing_csf_or_sac_and_moving_a_level_regrades_and_a_rerun_keeps_the_edits(scan, engine):
    logic = SpineAILogic(engine=engine)
    first, _ = logic.segment(scan, task="stenosis")
    first_levels = first.GetNodeReference(LEVELS_REFERENCE)
    segmentation_node, table_node = logic.segment(scan, task="stenosis")
    levels_node = segmentation_node.GetNodeReference(LEVELS_REFERENCE)
    assert not slicer.mrmlScene.IsNodePresent(first) and not slicer.mrmlScene.IsNodePresent(first_levels)
    assert levels_node.GetName() == "lumbar T2 axial disc levels"  # the replaced list's name is reused
    before = rows_by_level(table_node)

    # No CSF left at L4-L5 (the slice of that level): no roots to tell apart, fat behind the sac -> Schizas C.
    csf = segment_array(segmentation_node, "cerebrospinal_fluid", scan)
    k = int(round((LEVEL_Z[3] + 88.0) / SPACING[2]))
    csf[k] = False
    set_segment(segmentation_node, "cerebrospinal_fluid", scan, csf)
    assert isEditedSinceCreated(segmentation_node, scan)
    assert logic.updateMeasurements(segmentation_node, scan, task="stenosis") is table_node
    after = rows_by_level(table_node)
    assert after["L4-L5"]["csf_area_mm2"] == 0.0 and after["L4-L5"]["schizas_grade"] == "C"
    assert after["L4-L5"]["lee_grade"] == "3"
    assert after["L4-L5"]["dural_sac_area_mm2"] == before["L4-L5"]["dural_sac_area_mm2"]
    assert after["L3-L4"] == before["L3-L4"]
    assert tableFlags(table_node)["worst_schizas_grade"] == "C"

    # A sac narrowed to 6.5 x 4 mm at L3-L4 (82 mm2): the area and its category follow.
    sac = segment_array(segmentation_node, "dural_sac", scan)
    narrow = cylinder(grid(SIZE, SPACING, AXIAL_STACK), 6.5, 4.0)
    k = int(round((LEVEL_Z[2] + 88.0) / SPACING[2]))
    sac[k] = narrow[k]
    set_segment(segmentation_node, "dural_sac", scan, sac)
    logic.updateMeasurements(segmentation_node, scan, task="stenosis")
    narrowed = rows_by_level(table_node)["L3-L4"]
    assert narrowed["dural_sac_area_mm2"] == pytest.approx(math.pi * 6.5 * 4.0, rel=0.03)
    assert narrowed["dsca_category"] == "relative" and narrowed["ap_below_10mm"] == "True"

    # Moving L2-L3 below L3-L4 puts the levels out of order: those levels are then not assessable, with the reason.
    index = levels_node.GetControlPointIndexByLabel("L2-L3")
    levels_node.SetNthControlPointPosition(index, *ras((0.0, DISC_Y, -20.0)))
    logic.updateMeasurements(segmentation_node, scan, task="stenosis")
    moved = rows_by_level(table_node)
    assert [level for level, row in moved.items() if row["assessable"] == "False"] == ["L1-L2", "L2-L3", "L3-L4"]
    assert moved["L1-L2"]["not_assessable_reason"] == "L1-L2 to L2-L3: 92 mm per level, not a lumbar spine (22-60 mm)"
    assert moved["L3-L4"]["not_assessable_reason"] == "L3-L4 does not lie below L2-L3: the levels are out of order"
    assert moved["L2-L3"]["level_source"] == "moved by hand in lumbar T2 axial disc levels"
    assert math.isnan(moved["L2-L3"]["dural_sac_area_mm2"])
    assert any(note.startswith("L2-L3 not assessable") for note in tableFlags(table_node)["notes"])

    # A new run never overwrites the edited result nor its moved levels.
    rerun, rerun_table = logic.segment(scan, task="stenosis")
    assert slicer.mrmlScene.IsNodePresent(segmentation_node) and slicer.mrmlScene.IsNodePresent(levels_node)
    assert rerun.GetNodeReference(LEVELS_REFERENCE) is not levels_node
    assert rows_by_level(table_node)["L4-L5"]["schizas_grade"] == "C"
    assert rows_by_level(rerun_table)["L4-L5"]["schizas_grade"] == "A1"


def test_moved_levels_alone_keep_a_result_unless_the_moved_list_is_given_to_the_new_run(scan, engine):
    logic = SpineAILogic(engine=engine)
    moved_result, _ = logic.segment(scan, task="stenosis")
    levels_node = moved_result.GetNodeReference(LEVELS_REFERENCE)
    levels_node.SetNthControlPointPosition(0, *ras((0.0, DISC_Y, 76.0)))  # L1-L2 moved up one slice
    assert not isEditedSinceCreated(moved_result, scan)  # the segments are as made; the list is not

    # A run that finds the discs anew keeps the result whose levels were moved, and makes its own list.
    other, _ = logic.segment(scan, task="stenosis")
    other_levels = other.GetNodeReference(LEVELS_REFERENCE)
    assert slicer.mrmlScene.IsNodePresent(moved_result) and other_levels is not levels_node
    assert other_levels.GetName() != levels_node.GetName()

    # Re-segmenting at the moved levels: both earlier results go (the unedited list with its result),
    # the moved list stays, with the new result.
    rerun, table_node = logic.segment(scan, task="stenosis", levelsNode=levels_node)
    assert not slicer.mrmlScene.IsNodePresent(moved_result) and not slicer.mrmlScene.IsNodePresent(other)
    assert not slicer.mrmlScene.IsNodePresent(other_levels)
    assert rerun.GetNodeReference(LEVELS_REFERENCE) is levels_node and slicer.mrmlScene.IsNodePresent(levels_node)
    assert engine.calls[-1][0].point == (0.0, DISC_Y, 76.0)
    row = rows_by_level(table_node)["L1-L2"]
    assert row["point_z_mm"] == 76.0 and row["level_source"] == "moved by hand in lumbar T2 axial disc levels"


def test_point_list_to_level_points_converts_ras_to_lps_in_the_volumes_frame_and_names_bad_points(scan):
    # The scan under a transform (10 mm to the right): a list in world coordinates is brought into the scan's frame.
    transform = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLLinearTransformNode")
    matrix = vtk.vtkMatrix4x4()
    matrix.SetElement(0, 3, 10.0)
    transform.SetMatrixTransformToParent(matrix)
    scan.SetAndObserveTransformNodeID(transform.GetID())
    world = point_list("levels", {"L4-L5": (1.0, 2.0, 3.0), "L5-S1": (1.0, 2.0, -33.0)})
    levels = levelPointsFromMarkups(world, scan)
    assert [lv.name for lv in levels] == ["L4-L5", "L5-S1"]
    assert levels[0].point == (9.0, -2.0, 3.0)  # RAS (1 - 10, 2, 3) -> LPS (9, -2, 3)
    assert levels[0].normal == levels[1].normal == (0.0, 0.0, 1.0)  # from the neighbour, pointing superior
    # A normal stored in the orientation (third column, RAS) is taken as it is, in LPS.
    tilted = np.array([[1.0, 0.0, 0.0], [0.0, 0.8, -0.6], [0.0, 0.6, 0.8]])  # third column RAS (0, -0.6, 0.8)
    world.SetNthControlPointOrientationMatrix(0, tilted.ravel().tolist())
    assert levelPointsFromMarkups(world, scan)[0].normal == pytest.approx((0.0, 0.6, 0.8))

    with pytest.raises(InputError, match=r"^bad: point 2 'F-2' is not a lumbar disc level; label each point L1-L2"):
        levelPointsFromMarkups(point_list("bad", {"L4-L5": (0, 0, 0), "F-2": (0, 0, 9)}), scan)
    twice = point_list("twice", {"L4-L5": (0, 0, 0)})
    twice.AddControlPoint(vtk.vtkVector3d(0, 0, 5), "l4-l5")
    with pytest.raises(InputError, match=r"^twice: level L4-L5 is placed twice \(points 1 and 2\)"):
        levelPointsFromMarkups(twice, scan)
    with pytest.raises(InputError, match=r"^empty: holds no placed point"):
        levelPointsFromMarkups(point_list("empty", {}), scan)
    assert set(CODES_BY_NAME) == set(LEVELS)


def test_a_bad_point_list_is_refused_before_any_engine_or_process_runs(scan, engine):
    bad = point_list("bad levels", {"L4": (0, 0, 0)})
    with pytest.raises(InputError, match="bad levels: point 1 'L4' is not a lumbar disc level"):
        SpineAILogic(engine=engine).segment(scan, task="stenosis", levelsNode=bad)
    assert engine.calls == []
    process = ScriptedProcess()
    with pytest.raises(InputError, match="bad levels"):
        SegmentationJob(SpineAILogic(), scan, "stenosis", "cpu", process=process, levelsNode=bad).start()
    assert process.started is None


class ScriptedProcess:
    """Stands in for EngineProcess: records how it was started, then replays the worker's last events."""

    def __init__(self, events=()):
        self.events_, self.started, self.running, self.exitCode = list(events), None, False, 0

    def start(self, *arguments, **options):
        self.started = (arguments, options)
        self.levelRecords = json.loads(Path(options["levels"]).read_text()) if "levels" in options else None
        self.running = True

    def events(self):
        self.running = False
        events, self.events_ = self.events_, []
        return events

    def cancel(self):
        self.running = False


def test_a_background_run_sends_the_points_as_level_records_and_keeps_the_list(scan, engine, phantom):
    user_list = point_list("my levels", {level.name: ras(level.point) for level in found_levels()})
    result = engine(volumeToImage(scan), "stenosis", "cpu", disc_levels=levelPointsFromMarkups(user_list, scan))
    process = ScriptedProcess([{"progress": 1.0}, {"done": result.sidecar, "segments": result.segments}])
    job = SegmentationJob(SpineAILogic(), scan, "stenosis", "cpu", process=process, levelsNode=user_list)
    finished = []
    job.finished.connect(lambda *nodes: finished.append(nodes))
    job.start()
    arguments, options = process.started
    assert arguments[2:] == ("stenosis", "cpu", "lumbar T2 axial") and options["levels"].name == "levels.json"
    assert [record["level"] for record in process.levelRecords] == LEVELS
    assert process.levelRecords[0]["point_lps_mm"] == [0.0, DISC_Y, LEVEL_Z[0]]
    sitk.WriteImage(phantom[1], str(options["levels"].parent / "mask.nrrd"))  # what the worker would write
    assert job.poll() is JobState.RUNNING  # the timer's first tick: the worker's events
    assert job.poll() is JobState.DONE  # the next: the process has ended, the nodes are made
    ((segmentation_node, table_node),) = finished
    assert segmentation_node.GetNodeReference(LEVELS_REFERENCE) is user_list
    assert len(tableRows(table_node)) == 5


def test_the_worker_reads_the_level_records_and_passes_them_to_the_engine(tmp_path, monkeypatch, capsys, phantom):
    from SpineAILib.EngineWorker import main

    import spineai.pipeline

    fake = FakeEngine(phantom[1])
    monkeypatch.setattr(spineai.pipeline, "segment", fake)
    sitk.WriteImage(phantom[0], str(tmp_path / "input.nrrd"))
    records = levelRecords([LevelPoint(24, (1.0, -25.0, -36.0), None, "points my levels")])
    (tmp_path / "levels.json").write_text(json.dumps(records))
    arguments = [str(tmp_path / "input.nrrd"), str(tmp_path / "out" / "mask.nrrd"), "--task", "stenosis"]
    assert main([*arguments, "--levels", str(tmp_path / "levels.json")]) == 0
    (given,) = fake.calls
    assert given == [LevelPoint(24, (1.0, -25.0, -36.0), None, "points my levels")]
    done = [json.loads(line) for line in capsys.readouterr().out.splitlines() if '"done"' in line]
    assert [record["level"] for record in done[0]["done"]["disc_levels"]] == ["L4-L5"]
    assert (tmp_path / "out" / "mask.nrrd").exists()
    # Without --levels the engine is asked to find the discs.
    assert main(arguments) == 0 and fake.calls[-1] is None
