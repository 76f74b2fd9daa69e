"""Background runs: the engine in a separate process, progress, Cancel, failures; results as in-process."""

import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
from SpineAILib import JobState, SegmentationJob, SpineAILogic
from SpineAILib.EngineProcess import MODULE_DIR, BackgroundProcess, EngineProcess, popenOptions
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


# --- the process tree under a launcher, Windows options, Slicer's startup environment ------------

FAKE_LAUNCHER = Path(__file__).resolve().parent / "fake_launcher.py"


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (a zombie waiting to be reaped has stopped computing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def wait_until(condition, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_terminating_only_the_launcher_would_leave_the_engine_running():
    """The problem Cancel must solve: the launcher's child outlives the launcher."""
    process = BackgroundProcess()
    child = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"
    process.startCommand([sys.executable, str(FAKE_LAUNCHER), sys.executable, "-c", child])
    lines = []
    assert wait_until(lambda: lines.extend(process.lines()) or lines)
    child_pid = int(lines[0])
    assert parent_of(child_pid) == process.pid
    process._process.terminate()  # what Cancel did before: the launcher only
    process._process.wait()
    try:
        assert not wait_until(lambda: not alive(child_pid), timeout=1.0)  # still computing
    finally:
        process.cancel()
        os.killpg(process.pid, signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process states from /proc")
def test_cancel_stops_the_engine_under_a_launcher(t2_volume):
    process = EngineProcess(python=[sys.executable, str(FAKE_LAUNCHER), sys.executable])
    job = SegmentationJob(SpineAILogic(), t2_volume, "cord", "cpu", process=process)
    seen = Recorder(job)
    job.start()
    assert wait_until(lambda: job.poll() is JobState.RUNNING and job.workerPid is not None, timeout=60)
    worker = job.workerPid
    assert worker != process.pid and parent_of(worker) == process.pid  # the engine is the launcher's child
    job.cancel()
    assert job.state is JobState.CANCELLED and isinstance(seen.failed[0], Cancelled)
    assert wait_until(lambda: not alive(worker) and not alive(process.pid), timeout=5)


def test_background_processes_lead_their_own_group_and_windows_hides_the_console():
    process = BackgroundProcess()
    process.startCommand([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        assert os.getpgid(process.pid) == process.pid != os.getpgid(0)  # killTree can stop its whole group
    finally:
        process.cancel()
    assert not process.running
    windows = popenOptions("win32")
    assert windows["creationflags"] & 0x08000000  # CREATE_NO_WINDOW: no console opens at each run
    assert windows["creationflags"] & 0x00000200  # CREATE_NEW_PROCESS_GROUP
    assert popenOptions("linux") == {"start_new_session": True}


def test_the_engine_runs_in_slicers_startup_environment(mrml, monkeypatch):
    """Slicer's launcher adds its paths to Slicer's environment; PythonSlicer adds them again, so the
    engine gets the environment Slicer started with (slicer.util.startupEnvironment), plus the module."""
    monkeypatch.setenv("ADDED_BY_THE_LAUNCHER", "1")
    slicer.app.startupVariables = {"PATH": os.environ["PATH"], "STARTED_WITH": "yes"}
    show_environment = "import json, os, sys; print(json.dumps({'environment': dict(os.environ)}))"
    process = EngineProcess(python=[sys.executable, "-c", show_environment])
    process.start(Path("in.nrrd"), Path("out.nrrd"), "cord", "cpu", "scan")
    assert wait_until(lambda: not process.running)
    (event,) = [event for event in process.events() if "environment" in event]
    environment = event["environment"]
    assert environment["STARTED_WITH"] == "yes" and "ADDED_BY_THE_LAUNCHER" not in environment
    assert environment["PYTHONPATH"].split(os.pathsep)[0] == str(MODULE_DIR)
