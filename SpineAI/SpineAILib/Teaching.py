"""Teach SpineAI: store the user's corrections in a site folder, fine-tune on them, segment with the result.

The panel's *Teach SpineAI* section, without any GUI::

    from SpineAILib import Teaching
    site = Teaching.siteFolder("")                       # the default site folder (spineai's default_site_dir)
    added = Teaching.addCorrection(site, segmentationNode)  # the segmentation as it is now, on its scan
    added.count                                          # corrected cases of its task in the site
    job = Teaching.FineTuneJob(site, "cord", minutes=5, device="auto")  # in the background, like a segmentation
    job.start(); ...; job.poll()                         # -> finished(folder) | failed(error)
    Teaching.siteModelChoices(site, "cord")              # [shipped model, site models newest first]
    Teaching.chooseModel(parameterNode, "cord", folder)  # the Segment cord button uses it from now on

The engine does the work (``spineai.learning``): ``site.add_case`` checks and stores a case all or
nothing (the same scan again replaces its earlier correction), ``finetune.finetune`` writes a model
folder only when it completes. This module turns the scene into the engine's inputs: the segments as
one label map in the task's label values on the scan's grid (``Logic.segmentsLabelMap``, the mapping
measurements use), the scan itself, the stenosis task's disc levels from the segmentation's point list,
and what made the first result (model name and checksum from the result's sidecar attribute, edited or
not from the content digest). A site model is used only for a task it was chosen for: the choice is kept
per task in the module's parameter node (so it is saved with the scene), and no choice means the
shipped model.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

from spineai.errors import Cancelled, InputError, SpineAIError
from spineai.learning.card import rehearsal_line

from . import LevelPoints, SegmentationNodes
from .Dependencies import DependencyInstaller
from .EngineProcess import EngineProcess, JobState
from .Measurements import MEASUREMENTS
from .Signal import Signal
from .VolumeConversion import checkInputVolume, volumeToImage

MODEL_PARAMETER = "SpineAI.SiteModel."  # + task: the chosen site model folder of that task
SHIPPED_MODEL_LABEL = "Shipped model"


def siteFolder(text=None) -> Path:
    """The site folder the panel shows: ``text`` when set, else the engine's default
    (``$SPINEAI_SITE`` or the user's SpineAI data folder)."""
    text = str(text or "").strip()
    if text and text != ".":
        return Path(text).expanduser()
    from spineai.learning.site import default_site_dir

    return default_site_dir()


# --- corrections -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AddedCorrection:
    correction: object  # the engine's Correction record (spineai.learning.site)
    count: int  # corrected cases of the task in the site, this one included
    replaced: bool  # the same scan's earlier correction of the task was replaced

    def message(self, segmentationName: str, site: Path) -> str:
        c = self.correction
        what = "replaced the earlier correction of this scan" if self.replaced else "added"
        return (
            f"{segmentationName}: {what} as {c.task} case {c.case_id} ({c.contrast}, {c.plane}, first result "
            f"edited: {c.edited}) in {site}. {countText(self.count, c.task)}."
        )


def countText(count: int, task: str) -> str:
    if count == 0:
        return f"No corrected {task} case yet"
    return f"{count} corrected {task} case{'s' if count != 1 else ''}"


def caseCount(site, task: str) -> int:
    """The site's corrected cases of ``task`` (0 for a folder that holds none yet)."""
    from spineai.learning.site import read_site

    return len(read_site(Path(site), task, check_files=False))


def caseCountText(site, task: str) -> str:
    """'3 corrected cord cases', or why the site folder cannot be read (shown beside the count, not as a box:
    it is refreshed while the user types a folder)."""
    try:
        return countText(caseCount(site, task), task)
    except SpineAIError as error:
        return f"The site folder cannot be read: {error}"
    except OSError as error:
        return f"The site folder cannot be read: {type(error).__name__}: {error}"


def addCorrection(site, segmentationNode, volumeNode=None, task: str | None = None) -> AddedCorrection:
    """Store ``segmentationNode`` as it is now, with the scan it was made on, as a corrected case.

    The scan is the segmentation's reference volume; ``volumeNode``, when given, must be that volume
    (a correction drawn on one scan is never stored with another). The task is the one that made the
    result (``SpineAI.Task``), else ``task``. Raises SpineAIError (InputError for bad input) with the
    panel's message; the site folder is then unchanged.
    """
    if segmentationNode is None:
        raise SpineAIError("no segmentation selected; segment a scan, correct the result, then add it")
    name = segmentationNode.GetName()
    reference = SegmentationNodes.referenceVolume(segmentationNode)
    if reference is None:
        raise InputError(
            name,
            "has no reference volume (the scan it was drawn on); add a correction of a SpineAI result, or set the "
            "segmentation's source geometry to its scan in Segment Editor",
        )
    if volumeNode is not None and volumeNode.GetID() != reference.GetID():
        raise InputError(
            name,
            f"was made on the volume '{reference.GetName()}', not on '{volumeNode.GetName()}'; a correction is "
            "stored with the scan it was drawn on",
        )
    volumeNode = reference
    checkInputVolume(volumeNode)
    task = segmentationNode.GetAttribute(SegmentationNodes.TASK_ATTRIBUTE) or task
    if task is None:
        raise SpineAIError(f"{name}: is not a SpineAI result; choose the task it is a correction for")
    spec = MEASUREMENTS.get(task)
    if spec is None:
        raise SpineAIError(f"unknown task '{task}' (available: {', '.join(MEASUREMENTS)})")
    from .Logic import segmentsLabelMap

    labels = segmentsLabelMap(segmentationNode, volumeNode, task, spec, action="add")
    levels = _levels(segmentationNode, volumeNode, task) if spec.needsLevels else None
    image = volumeToImage(volumeNode)
    first = firstResult(segmentationNode, volumeNode)
    from spineai.learning.site import add_case, guess_contrast, read_site, scan_id

    site = Path(site)
    before = {(c.case_id, c.task) for c in read_site(site, check_files=False)}
    source, contrast = _source(volumeNode), "unknown"
    for text in (volumeNode.GetName(), source):  # the node's name (a DICOM series description) or its file
        contrast = guess_contrast(text, image)
        if contrast != "unknown":
            break
    replaced = (scan_id(image), task) in before
    correction = add_case(site, image, labels, task, source, first, levels, contrast)
    return AddedCorrection(correction, caseCount(site, task), replaced)


def firstResult(segmentationNode, volumeNode) -> dict:
    """The model that made the first result and whether the user changed it: the engine's sidecar
    (``SpineAI.Sidecar``) and the module's edited-since-created check (segments, and for the stenosis
    task the disc-level points SpineAI placed)."""
    sidecar = json.loads(segmentationNode.GetAttribute(SegmentationNodes.SIDECAR_ATTRIBUTE) or "{}")
    if not sidecar.get("model"):
        return {"model": "unknown", "model_sha256": "", "edited": "unknown"}
    edited = "unknown"
    if segmentationNode.GetAttribute(SegmentationNodes.DIGEST_ATTRIBUTE) is not None:
        levelsNode = segmentationNode.GetNodeReference(LevelPoints.LEVELS_REFERENCE)
        moved = levelsNode is not None and LevelPoints.isEditedSinceCreated(levelsNode, volumeNode)
        edited = "yes" if moved or SegmentationNodes.isEditedSinceCreated(segmentationNode, volumeNode) else "no"
    return {"model": str(sidecar["model"]), "model_sha256": str(sidecar.get("model_sha256", "")), "edited": edited}


def _levels(segmentationNode, volumeNode, task: str) -> list:
    levelsNode = segmentationNode.GetNodeReference(LevelPoints.LEVELS_REFERENCE)
    if levelsNode is None:
        raise InputError(
            segmentationNode.GetName(),
            f"a {task} correction needs its disc levels; choose the point list with the levels and click "
            "Update measurements first",
        )
    return LevelPoints.levelPointsFromMarkups(levelsNode, volumeNode)


def _source(volumeNode) -> str:
    """The scan as the user gave it: its file, else the node's name."""
    storageNode = volumeNode.GetStorageNode()
    fileName = storageNode.GetFileName() if storageNode is not None else None
    return str(fileName) if fileName else volumeNode.GetName()


# --- site models and the model choice -----------------------------------------------------------


@dataclass(frozen=True)
class ModelChoice:
    label: str
    folder: Path | None  # None: the shipped model


def siteModelChoices(site, task: str) -> list[ModelChoice]:
    """What the model selector offers for ``task``: the shipped model first, then the site's models of
    the task, newest first, by name and date (records that cannot be read are not offered)."""
    from spineai.learning.site import site_models

    choices = [ModelChoice(SHIPPED_MODEL_LABEL, None)]
    for model in site_models(Path(site), task):
        created = str(model["created"]).replace("T", " ")[:16]
        choices.append(ModelChoice(f"{model['name']} ({created} UTC, {Path(model['folder']).name})", model["folder"]))
    return choices


def chosenModel(parameterNode, task: str) -> Path | None:
    """The site model chosen for ``task`` in the module's parameter node (vtkMRMLScriptedModuleNode), or None."""
    if parameterNode is None:
        return None
    folder = parameterNode.GetParameter(MODEL_PARAMETER + task)
    return Path(folder) if folder else None


def chooseModel(parameterNode, task: str, folder=None) -> None:
    """Segment ``task`` with the site model ``folder`` from now on; None: with the shipped model."""
    if folder is None:
        parameterNode.UnsetParameter(MODEL_PARAMETER + task)
    else:
        parameterNode.SetParameter(MODEL_PARAMETER + task, str(Path(folder)))


# --- fine-tuning -------------------------------------------------------------------------------


def fineTuneSummary(folder, task: str) -> list[str]:
    """What the panel shows of a finished fine-tune, from the model record's ``site`` block."""
    record = json.loads((Path(folder) / f"{task}.json").read_text(encoding="utf-8"))
    site = record["site"]
    lines = [
        f"{record['name']}: {site['steps']} steps in {site['seconds']} s on {site['device']} "
        f"(budget {site['budget_minutes']} min), written to {folder}."
    ]
    for before, after in zip(site["before"]["site"], site["after"]["site"], strict=True):
        lines.append(f"{before['case_id']} ({before['contrast']}): Dice {before['dice']:.3f} -> {after['dice']:.3f}")
    lines.append(f"Evaluated on {site['evaluated_on']}.")
    cases = site["cases"]
    plural = "s" if len(cases) != 1 else ""
    heldOut = site.get("held_out") or ("cases" if any(case["use"] == "held back" for case in cases) else "none")
    if heldOut == "slices":
        lines.append(
            f"With {len(cases)} case{plural}, the top fifth of each case's slices was held back from training: "
            "the Dice there is on slices the fine-tune did not see, next to ones it did (an optimistic figure), "
            "and it chose the mix of weights."
        )
    elif heldOut == "none":
        lines.append(
            f"With {len(cases)} case{plural} none is held back: the Dice is a fit check on the case{plural} trained "
            "on, not an accuracy (from three cases on, a fifth is held back to measure it)."
        )
    if (line := rehearsal_line(site)) is not None:
        lines.append(line)
    if "mixing" in site:  # records written before the mixing step have none
        share = site["mixing"]["share_of_fine_tuned_weights"]
        lines.append(
            f"Weights: {share:.0%} fine-tuned, {1 - share:.0%} the starting model's, the mix closest to the start "
            "that keeps most of the gain on these cases."
            if share
            else "The fine-tune gained nothing on these cases: the model keeps the starting weights."
        )
    lines.append("It is used only when chosen: select it under Model to segment with it.")
    return lines


class FineTuneJob:
    """One fine-tune in the background (``FineTuneWorker.py`` in an ``EngineProcess``), polled from the
    panel's timer like a ``SegmentationJob``: ``progressChanged(fraction)`` while training, then
    ``finished(folder)`` or ``failed(error)`` once (``Cancelled`` when the user cancelled).

    The model folder is a new ``SITE/models/<task>-<time>`` (``new_model_folder``). A cancelled or failed
    fine-tune leaves no model folder: the engine removes its half-written folder on any error, the worker
    turns Cancel's termination signal into one, and the job removes whatever a killed process left.
    """

    def __init__(
        self,
        site,
        task: str,
        minutes: float,
        device: str = "auto",
        process: EngineProcess | None = None,
        training: DependencyInstaller | None = None,
    ):
        self.site = Path(site)
        self.task = task
        self.minutes = minutes
        self.device = device
        self.process = process or EngineProcess()
        self.training = training  # default: DependencyInstaller.training(), made in start()
        self.state: JobState | None = None
        self.progress = 0.0
        self.log: list[str] = []
        self.workerPid: int | None = None
        self.outDir: Path | None = None
        self.progressChanged = Signal()  # (fraction 0..1 of the time budget)
        self.finished = Signal()  # (model folder)
        self.failed = Signal()  # (SpineAIError); Cancelled when the user cancelled
        self._done: dict | None = None
        self._error: str | None = None

    def start(self) -> None:
        """Check the request and start the worker; raises SpineAIError (no process started) for a bad one."""
        from .Logic import DEVICES

        if self.task not in MEASUREMENTS:
            raise SpineAIError(f"unknown task '{self.task}' (available: {', '.join(MEASUREMENTS)})")
        engineDevice = DEVICES.get(str(self.device).lower())
        if engineDevice is None:
            raise SpineAIError(f"unknown device '{self.device}' (choose auto, GPU or CPU)")
        if not self.minutes or self.minutes <= 0:
            raise SpineAIError(f"the fine-tune needs a positive time budget, not {self.minutes} minutes")
        (self.training or DependencyInstaller.training()).requireInstalled()
        from spineai.learning.site import new_model_folder, read_site

        if not read_site(self.site, self.task):  # every case's files checked: a damaged site stops here
            raise SpineAIError(
                f"{self.site}: no corrected {self.task} case yet; correct a {self.task} result and click "
                "Add this correction first"
            )
        self.outDir = new_model_folder(self.site, self.task)
        self.process.startFineTune(self.site, self.outDir, self.task, self.minutes, engineDevice)
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
            if self._error or self._done is None:
                tail = " | ".join(self.log[-3:])
                stopped = f"the fine-tune process stopped (exit code {self.process.exitCode})"
                raise SpineAIError(self._error or stopped + (f": {tail}" if tail else ""))
            folder = Path(self._done["folder"])
            if not (folder / f"{self.task}.json").is_file():
                raise SpineAIError(f"{folder}: the fine-tune reported a model folder that holds no {self.task} model")
        except SpineAIError as error:
            self._removeUnfinished()
            return self._end(JobState.FAILED, self.failed, error)
        return self._end(JobState.DONE, self.finished, folder)

    def cancel(self) -> None:
        if self.state is JobState.RUNNING:
            self.process.cancel()
            self._removeUnfinished()
            self._end(JobState.CANCELLED, self.failed, Cancelled())

    def _handle(self, event: dict) -> None:
        if "progress" in event:
            self.progress = float(event["progress"])
            self.progressChanged(self.progress)
        elif "error" in event:
            self._error = " ".join(str(event["error"]).split())  # one line for the panel
        elif "done" in event:
            self._done = event["done"]
        elif "pid" in event:
            self.workerPid = int(event["pid"])
        elif "log" in event:
            self.log.append(event["log"])

    def _removeUnfinished(self) -> None:
        """What a fine-tune that did not finish may have left: its model folder, half-written or renamed
        just before the process was stopped."""
        if self.outDir is None:
            return
        for leftover in [self.outDir, *self.outDir.parent.glob(f".partial-*-{self.outDir.name}")]:
            if leftover.exists():
                shutil.rmtree(leftover, ignore_errors=True)

    def _end(self, state: JobState, signal: Signal, *arguments) -> JobState:
        self.state = state
        signal(*arguments)
        return state
