"""Background runs: the engine in a separate process, progress, Cancel, failures; results as in-process."""

import time

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
from SpineAILib import JobState, SegmentationJob, SpineAILogic
from SpineAILib.SceneTransaction import nodeIDs
from SpineAILib.VolumeConversion import volumeToImage

from spineai.errors import Cancelled, InputError


def run_until_done(job, timeout=180.0):
    """What the panel's qt.QTimer does: poll until the job leaves the running state."""
    deadline = time.monotonic() + timeout
    while job.poll() is JobState.RUNNING:
        assert time.monotonic() < deadline, "background run did not finish"
        time.sleep(0.05)
    return job.state


class Recorder:
    def __init__(self, job):
        self.progress, self.finished, self.failed = [], [], []
        job.progressChanged.connect(self.progress.append)
        job.finished.connect(lambda *nodes: self.finished.append(nodes))
        job.failed.connect(self.failed.append)


def test_background_run_reports_progress_and_gives_the_engine_result(t2_volume, cached_engine):
    job = SegmentationJob(SpineAILogic(), t2_volume, "cord", "CPU")
    seen = Recorder(job)
    job.start()
    folder = job._folder
    assert folder.exists() and job.state is JobState.RUNNING
    assert run_until_done(job) is JobState.DONE, job.log

    assert seen.failed == [] and len(seen.finished) == 1
    segmentation_node, table_node = seen.finished[0]
    assert seen.progress == sorted(seen.progress) and seen.progress[-1] == 1.0
    expected = sitk.GetArrayFromImage(cached_engine(volumeToImage(t2_volume), "cord", "cpu").mask)
    assert np.array_equal(slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, "spinal_cord"), expected)
    assert table_node.GetNumberOfRows() > 0
    assert not folder.exists()  # the exported scan and the mask file are gone


def test_cancel_stops_the_process_and_adds_nothing(t2_volume):
    job = SegmentationJob(SpineAILogic(), t2_volume, "cord", "cpu")
    seen = Recorder(job)
    before = nodeIDs(slicer.mrmlScene)
    job.start()
    folder = job._folder
    job.cancel()
    assert job.state is JobState.CANCELLED and not job.process.running
    assert len(seen.failed) == 1 and isinstance(seen.failed[0], Cancelled) and seen.finished == []
    assert job.poll() is JobState.CANCELLED  # later timer ticks change nothing
    assert nodeIDs(slicer.mrmlScene) == before and not folder.exists()


class ScriptedProcess:
    """Stands in for EngineProcess: replays the events of a worker that fails."""

    def __init__(self, events, exit_code):
        self._events, self.exitCode, self.running, self.started = events, exit_code, False, None

    def start(self, *arguments):
        self.started = arguments
        self.running = True

    def events(self):
        self.running = False
        events, self._events = self._events, []
        return events

    def cancel(self):
        self.running = False


def test_an_engine_error_reaches_the_panel_with_its_message(t2_volume):
    process = ScriptedProcess([{"progress": 0.5}, {"error": "t2: empty image: every voxel is 0"}], exit_code=2)
    job = SegmentationJob(SpineAILogic(), t2_volume, "cord", "GPU", process=process)
    seen = Recorder(job)
    before = nodeIDs(slicer.mrmlScene)
    job.start()
    assert process.started[2:] == ("cord", "cuda", "t2")  # panel's 'GPU' is the engine's 'cuda'
    assert run_until_done(job) is JobState.FAILED
    assert [str(error) for error in seen.failed] == ["t2: empty image: every voxel is 0"]
    assert seen.progress == [0.5] and nodeIDs(slicer.mrmlScene) == before


def test_a_crashed_engine_process_is_reported_with_its_last_output(t2_volume):
    process = ScriptedProcess([{"log": "Traceback (most recent call last):"}, {"log": "MemoryError"}], exit_code=-9)
    job = SegmentationJob(SpineAILogic(), t2_volume, "cord", "auto", process=process)
    seen = Recorder(job)
    job.start()
    assert run_until_done(job) is JobState.FAILED
    assert "stopped (exit code -9)" in str(seen.failed[0]) and "MemoryError" in str(seen.failed[0])


def test_bad_input_is_refused_before_any_process_starts(mrml):
    process = ScriptedProcess([], exit_code=0)
    job = SegmentationJob(SpineAILogic(), None, "cord", "auto", process=process)
    with pytest.raises(InputError, match="no volume selected"):
        job.start()
    assert process.started is None and job.state is None
