"""Teach SpineAI in the module, on real MRML and real scans: corrections from segmentation nodes into a site
folder, a fine-tune in the background, the site model chosen for segmenting, and every refusal.

The fine-tune here runs for 6 s of training (``MINUTES``): it checks the module's path to the engine and
back (worker process, progress, model folder, record, selector, sidecar), not accuracy.
"""

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

import mrml_app
import numpy as np
import pytest
import SimpleITK as sitk
import slicer
from SpineAILib import JobState, SegmentationJob, SpineAILogic, Teaching
from SpineAILib.Dependencies import DependencyError, DependencyInstaller
from SpineAILib.EngineProcess import EngineProcess
from SpineAILib.LevelPoints import LEVELS_REFERENCE, levelPointsFromMarkups
from SpineAILib.PanelActions import runGuarded
from SpineAILib.SceneTransaction import nodeIDs
from SpineAILib.SegmentationNodes import SIDECAR_ATTRIBUTE, TASK_ATTRIBUTE, contrastNote
from SpineAILib.VolumeConversion import volumeToImage
from test_module_background import alive, wait_until

from spineai.errors import Cancelled, InputError, SpineAIError
from spineai.learning.site import read_site
from spineai.stenosis.levels import read_level_points

MINUTES = 0.1
FAKE_LAUNCHER = Path(__file__).resolve().parent / "fake_launcher.py"


def site_state(site: Path) -> dict:
    """Every file of the site folder with its bytes: a refused action must leave all of them as they were."""
    return {p.relative_to(site): p.read_bytes() for p in sorted(site.rglob("*")) if p.is_file()}


def segment_array(segmentation_node, volume, segment_id="spinal_cord") -> np.ndarray:
    return slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, segment_id, volume)


def set_segment(segmentation_node, volume, array, segment_id="spinal_cord") -> None:
    slicer.util.updateSegmentBinaryLabelmapFromArray(array, segmentation_node, segment_id, volume)


def erase_top_slices(segmentation_node, volume, count=5) -> np.ndarray:
    """A correction a user makes: the cord erased on the last ``count`` slices that hold it."""
    mask = segment_array(segmentation_node, volume).copy()
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    mask[slices[-count:]] = 0
    set_segment(segmentation_node, volume, mask)
    return mask


def stored(site: Path, correction, kind: str) -> np.ndarray:
    return sitk.GetArrayFromImage(sitk.ReadImage(str(correction.path(site, kind))))


def click(action, name="Add this correction"):
    """What the panel does with the click: the message it shows, or None."""
    shown = []
    runGuarded(action, shown.append, name)
    return shown[0] if shown else None


def run_until_done(job, timeout=600.0):
    deadline = time.monotonic() + timeout
    while job.poll() is JobState.RUNNING:
        assert time.monotonic() < deadline, "background job did not finish"
        time.sleep(0.05)
    return job.state


class Recorder:
    def __init__(self, job):
        self.progress, self.finished, self.failed = [], [], []
        job.progressChanged.connect(self.progress.append)
        job.finished.connect(lambda *values: self.finished.append(values))
        job.failed.connect(self.failed.append)


# --- corrections -------------------------------------------------------------------------------


def test_a_correction_from_the_scene_is_stored_counted_and_replaced_when_added_again(
    t2_volume, cached_engine, tmp_path
):
    site = tmp_path / "site"
    segmentation_node, _ = SpineAILogic(engine=cached_engine).segment(t2_volume, device="cpu")
    sidecar = json.loads(segmentation_node.GetAttribute(SIDECAR_ATTRIBUTE))
    assert Teaching.caseCountText(site, "cord") == "No corrected cord case yet"

    added = Teaching.addCorrection(site, segmentation_node)
    case = added.correction
    assert (added.count, added.replaced) == (1, False)
    assert (case.task, case.contrast, case.model, case.model_sha256, case.edited) == (
        "cord",
        "T2w",  # from the scan's file name, t2.nii.gz
        sidecar["model"],
        sidecar["model_sha256"],
        "no",  # the result as SpineAI made it
    )
    assert case.source.endswith("t2.nii.gz")
    assert np.array_equal(stored(site, case, "labels"), segment_array(segmentation_node, t2_volume))
    assert np.array_equal(stored(site, case, "image"), sitk.GetArrayFromImage(volumeToImage(t2_volume)))
    assert Teaching.caseCountText(site, "cord") == "1 corrected cord case"
    assert "added as cord case" in added.message(segmentation_node.GetName(), site)

    corrected = erase_top_slices(segmentation_node, t2_volume)
    again = Teaching.addCorrection(site, segmentation_node)
    assert (again.count, again.replaced, again.correction.case_id) == (1, True, case.case_id)
    assert again.correction.edited == "yes"
    assert np.array_equal(stored(site, again.correction, "labels"), corrected)
    assert len(list((site / "cases" / "cord").iterdir())) == 1 and len(read_site(site)) == 1
    assert "replaced the earlier correction" in again.message(segmentation_node.GetName(), site)


def test_bad_corrections_end_in_a_message_and_change_nothing(t2_volume, cached_engine, data_dir, tmp_path):
    site = tmp_path / "site"
    logic = SpineAILogic(engine=cached_engine)
    segmentation_node, _ = logic.segment(t2_volume, device="cpu")
    Teaching.addCorrection(site, segmentation_node)
    before = site_state(site)
    name = segmentation_node.GetName()

    other = mrml_app.loadIntoStudy(data_dir / "sct-testing" / "t2s" / "t2s.nii.gz")
    message = click(lambda: Teaching.addCorrection(site, segmentation_node, volumeNode=other))
    assert isinstance(message, InputError)
    assert str(message) == (
        f"{name}: was made on the volume 't2', not on 't2s'; a correction is stored with the scan it was drawn on"
    )

    mask = segment_array(segmentation_node, t2_volume)
    set_segment(segmentation_node, t2_volume, np.zeros_like(mask))
    message = click(lambda: Teaching.addCorrection(site, segmentation_node))
    assert str(message) == f"{name}: the 'Spinal cord' segment is empty; nothing to add"

    assert str(click(lambda: Teaching.addCorrection(site, None))).startswith("no segmentation selected")

    drawn = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLSegmentationNode", "drawn by hand")
    drawn.SetReferenceImageGeometryParameterFromVolumeNode(t2_volume)
    message = click(lambda: Teaching.addCorrection(site, drawn))
    assert "drawn by hand: is not a SpineAI result; choose the task" in str(message)

    set_segment(segmentation_node, t2_volume, mask)
    slicer.mrmlScene.RemoveNode(t2_volume)
    message = click(lambda: Teaching.addCorrection(site, segmentation_node))
    assert str(message).startswith(f"{name}: has no reference volume")
    assert site_state(site) == before and len(read_site(site)) == 1


def test_a_segmentation_drawn_by_hand_is_added_for_the_task_chosen_in_the_panel(t2_volume, data_dir, tmp_path):
    """No SpineAI result: the task comes from the panel's Teach task, and the first result is unknown."""
    manual = slicer.util.loadSegmentation(str(data_dir / "sct-testing" / "t2" / "t2_seg-manual.nii.gz"))
    manual.SetReferenceImageGeometryParameterFromVolumeNode(t2_volume)
    segment = manual.GetSegmentation().GetNthSegment(0)
    segment.SetName("Spinal cord")
    site = tmp_path / "site"
    added = Teaching.addCorrection(site, manual, task="cord")
    case = added.correction
    assert (case.task, case.model, case.model_sha256, case.edited, added.count) == ("cord", "unknown", "", "unknown", 1)
    manual_voxels = sitk.GetArrayFromImage(
        sitk.ReadImage(str(data_dir / "sct-testing" / "t2" / "t2_seg-manual.nii.gz"))
    )
    labels = stored(site, case, "labels")
    segment_id = manual.GetSegmentation().GetNthSegmentID(0)
    assert np.array_equal(labels, segment_array(manual, t2_volume, segment_id))
    assert labels.sum() == np.count_nonzero(manual_voxels) > 0


def test_a_stenosis_correction_keeps_its_disc_levels(mrml, data_dir, tmp_path):
    """The real lumbar T2 segmented by the engine (sac network, disc network): the levels SpineAI placed
    are stored with the case; moving one of them counts as an edit."""
    volume = mrml_app.loadIntoStudy(data_dir / "lumbar-ivd" / "ivd46_t2.nii.gz", study="Lumbar MRI")
    segmentation_node, _ = SpineAILogic().segment(volume, task="stenosis", device="cpu")
    levels_node = segmentation_node.GetNodeReference(LEVELS_REFERENCE)
    site = tmp_path / "site"

    added = Teaching.addCorrection(site, segmentation_node)
    assert added.correction.edited == "no" and added.correction.levels
    placed = levelPointsFromMarkups(levels_node, volume)
    kept = read_level_points(added.correction.path(site, "levels"))
    assert [level.name for level in kept] == [level.name for level in placed]
    assert np.allclose([level.point for level in kept], [level.point for level in placed], atol=1e-3)

    position = list(levels_node.GetNthControlPointPosition(0))
    levels_node.SetNthControlPointPosition(0, position[0], position[1], position[2] + 3.0)
    moved = Teaching.addCorrection(site, segmentation_node)
    assert (moved.replaced, moved.correction.edited) == (True, "yes")

    segmentation_node.RemoveNodeReferenceIDs(LEVELS_REFERENCE)
    before = site_state(site)
    message = click(lambda: Teaching.addCorrection(site, segmentation_node))
    assert "a stenosis correction needs its disc levels" in str(message) and site_state(site) == before


# --- fine-tune, the model selector, segmenting with the site model ------------------------------


@pytest.fixture(scope="module")
def fine_tuned(data_dir, cached_engine, tmp_path_factory):
    """A corrected cord result added from the scene and a 6 s fine-tune run by the module's background job."""
    application = mrml_app.boot()
    volume = mrml_app.loadIntoStudy(data_dir / "sct-testing" / "t2" / "t2.nii.gz")
    segmentation_node, _ = SpineAILogic(engine=cached_engine).segment(volume, device="cpu")
    erase_top_slices(segmentation_node, volume)
    site = tmp_path_factory.mktemp("teach") / "site"
    Teaching.addCorrection(site, segmentation_node)
    job = Teaching.FineTuneJob(site, "cord", MINUTES, "CPU")
    seen = Recorder(job)
    job.start()
    assert job.outDir.parent == site / "models" and not job.outDir.exists()
    state = run_until_done(job)
    assert state is JobState.DONE, (seen.failed, job.log)
    return application, volume, site, seen.finished[0][0], seen


@pytest.fixture
def teach(fine_tuned):
    mrml_app.activate(fine_tuned[0])
    return fine_tuned


def test_a_background_fine_tune_writes_a_model_folder_that_the_selector_lists(teach, tmp_path):
    _, _, site, folder, seen = teach
    assert folder.parent == site / "models"
    assert sorted(p.name for p in folder.iterdir()) == ["cord.json", "cord.md", "cord.onnx", "cord.safetensors"]
    assert seen.failed == [] and seen.progress and seen.progress == sorted(seen.progress) and seen.progress[-1] == 1.0
    record = json.loads((folder / "cord.json").read_text())
    choices = Teaching.siteModelChoices(site, "cord")
    assert [choice.folder for choice in choices] == [None, folder]  # the shipped model first
    assert choices[0].label == "Shipped model"
    assert choices[1].label.startswith(f"{record['name']} ({record['site']['created'][:10]} ")
    assert Teaching.siteModelChoices(site, "lesion") == choices[:1]

    summary = Teaching.fineTuneSummary(folder, "cord")
    block = record["site"]
    assert summary[0].startswith(f"{record['name']}: {block['steps']} steps in ") and block["steps"] > 0
    (case,) = block["cases"]
    dice = block["after"]["site"][0]["dice"]
    assert any(line.startswith(f"{case['case_id']} (T2w): Dice ") and f"-> {dice:.3f}" in line for line in summary)
    assert block["held_out"] == "slices"
    assert any("With 1 case, the top fifth of each case's slices was held back" in line for line in summary)
    # A record with nothing held back (a lesion below the top fifth, the sac's planes) says its Dice is a fit check.
    (tmp_path / "cord.json").write_text(json.dumps(record | {"site": block | {"held_out": "none"}}))
    unsplit = Teaching.fineTuneSummary(tmp_path, "cord")
    assert any("With 1 case none is held back: the Dice is a fit check" in line for line in unsplit)
    assert sum(line.startswith("What it knew: median Dice on the rehearsal set ") for line in summary) == 1
    share = block["mixing"]["share_of_fine_tuned_weights"]
    weights = "the model keeps the starting weights" if share == 0 else f"Weights: {share:.0%} fine-tuned"
    assert sum(weights in line for line in summary) == 1


def test_the_site_model_is_used_only_when_chosen_and_named_in_the_result(teach):
    _, volume, _, folder, _ = teach
    record = json.loads((folder / "cord.json").read_text())
    parameters = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLScriptedModuleNode", "SpineAI")
    assert Teaching.chosenModel(parameters, "cord") is None  # nothing chosen: the shipped model
    shipped, _ = SpineAILogic().segment(volume, device="cpu", modelFolder=Teaching.chosenModel(parameters, "cord"))
    assert json.loads(shipped.GetAttribute(SIDECAR_ATTRIBUTE))["model"] == "spineai-cord-unet2d"

    Teaching.chooseModel(parameters, "cord", folder)
    assert Teaching.chosenModel(parameters, "cord") == folder and Teaching.chosenModel(parameters, "lesion") is None
    job = SegmentationJob(SpineAILogic(), volume, "cord", "cpu", modelFolder=Teaching.chosenModel(parameters, "cord"))
    seen = Recorder(job)
    job.start()
    assert run_until_done(job) is JobState.DONE, (seen.failed, job.log)
    segmentation_node, _ = seen.finished[0]
    sidecar = json.loads(segmentation_node.GetAttribute(SIDECAR_ATTRIBUTE))
    assert (sidecar["model"], sidecar["model_sha256"]) == (record["name"], record["sha256"])
    assert sidecar["model_folder"] == str(folder.resolve())
    assert segmentation_node.GetAttribute(TASK_ATTRIBUTE) == "cord"
    # The status line says what the site model was fine-tuned on (the volume is of that contrast).
    (case,) = record["site"]["cases"]
    assert contrastNote(segmentation_node) == f"{record['name']} was fine-tuned on this site's {case['contrast']} cases"

    Teaching.chooseModel(parameters, "cord", None)  # "Use shipped model"
    assert Teaching.chosenModel(parameters, "cord") is None


def test_a_tampered_foreign_or_missing_site_model_gives_one_line_and_adds_nothing(teach, tmp_path):
    _, volume, _, folder, _ = teach
    tampered = tmp_path / "tampered"
    shutil.copytree(folder, tampered)
    graph = tampered / "cord.onnx"  # what inference loads
    graph.write_bytes(graph.read_bytes()[:-8] + b"\0" * 8)
    before = nodeIDs(slicer.mrmlScene)
    job = SegmentationJob(SpineAILogic(), volume, "cord", "cpu", modelFolder=tampered)
    seen = Recorder(job)
    job.start()
    assert run_until_done(job) is JobState.FAILED
    (message,) = [str(error) for error in seen.failed]
    assert "does not match the model record" in message and "refusing to load" in message and "\n" not in message
    assert nodeIDs(slicer.mrmlScene) == before
    message = click(lambda: SpineAILogic().segment(volume, device="cpu", modelFolder=tampered), "Segment cord")
    assert "refusing to load" in str(message) and nodeIDs(slicer.mrmlScene) == before

    for task, model, expected in [
        ("lesion", folder, "holds no model of the lesion task; it holds a model of: cord"),
        ("cord", tmp_path / "deleted", "no such model folder"),
    ]:
        job = SegmentationJob(SpineAILogic(), volume, task, "cpu", modelFolder=model)
        with pytest.raises(InputError, match=expected):
            job.start()  # before any process starts
        assert job.state is None and job.process.pid is None


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_cancel_stops_the_fine_tune_under_a_launcher_and_leaves_no_model_folder(teach):
    _, _, site, folder, _ = teach
    process = EngineProcess(python=[sys.executable, str(FAKE_LAUNCHER), sys.executable])
    job = Teaching.FineTuneJob(site, "cord", 5.0, "cpu", process=process)
    seen = Recorder(job)
    job.start()
    deadline = time.monotonic() + 300
    while not seen.progress:  # until the training loop runs
        assert job.poll() is JobState.RUNNING, (seen.failed, job.log)
        assert time.monotonic() < deadline
        time.sleep(0.1)
    worker = job.workerPid
    job.cancel()
    assert job.state is JobState.CANCELLED and len(seen.failed) == 1 and isinstance(seen.failed[0], Cancelled)
    assert seen.finished == [] and not job.outDir.exists()
    assert sorted(p.name for p in (site / "models").iterdir()) == [folder.name]  # no half-written folder either
    assert worker != process.pid and wait_until(lambda: not alive(worker) and not alive(process.pid))
    assert [choice.folder for choice in Teaching.siteModelChoices(site, "cord")] == [None, folder]


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_the_fine_tune_worker_turns_a_termination_signal_into_a_clean_cancel(teach, tmp_path):
    """Cancel's first signal (SIGTERM to the group) lets the engine remove a half-written model folder itself."""
    _, _, site, _, _ = teach
    process = EngineProcess()
    out = site / "models" / "terminated"
    process.startFineTune(site, out, "cord", 5.0, "cpu")
    events = []
    deadline = time.monotonic() + 300
    while not any("progress" in event for event in events):
        assert process.running and time.monotonic() < deadline, events
        events += process.events()
        time.sleep(0.1)
    os.kill(process.pid, signal.SIGTERM)
    assert wait_until(lambda: not process.running, timeout=30)
    events += process.events()
    assert {"error": "cancelled by the user"} in events and process.exitCode == 3
    assert not out.exists() and not list(out.parent.glob(f".partial-*-{out.name}"))


class NoProcess:
    """Stands in for EngineProcess: records whether a fine-tune was started."""

    def __init__(self):
        self.started = None

    def startFineTune(self, *arguments):
        self.started = arguments


def test_a_fine_tune_that_cannot_run_is_refused_before_any_process_starts(teach, tmp_path):
    _, _, site, _, _ = teach
    without_torch = DependencyInstaller.training(isSatisfied=lambda requirement: not requirement.startswith("torch"))
    refusals = [
        (tmp_path / "empty site", "cord", 1.0, {}, SpineAIError, "no corrected cord case yet"),
        (site, "lesion", 1.0, {}, SpineAIError, "no corrected lesion case yet"),
        (site, "cord", 0.0, {}, SpineAIError, "positive time budget"),
        (site, "cord", 1.0, {"training": without_torch}, DependencyError, r"not installed in Slicer: torch>=2\.2"),
    ]
    for folder, task, minutes, options, error, expected in refusals:
        process = NoProcess()
        job = Teaching.FineTuneJob(folder, task, minutes, "cpu", process=process, **options)
        with pytest.raises(error, match=expected):
            job.start()
        assert process.started is None and job.state is None

    damaged = tmp_path / "damaged"
    shutil.copytree(site, damaged, ignore=shutil.ignore_patterns("models"))
    (case,) = read_site(damaged)
    labels = case.path(damaged, "labels")
    labels.write_bytes(labels.read_bytes()[:-100])
    process = NoProcess()
    message = click(lambda: Teaching.FineTuneJob(damaged, "cord", 1.0, "cpu", process=process).start(), "Fine-tune")
    assert "labels.nii.gz" in str(message) and "damaged" in str(message) and process.started is None
    assert not (damaged / "models").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_a_failing_fine_tune_reports_the_engines_message_and_leaves_no_model_folder(teach):
    _, _, site, folder, _ = teach
    job = Teaching.FineTuneJob(site, "cord", MINUTES, "GPU")  # the panel's GPU: CUDA, absent here
    seen = Recorder(job)
    job.start()
    assert run_until_done(job) is JobState.FAILED
    assert [str(error) for error in seen.failed] == [
        "device 'cuda' requested but no CUDA GPU is available (choose auto or cpu)"
    ]
    assert sorted(p.name for p in (site / "models").iterdir()) == [folder.name]
