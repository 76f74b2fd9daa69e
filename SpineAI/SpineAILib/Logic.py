"""SpineAI's logic without any GUI: segment a volume node, measure, export.

Used by the panel, the module's self-test and scripts::

    logic = SpineAILogic()
    segmentationNode, tableNode = logic.segment(volumeNode, task="cord", device="auto")
    tableNode = logic.updateMeasurements(segmentationNode, volumeNode, task="cord")  # after hand edits
    logic.exportCSV(tableNode, "/tmp/cord_morphometry.csv")
    # stenosis: disc levels from a point list labelled L1-L2 ... L5-S1, or found by the engine
    segmentationNode, tableNode = logic.segment(volumeNode, task="stenosis", levelsNode=pointListNode)
    # a site model (a fine-tuned model folder, SpineAILib.Teaching) instead of the shipped one
    segmentationNode, tableNode = logic.segment(volumeNode, task="cord", modelFolder="/path/site/models/cord-...")

``segment`` runs the engine in this process (blocking); the panel runs it in the background with
``SegmentationJob``, which ends in the same ``addResults``. Every error the user can act on is a
``spineai.errors.SpineAIError`` whose text is what the panel shows; nothing half-made stays in
the scene. A re-run on a volume never overwrites a result the user has edited: the previous node
is replaced only while it is exactly as SpineAI made it, otherwise the new result is a new node
(for the stenosis task, its disc-level point list counts too, unless that list is the one given to
the new run, which then keeps it).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import slicer
import slicer.util

from spineai.errors import InputError, SpineAIError
from spineai.tasks import TASKS

from . import LevelPoints, MeasurementTable, SegmentationNodes
from .Dependencies import DependencyInstaller, missingModuleError
from .Measurements import MEASUREMENTS, presentColumns
from .SceneTransaction import sceneTransaction
from .Terminology import stylesForTask, tasksInFile
from .VolumeConversion import arrayOnVolumeGrid, checkInputVolume, imageOnVolumeGrid, volumeToImage

TABLE_REFERENCE = "SpineAI.Measurements"
# Panel labels and engine names of the devices.
DEVICES = {"auto": "auto", "gpu": "cuda", "cuda": "cuda", "cpu": "cpu"}


def _engineSegment(image, task, device, progress, should_cancel, source, disc_levels=None, model_dir=None):
    """The engine in this process; ``disc_levels``: the stenosis task's level points; ``model_dir``: a
    site model folder of the task instead of the shipped model."""
    from spineai.pipeline import segment
    from spineai.tasks import TaskInputs

    inputs = TaskInputs(disc_levels=disc_levels, model_dir=model_dir)
    return segment(image, task, device, progress=progress, should_cancel=should_cancel, source=source, inputs=inputs)


def taskLabel(task: str) -> str:
    """The task as the panel names it ('Segment tumour' for the task 'tumor'); task names are code."""
    return TASKS[task].panel_name if task in TASKS else task


def engineTasks() -> dict:
    """The engine's task registry, which imports neither the network runtime nor the networks
    (so opening the panel stays fast and a broken GPU library cannot stop it from building)."""
    from spineai.tasks import TASKS as registered

    return registered


class SpineAILogic:
    def __init__(self, engine: Callable | None = None, dependencies: DependencyInstaller | None = None):
        """``engine``: the function that segments a SimpleITK image (default: the engine, in this process)."""
        self.engine = engine or _engineSegment
        self.dependencies = dependencies or DependencyInstaller()

    # --- tasks and checks ----------------------------------------------------------------------

    def availableTasks(self) -> list[str]:
        """Tasks with terminology lines that the installed engine provides, in the terminology file's order."""
        try:
            provided = engineTasks()
        except Exception:  # an engine that cannot be read: offer every task, the click says what is wrong
            return tasksInFile()
        return [task for task in tasksInFile() if task in provided]

    def checkRequest(self, volumeNode, task: str, device: str, modelFolder=None) -> str:
        """Raise SpineAIError for anything that would make the run fail; return the engine's device name.

        ``modelFolder``: a site model chosen for the task, which must hold a model record of the task
        (its weights' checksum is checked by the engine when it loads them).
        """
        checkInputVolume(volumeNode)
        if task not in tasksInFile():
            raise SpineAIError(f"unknown task '{task}' (available: {', '.join(tasksInFile())})")
        engineDevice = DEVICES.get(str(device).lower())
        if engineDevice is None:
            raise SpineAIError(f"unknown device '{device}' (choose auto, GPU or CPU)")
        self.dependencies.requireInstalled()
        if modelFolder is not None:
            from spineai.pipeline import check_model_folder

            check_model_folder(task, modelFolder)
        return engineDevice

    def installDependencies(self, confirm: Callable[[str], bool]) -> None:
        """Install what segmenting needs and wait (for scripts; the panel installs in the background)."""
        self.dependencies.install(confirm)

    def ensureTrainingPackages(self, confirm: Callable[[str], bool]):
        """Start installing what fine-tuning needs (torch on top of the inference packages), after asking.

        Returns the running ``InstallJob`` (poll it from a timer, as the panel does), or None when
        everything is installed already; raises DependencyError when the user declines.
        """
        return DependencyInstaller.training().startInstall(confirm)

    # --- segmentation --------------------------------------------------------------------------

    def segment(
        self,
        volumeNode,
        task: str = "cord",
        device: str = "auto",
        progress=None,
        shouldCancel=None,
        levelsNode=None,
        modelFolder=None,
    ):
        """Segment ``volumeNode``; return (segmentationNode, tableNode), tableNode None for tasks without one.

        ``levelsNode``: for the stenosis task, a point list with the disc levels (labels L1-L2 ...
        L5-S1); None lets the engine find the discs (sagittal or 3D T2 only). ``modelFolder``: a site
        model of the task (``SpineAILib.Teaching``) instead of the shipped model; None: the shipped model.
        """
        engineDevice = self.checkRequest(volumeNode, task, device, modelFolder)
        image = volumeToImage(volumeNode)
        options = {"disc_levels": self.levelPoints(task, volumeNode, levelsNode)} if needsLevels(task) else {}
        if modelFolder is not None:
            options["model_dir"] = Path(modelFolder).resolve()
        result = self.engine(image, task, engineDevice, progress, shouldCancel, volumeNode.GetName(), **options)
        return self.addResults(volumeNode, task, result, levelsNode)

    @staticmethod
    def levelPoints(task: str, volumeNode, levelsNode) -> list | None:
        """The points of ``levelsNode`` as the engine's LevelPoints for a task that needs levels, else None.

        Raises InputError (naming the point) for a list the engine could not use.
        """
        if levelsNode is None or not needsLevels(task):
            return None
        return LevelPoints.levelPointsFromMarkups(levelsNode, volumeNode)

    def addResults(self, volumeNode, task: str, result, levelsNode=None):
        """Turn an engine result into nodes: a new segmentation node (+ table and chart), all or nothing.

        For the stenosis task the result refers to its disc levels: ``levelsNode``, the list the run
        was given, or else a new point list of the levels the engine found (``sidecar["disc_levels"]``).
        """
        if volumeNode is None or not slicer.mrmlScene.IsNodePresent(volumeNode):
            raise InputError("input volume", "was removed from the scene during the run; nothing was added")
        array = arrayOnVolumeGrid(result.mask, volumeNode)
        segmentMask = TASKS[task].segment_mask  # bit flags for overlapping segments (tumour), else values
        if not any(np.any(segmentMask(array, labelValue)) for labelValue, _ in result.segments):
            names = " or ".join(name for _, name in result.segments).lower()
            raise InputError(
                volumeNode.GetName(),
                f"no {names} found (is it in the scan, in a supported contrast?); nothing was added",
            )
        if levelsNode is not None and not slicer.mrmlScene.IsNodePresent(levelsNode):
            levelsNode = None  # removed during the run: the result gets a list of the levels it used
        previous = [
            node
            for node in SegmentationNodes.previousResults(volumeNode, task)
            if not SegmentationNodes.isEditedSinceCreated(node, volumeNode)
            and not _levelsEdited(node, volumeNode, keptBy=levelsNode)
        ]
        terminologyLogic = _moduleLogic("terminologies")
        with sceneTransaction(slicer.mrmlScene):
            name = _freeName(f"{volumeNode.GetName()} {task} segmentation", replaced=previous)
            segmentationNode = SegmentationNodes.createSegmentationNode(volumeNode, task, name)
            SegmentationNodes.setSegmentsFromMask(
                segmentationNode, volumeNode, array, result.segments, segmentMask, stylesForTask(task), terminologyLogic
            )
            segmentationNode.SetAttribute(SegmentationNodes.SIDECAR_ATTRIBUTE, _json(result.sidecar))
            if needsLevels(task):
                if levelsNode is None:
                    replacedLists = [_madeLevels(node) for node in previous if _madeLevels(node) is not None]
                    levelsName = _freeName(f"{volumeNode.GetName()} disc levels", replaced=replacedLists)
                    levelsNode = LevelPoints.createLevelsNode(
                        volumeNode, result.sidecar.get("disc_levels", []), levelsName
                    )
                segmentationNode.SetNodeReferenceID(LevelPoints.LEVELS_REFERENCE, levelsNode.GetID())
            tableNode = self.updateMeasurements(segmentationNode, volumeNode, task)
        # Only now that the new result is complete: drop earlier results that were never edited.
        for node in previous:
            self.removeResult(node)
        return segmentationNode, tableNode

    def removeResult(self, segmentationNode) -> None:
        """Remove a result node with its table, chart and chart series, and the disc-level point list
        SpineAI made for it unless another segmentation refers to that list (a user's list stays)."""
        tableNode = segmentationNode.GetNodeReference(TABLE_REFERENCE)
        chartNode = tableNode.GetNodeReference(MeasurementTable.CHART_REFERENCE) if tableNode else None
        levelsNode = _madeLevels(segmentationNode)
        if levelsNode is not None and _referencedElsewhere(levelsNode, segmentationNode):
            levelsNode = None
        nodes = [segmentationNode, tableNode, chartNode, levelsNode]
        if chartNode:
            nodes += [chartNode.GetNthPlotSeriesNode(i) for i in range(chartNode.GetNumberOfPlotSeriesNodes())]
        for node in nodes:
            if node is not None and slicer.mrmlScene.IsNodePresent(node):
                slicer.mrmlScene.RemoveNode(node)

    # --- measurements --------------------------------------------------------------------------

    def updateMeasurements(self, segmentationNode, volumeNode, task: str = "cord", levelsNode=None):
        """(Re)compute the task's measurements from the segmentation as it is now, e.g. after hand edits.

        Fills the table node the segmentation refers to (created, with its chart if the task has one,
        the first time), keeps the measurement's flags and notes in the table's
        ``SpineAI.MeasurementFlags`` attribute, and returns the table; returns None for a task
        without measurements. The stenosis task grades at the points of the disc-level list the
        segmentation refers to, as they are now (moved points included); ``levelsNode`` is used
        (and referred to from then on) only by a segmentation that refers to none.
        """
        if segmentationNode is None:
            raise SpineAIError("no segmentation selected; segment a volume first or select a SpineAI segmentation")
        checkInputVolume(volumeNode)
        spec = MEASUREMENTS.get(task)
        if spec is None:
            return None
        self.dependencies.requireInstalled()  # measuring imports the engine's code: same packages as segmenting
        try:
            return self._measure(segmentationNode, volumeNode, task, spec, levelsNode)
        except ImportError as error:  # installed but not importable (e.g. a broken or half-done installation)
            raise missingModuleError(error, "measuring") from error

    def _measure(self, segmentationNode, volumeNode, task, spec, levelsNode):
        arguments = []
        if spec.needsLevels:
            levelsNode = segmentationNode.GetNodeReference(LevelPoints.LEVELS_REFERENCE) or levelsNode
            if levelsNode is None:
                raise SpineAIError(
                    f"{segmentationNode.GetName()}: no disc levels to grade at; choose a point list with the "
                    "levels (labelled L1-L2 ... L5-S1) and click Update measurements"
                )
            levels = LevelPoints.levelPointsFromMarkups(levelsNode, volumeNode)
        labelMap = segmentsLabelMap(segmentationNode, volumeNode, task, spec)
        if spec.needsImage:
            arguments.append(volumeToImage(volumeNode))
        if spec.needsLevels:
            arguments.append(levels)
        rows, flags = spec.measure(labelMap, *arguments)
        tableNode = segmentationNode.GetNodeReference(TABLE_REFERENCE)
        with sceneTransaction(slicer.mrmlScene):
            if spec.needsLevels:
                segmentationNode.SetNodeReferenceID(LevelPoints.LEVELS_REFERENCE, levelsNode.GetID())
            created = tableNode is None
            if created:
                tableNode = slicer.mrmlScene.AddNewNodeByClass(
                    "vtkMRMLTableNode", f"{volumeNode.GetName()} {task} measurements"
                )
                SegmentationNodes.placeBesideVolume(tableNode, volumeNode)
                segmentationNode.SetNodeReferenceID(TABLE_REFERENCE, tableNode.GetID())
            # An edit drops the segment's 3D surface: rebuild it with the measurements, so the 3D view
            # shows what was measured.
            SegmentationNodes.showSurfaces(segmentationNode)
            MeasurementTable.fillTable(tableNode, rows, presentColumns(spec, rows), spec.units())
            MeasurementTable.setFlags(tableNode, flags)
            if created and spec.chart is not None:
                name = f"{volumeNode.GetName()} {spec.chart.title}"
                color = stylesForTask(task)[spec.segments[0][1]].color  # the chart plots the first segment (cord)
                chart = MeasurementTable.createChart(tableNode, name, spec.chart, color)
                SegmentationNodes.placeBesideVolume(chart, volumeNode)
        return tableNode

    def exportCSV(self, tableNode, path):
        """Write the table to ``path`` (.csv added if missing); return the written path."""
        if tableNode is None:
            raise SpineAIError("no measurement table selected; segment a volume first")
        return MeasurementTable.exportCSV(tableNode, path)


def needsLevels(task: str) -> bool:
    """Whether the task works at disc levels (stenosis): the engine takes them, the result keeps them."""
    spec = MEASUREMENTS.get(task)
    return spec is not None and spec.needsLevels


def _madeLevels(segmentationNode):
    """The disc-level point list SpineAI made for the result, or None (none, or the user's own list)."""
    levelsNode = segmentationNode.GetNodeReference(LevelPoints.LEVELS_REFERENCE)
    return levelsNode if levelsNode is not None and LevelPoints.isMadeBySpineAI(levelsNode) else None


def _levelsEdited(segmentationNode, volumeNode, keptBy=None) -> bool:
    """Whether the user moved the points of the list SpineAI made for the result; an edited list
    given to the new run (``keptBy``) stays with the new result, so it does not count."""
    levelsNode = _madeLevels(segmentationNode)
    if levelsNode is None or levelsNode is keptBy:
        return False
    return LevelPoints.isEditedSinceCreated(levelsNode, volumeNode)


def _referencedElsewhere(node, segmentationNode) -> bool:
    others = slicer.util.getNodesByClass("vtkMRMLSegmentationNode")
    return any(
        other.GetID() != segmentationNode.GetID()
        and other.GetNodeReferenceID(LevelPoints.LEVELS_REFERENCE) == node.GetID()
        for other in others
    )


def segmentsLabelMap(segmentationNode, volumeNode, task: str, spec, action: str = "measure") -> sitk.Image:
    """The spec's segments as one uint8 label map on the volume's grid, as the engine labels them.

    The inverse of ``Task.segment_mask``: for a task with overlapping segments (tumour) each
    segment ORs its bit (cord 1 | tumour 2 = 3 where both are); otherwise each segment is painted
    with its value, later segments winning overlaps. Raises InputError when the spec's required
    segment is empty, or, for a spec without one, when every segment is empty (``action``: what the
    message says there is nothing to do, 'measure' or 'add').
    """
    styles = stylesForTask(task)
    overlapping = TASKS[task].overlapping
    labels = None
    for labelValue, name in spec.segments:
        style = styles.get(name)
        if style is None:
            raise SpineAIError(f"segment '{name}' has no line in the terminology table (spineai/terminology.csv)")
        segmentId = _findSegmentId(segmentationNode, style.segmentId, name)
        voxels = SegmentationNodes.segmentMask(segmentationNode, segmentId, volumeNode) > 0
        if name == spec.required and not voxels.any():
            raise InputError(segmentationNode.GetName(), f"the '{name}' segment is empty; nothing to {action}")
        labels = np.zeros(voxels.shape, np.uint8) if labels is None else labels
        labels[voxels] = (labels[voxels] | labelValue) if overlapping else labelValue
    if spec.required is None and not labels.any():
        names = ", ".join(f"'{name}'" for _, name in spec.segments)
        raise InputError(segmentationNode.GetName(), f"the {names} segments are all empty; nothing to {action}")
    return imageOnVolumeGrid(labels, volumeNode)


def _findSegmentId(segmentationNode, segmentId: str, name: str) -> str:
    segmentation = segmentationNode.GetSegmentation()
    if segmentation.GetSegment(segmentId) is not None:
        return segmentId
    byName = segmentation.GetSegmentIdBySegmentName(name)
    if byName:
        return byName
    raise SpineAIError(f"{segmentationNode.GetName()}: has no '{name}' segment to measure")


def _freeName(name: str, replaced: list) -> str:
    """``name``, or a unique variant of it when a node that stays in the scene already has it."""
    replacedIDs = {node.GetID() for node in replaced}
    scene = slicer.mrmlScene
    nodes = (scene.GetNthNode(index) for index in range(scene.GetNumberOfNodes()))
    taken = [node for node in nodes if node.GetName() == name and node.GetID() not in replacedIDs]
    return slicer.mrmlScene.GenerateUniqueName(name) if taken else name


def _moduleLogic(name: str):
    modules = getattr(slicer, "modules", None)
    module = getattr(modules, name, None)
    return module.logic() if module is not None else None


def _json(data) -> str:
    return json.dumps(data, default=str)
