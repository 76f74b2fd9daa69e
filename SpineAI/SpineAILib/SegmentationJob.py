"""One background segmentation run, driven by polling from the panel's timer.

States: running -> done | failed | cancelled. ``start`` checks the input and exports it (main thread,
fast; for the stenosis task also the disc levels of the chosen point list, as the engine's level
records in ``levels.json``), then the engine runs in an ``EngineProcess`` (with ``--model`` when a
site model was chosen for the task). The panel calls
``poll()`` from a qt.QTimer; each poll forwards progress and, once the process has ended, builds
the result nodes on the main thread through the logic (MRML is not thread-safe) and reports
``finished`` or ``failed`` once.
The temporary folder is removed in every outcome, and a cancelled or failed run adds no node.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import SimpleITK as sitk

from spineai.errors import Cancelled, SpineAIError

from .EngineProcess import EngineProcess, JobState
from .LevelPoints import levelRecords
from .Signal import Signal
from .VolumeConversion import volumeToImage


class EngineResult:
    """What the worker produced, shaped like the engine's SegmentationResult."""

    def __init__(self, mask: sitk.Image, segments, sidecar: dict):
        self.mask, self.segments, self.sidecar = mask, [tuple(segment) for segment in segments], sidecar


class SegmentationJob:
    def __init__(
        self,
        logic,
        volumeNode,
        task: str,
        device: str,
        process: EngineProcess | None = None,
        levelsNode=None,
        modelFolder=None,
    ):
        """``levelsNode``: the stenosis task's disc levels (a point list), None to let the engine find them;
        ``modelFolder``: a site model of the task, None for the shipped model."""
        self.logic = logic
        self.volumeNode = volumeNode
        self.task = task
        self.device = device
        self.levelsNode = levelsNode
        self.modelFolder = modelFolder
        self.process = process or EngineProcess()
        self.state: JobState | None = None
        self.progress = 0.0
        self.log: list[str] = []
        self.workerPid: int | None = None  # the engine's own process (under PythonSlicer: the launcher's child)
        self.progressChanged = Signal()  # (fraction 0..1)
        self.finished = Signal()  # (segmentationNode, tableNode or None)
        self.failed = Signal()  # (SpineAIError); Cancelled when the user cancelled
        self._folder: Path | None = None
        self._sidecar: dict | None = None
        self._segments = None
        self._error: str | None = None

    def start(self) -> None:
        """Check and export the input, launch the engine; raises SpineAIError for bad input (no process started)."""
        engineDevice = self.logic.checkRequest(self.volumeNode, self.task, self.device, self.modelFolder)
        levels = self.logic.levelPoints(self.task, self.volumeNode, self.levelsNode)
        image = volumeToImage(self.volumeNode)
        self._folder = Path(tempfile.mkdtemp(prefix="SpineAI-"))
        try:
            sitk.WriteImage(image, str(self._folder / "input.nrrd"), useCompression=False)
            options = {"model": Path(self.modelFolder).resolve()} if self.modelFolder is not None else {}
            if levels:
                options["levels"] = self._folder / "levels.json"
                options["levels"].write_text(json.dumps(levelRecords(levels)), encoding="utf-8")
            self.process.start(
                self._folder / "input.nrrd",
                self._folder / "mask.nrrd",
                self.task,
                engineDevice,
                self.volumeNode.GetName(),
                **options,
            )
        except BaseException:
            self._removeFolder()
            raise
        self.state = JobState.RUNNING

    def poll(self) -> JobState:
        if self.state is not JobState.RUNNING:
            return self.state
        running = self.process.running
        for event in self.process.events():
            self._handle(event)
        if running:
            return self.state
        try:
            if self._error or self._sidecar is None:
                tail = " | ".join(self.log[-3:])
                raise SpineAIError(
                    self._error
                    or f"the engine process stopped (exit code {self.process.exitCode})" + (f": {tail}" if tail else "")
                )
            mask = sitk.ReadImage(str(self._folder / "mask.nrrd"))
            result = EngineResult(mask, self._segments, self._sidecar)
            nodes = self.logic.addResults(self.volumeNode, self.task, result, self.levelsNode)
        except SpineAIError as error:
            return self._end(JobState.FAILED, self.failed, error)
        except Exception as error:  # still a message for the panel, never a stuck progress bar
            return self._end(JobState.FAILED, self.failed, SpineAIError(f"{type(error).__name__}: {error}"))
        return self._end(JobState.DONE, self.finished, *nodes)

    def cancel(self) -> None:
        if self.state is JobState.RUNNING:
            self.process.cancel()
            self._end(JobState.CANCELLED, self.failed, Cancelled())

    def _handle(self, event: dict) -> None:
        if "progress" in event:
            self.progress = float(event["progress"])
            self.progressChanged(self.progress)
        elif "error" in event:
            self._error = str(event["error"])
        elif "done" in event:
            self._sidecar, self._segments = event["done"], event.get("segments", [])
        elif "pid" in event:
            self.workerPid = int(event["pid"])
        elif "log" in event:
            self.log.append(event["log"])

    def _end(self, state: JobState, signal: Signal, *arguments) -> JobState:
        self.state = state
        self._removeFolder()
        signal(*arguments)
        return state

    def _removeFolder(self) -> None:
        if self._folder is not None:
            shutil.rmtree(self._folder, ignore_errors=True)
            self._folder = None
