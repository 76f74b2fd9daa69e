"""SpineAI: from a spine MRI to a coded cord segmentation and a measurement table, in one click.

This file only wires the panel (Resources/UI/SpineAI.ui) to the logic in SpineAILib, which imports
no Qt and is tested outside Slicer on real MRML (Testing/module, see docs/slicer-module.md).
Segmentation, package installation and fine-tuning run in the background: a job starts a separate
process and the panel polls it from a QTimer, so Slicer stays responsive and Cancel stops the run at once.
The Teach SpineAI section (SpineAILib.Teaching) stores corrections in a site folder, fine-tunes on them
and chooses the model each task's Segment button uses.
Every click that fails ends in a message in the panel and the log (SpineAILib.PanelActions).

Slicer older than 5.10 (Python 3.9) loads only the version check below and shows its one line.
"""

import json
import logging
from pathlib import Path
from typing import Annotated

import qt
import slicer
import vtk
from slicer.i18n import tr as _
from slicer.i18n import translate
from slicer.parameterNodeWrapper import Choice, WithinRange, parameterNodeWrapper
from slicer.ScriptedLoadableModule import (
    ScriptedLoadableModule,
    ScriptedLoadableModuleLogic,
    ScriptedLoadableModuleTest,
    ScriptedLoadableModuleWidget,
)
from slicer.util import VTKObservationMixin
from SpineAILib.Compatibility import runningSlicerVersion, slicerVersionProblem

VERSION_PROBLEM = slicerVersionProblem(runningSlicerVersion(slicer.app))

if VERSION_PROBLEM is None:
    # The rest needs Slicer >= 5.10 and its Python: not imported where it could not run.
    from SpineAILib import JobState, SegmentationJob, Teaching
    from SpineAILib import SpineAILogic as EngineLogic
    from SpineAILib.Dependencies import DependencyError
    from SpineAILib.LevelPoints import LEVELS_REFERENCE
    from SpineAILib.Logic import needsLevels, taskLabel
    from SpineAILib.MeasurementTable import CHART_REFERENCE, tableFlags
    from SpineAILib.PanelActions import runGuarded
    from SpineAILib.ResultsView import showResults
    from SpineAILib.SampleScan import registerSampleData
    from SpineAILib.SegmentationNodes import SIDECAR_ATTRIBUTE, TASK_ATTRIBUTE, contrastNote, referenceVolume
    from SpineAILib.Terminology import stylesForTask

    from spineai.errors import Cancelled
else:
    logging.error(VERSION_PROBLEM)
    EngineLogic = object  # never instantiated: the panel shows VERSION_PROBLEM instead

DOCUMENTATION_URL = "https://github.com/spineai/SlicerSpineAI/blob/main/docs/slicer-module.md"  # EXTENSION_HOMEPAGE


class SpineAI(ScriptedLoadableModule):
    def __init__(self, parent):
        ScriptedLoadableModule.__init__(self, parent)
        self.parent.title = _("SpineAI")
        self.parent.categories = [translate("qSlicerAbstractCoreModule", "Segmentation")]
        self.parent.dependencies = []
        self.parent.contributors = ["SpineAI contributors"]  # as EXTENSION_CONTRIBUTORS in CMakeLists.txt
        self.parent.helpText = _(
            "Deep-learning analysis of spine MRI. Select a scan and click <b>Segment cord</b>: the spinal cord "
            "is segmented (standard SNOMED CT terminology), measured slice by slice (cross-sectional area, "
            "diameters, ... with units) and plotted along the cord. <b>Segment lesion</b> (axial T2) segments the "
            "cord and a spinal cord injury lesion inside it and measures each lesion (volume, length, width, "
            "tissue bridges, ...) with a total row. <b>Segment tumour</b> (Gd-enhanced T1) segments the cord and "
            "spinal tumours, which may lie inside the cord (overlapping segments), and measures each tumour (volume, "
            "diameters, compartment, ...). <b>Segment dural sac</b> (lumbar T2) segments the dural sac, its CSF "
            "and the posterior epidural fat at each disc level L1-L2 ... L5-S1 and grades central stenosis "
            "(Schizas, Lee, dural sac area) by documented rules; give the levels as a point list labelled "
            "L1-L2 ... L5-S1 (needed on an axial stack), or let it find the discs on a sagittal or 3D T2. "
            "Edit the segmentation in Segment Editor (or move a level point) and click "
            "<b>Update measurements</b>; export the table as CSV. <b>Teach SpineAI</b>: add corrected results to "
            "a site folder, fine-tune the task's model on them in the background, and choose the site model "
            "(or the shipped one) for the Segment buttons."
        )
        self.parent.helpText += " " + _(
            'Sample data: "SpineAI cervical T2" in the Sample Data module. Documentation, step by step: '
            '<a href="{url}">SpineAI in 3D Slicer</a>.'
        ).format(url=DOCUMENTATION_URL)
        if VERSION_PROBLEM:
            self.parent.helpText = f"<b>{VERSION_PROBLEM}</b><br>" + self.parent.helpText
        self.parent.acknowledgementText = _(
            "The cord morphometry follows the Spinal Cord Toolbox (sct_process_segmentation). The bundled sample "
            "scan comes from the Spinal Cord Toolbox test data (MIT licence)."
        )
        if VERSION_PROBLEM is None:
            slicer.app.connect("startupCompleted()", registerSampleData)


@parameterNodeWrapper
class SpineAIParameterNode:
    inputVolume: slicer.vtkMRMLScalarVolumeNode
    device: Annotated[str, Choice(["auto", "GPU", "CPU"])] = "auto"
    segmentation: slicer.vtkMRMLSegmentationNode
    table: slicer.vtkMRMLTableNode
    levelPoints: slicer.vtkMRMLMarkupsFiducialNode  # stenosis: disc levels L1-L2 ... L5-S1, or None
    # Teach SpineAI: the site folder (empty: the remembered one, else the engine's default) and the
    # fine-tune's time budget. The site model chosen per task is kept beside these (Teaching.chooseModel).
    siteFolder: Path
    fineTuneMinutes: Annotated[float, WithinRange(0.1, 600.0)] = 5.0


SITE_FOLDER_SETTING = "SpineAI/SiteFolder"  # QSettings: the site folder, remembered between sessions


class SpineAIWidget(ScriptedLoadableModuleWidget, VTKObservationMixin):
    POLL_INTERVAL_MS = 100

    def __init__(self, parent=None) -> None:
        ScriptedLoadableModuleWidget.__init__(self, parent)
        VTKObservationMixin.__init__(self)
        self.logic = None
        self.job = None  # the running SegmentationJob, InstallJob or FineTuneJob, polled by pollTimer
        self.cancelledText = ""  # what the status line says when that job is cancelled
        self.taskButtons = {}
        self.teachTasks = []  # the tasks of teachTaskComboBox, by index
        self.modelChoices = []  # the Teaching.ModelChoice of modelComboBox, by index
        self._teachShown = None  # (site folder, task) the Teach section shows, refreshed when either changes
        self._followedSegmentationID = None  # the result whose task the Teach section took
        self._fillingTeach = False
        self._parameterNode = None
        self._parameterNodeGuiTag = None
        self.pollTimer = qt.QTimer()
        self.pollTimer.setInterval(self.POLL_INTERVAL_MS)
        self.pollTimer.timeout.connect(self.onPoll)

    def setup(self) -> None:
        ScriptedLoadableModuleWidget.setup(self)
        if VERSION_PROBLEM:
            label = qt.QLabel(VERSION_PROBLEM)
            label.wordWrap = True
            self.layout.addWidget(label)
            self.layout.addStretch(1)
            return
        uiWidget = slicer.util.loadUI(self.resourcePath("UI/SpineAI.ui"))
        self.layout.addWidget(uiWidget)
        self.ui = slicer.util.childWidgetVariables(uiWidget)
        uiWidget.setMRMLScene(slicer.mrmlScene)
        self.logic = SpineAILogic()
        self.addTaskSections()

        self.ui.cancelButton.clicked.connect(self.onCancel)
        self.ui.updateMeasurementsButton.clicked.connect(self.onUpdateMeasurements)
        self.ui.exportCSVButton.clicked.connect(self.onExportCSV)
        self.addTeachTasks()
        self.ui.teachCollapsibleButton.contentsCollapsed.connect(lambda collapsed: self.updateTeach())
        self.ui.teachTaskComboBox.currentIndexChanged.connect(lambda index: self.updateTeach())
        self.ui.modelComboBox.currentIndexChanged.connect(self.onModelChosen)
        self.ui.addCorrectionButton.clicked.connect(self.onAddCorrection)
        self.ui.fineTuneButton.clicked.connect(self.onFineTune)
        self.ui.useShippedModelButton.clicked.connect(self.onUseShippedModel)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.StartCloseEvent, self.onSceneStartClose)
        self.addObserver(slicer.mrmlScene, slicer.mrmlScene.EndCloseEvent, self.onSceneEndClose)
        self.showRunning(False)
        self.initializeParameterNode()

    def addTaskSections(self) -> None:
        """One section with one button per task, from the task list (the engine's terminology table x its tasks).

        The section of a task that works at disc levels (stenosis) also holds the level point list selector.
        """
        layout = self.ui.tasksCollapsibleButton.layout()
        levelsPlaced = False
        for task in self.logic.availableTasks():
            names = ", ".join(stylesForTask(task))
            section = qt.QGroupBox(names)
            sectionLayout = qt.QVBoxLayout(section)
            if needsLevels(task) and not levelsPlaced:
                sectionLayout.addWidget(self.ui.levelPointsWidget)
                levelsPlaced = True
            button = qt.QPushButton(_("Segment {task}").format(task=taskLabel(task)))
            button.toolTip = _("Segment {names} in the input volume, then measure it").format(names=names)
            button.clicked.connect(lambda checked=False, task=task: self.onSegment(task))
            sectionLayout.addWidget(button)
            layout.addWidget(section)
            self.taskButtons[task] = button
        self.ui.levelPointsWidget.visible = levelsPlaced

    def addTeachTasks(self) -> None:
        """The Teach section's task list: the tasks with Segment buttons."""
        self.teachTasks = list(self.taskButtons)
        for task in self.teachTasks:
            self.ui.teachTaskComboBox.addItem(taskLabel(task))

    def cleanup(self) -> None:
        self.cancelRun()
        self.removeObservers()

    def enter(self) -> None:
        if not VERSION_PROBLEM:
            self.initializeParameterNode()

    def exit(self) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self._parameterNodeGuiTag = None
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)

    def onSceneStartClose(self, caller, event) -> None:
        if not isinstance(self.job, Teaching.FineTuneJob):  # a fine-tune works on the site folder, not the scene
            self.cancelRun()
        self.setParameterNode(None)

    def onSceneEndClose(self, caller, event) -> None:
        if self.parent.isEntered:
            self.initializeParameterNode()

    def initializeParameterNode(self) -> None:
        self.setParameterNode(self.logic.getParameterNode())
        if not self._parameterNode.inputVolume:
            self._parameterNode.inputVolume = slicer.mrmlScene.GetFirstNodeByClass("vtkMRMLScalarVolumeNode")
        if str(self._parameterNode.siteFolder) in ("", ".") and qt.QSettings().value(SITE_FOLDER_SETTING):
            self._parameterNode.siteFolder = Path(qt.QSettings().value(SITE_FOLDER_SETTING))

    def setParameterNode(self, inputParameterNode) -> None:
        if self._parameterNode:
            self._parameterNode.disconnectGui(self._parameterNodeGuiTag)
            self.removeObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
        self._parameterNode = inputParameterNode
        if self._parameterNode:
            self._parameterNodeGuiTag = self._parameterNode.connectGui(self.ui)
            self.addObserver(self._parameterNode, vtk.vtkCommand.ModifiedEvent, self.updateButtons)
            self.updateButtons()

    def busy(self) -> bool:
        return self.job is not None and self.job.state is JobState.RUNNING

    def updateButtons(self, caller=None, event=None) -> None:
        running = self.busy()
        hasInput = bool(self._parameterNode and self._parameterNode.inputVolume)
        for task, button in self.taskButtons.items():
            button.enabled = hasInput and not running
            siteModel = self._parameterNode and Teaching.chosenModel(self._parameterNode.parameterNode, task)
            label = _("Segment {task}").format(task=taskLabel(task))
            button.text = label + (" " + _("(site model)") if siteModel else "")
        hasSegmentation = bool(self._parameterNode and self._parameterNode.segmentation)
        self.ui.updateMeasurementsButton.enabled = hasSegmentation and not running
        self.ui.exportCSVButton.enabled = bool(self._parameterNode and self._parameterNode.table)
        self.ui.addCorrectionButton.enabled = hasSegmentation and not running
        for widget in (self.ui.fineTuneButton, self.ui.modelComboBox, self.ui.useShippedModelButton):
            widget.enabled = bool(self._parameterNode) and not running
        self.updateTeach()

    def showRunning(self, running: bool) -> None:
        self.ui.runWidget.visible = running
        self.ui.cancelButton.enabled = running
        self.ui.inputsCollapsibleButton.enabled = not running
        if running:
            self.ui.progressBar.value = 0
        self.updateButtons()

    # --- clicks: every failure ends in a message; missing packages lead to the installation ----

    def runClick(self, name: str, action, retry) -> None:
        """Run one click's ``action``; a DependencyError with packages missing offers the installation,
        after which ``retry`` runs the click again; any other failure is shown in the panel."""

        def onError(error) -> None:
            if isinstance(error, DependencyError) and self.logic.dependencies.missing():
                runGuarded(lambda: self.startInstallation(retry), self.showMessage, _("Installing packages"))
            else:
                self.showMessage(error)

        runGuarded(action, onError, name)

    def startInstallation(self, then) -> None:
        job = self.logic.dependencies.startInstall(
            lambda question: slicer.util.confirmOkCancelDisplay(question, "SpineAI")
        )
        if job is None:  # installed meanwhile
            then()
            return
        job.progressChanged.connect(self.onInstallProgress)
        job.finished.connect(lambda: self.onInstalled(then))
        job.failed.connect(self.onFailed)
        self.startPolling(
            job, _("Installing Python packages (Slicer stays usable)..."), _("Installation cancelled; nothing changed.")
        )

    def onInstallProgress(self, fraction: float, text: str) -> None:
        self.ui.progressBar.value = round(100 * fraction)
        self.ui.statusLabel.text = _("Installing Python packages: {text}").format(text=text)

    def onInstalled(self, then) -> None:
        self.showRunning(False)
        self.ui.statusLabel.text = _("Python packages installed.")
        runGuarded(then, self.showMessage, _("After installation"))

    def startPolling(self, job, status: str, cancelledText: str) -> None:
        self.job = job
        self.cancelledText = cancelledText
        self.ui.statusLabel.text = status
        self.showRunning(True)
        self.pollTimer.start()

    def onPoll(self) -> None:
        job = self.job
        if job is None:
            self.pollTimer.stop()
            return
        state = runGuarded(job.poll, self.onFailed, _("Background run")) and job.state
        # A finished installation may have started the run it was installed for: keep polling that one.
        if self.job is job and state is not JobState.RUNNING:
            self.pollTimer.stop()
            self.updateButtons()

    # --- running a task ------------------------------------------------------------------------

    def onSegment(self, task: str) -> None:
        if self.busy():
            return
        name = _("Segment {task}").format(task=taskLabel(task))
        self.runClick(name, lambda: self.startSegmentation(task), lambda: self.onSegment(task))

    def startSegmentation(self, task: str) -> None:
        levelsNode = self._parameterNode.levelPoints if needsLevels(task) else None
        modelFolder = Teaching.chosenModel(self._parameterNode.parameterNode, task)  # None: the shipped model
        job = SegmentationJob(
            self.logic,
            self._parameterNode.inputVolume,
            task,
            self._parameterNode.device,
            levelsNode=levelsNode,
            modelFolder=modelFolder,
        )
        job.progressChanged.connect(self.onProgress)
        job.finished.connect(self.onFinished)
        job.failed.connect(self.onFailed)
        job.start()
        status = _("Segmenting {task}...") if modelFolder is None else _("Segmenting {task} with the site model...")
        self.startPolling(job, status.format(task=taskLabel(task)), _("Cancelled; nothing was added to the scene."))

    def onProgress(self, fraction: float) -> None:
        self.ui.progressBar.value = round(100 * fraction)

    def onFinished(self, segmentationNode, tableNode) -> None:
        self.showRunning(False)
        self._parameterNode.segmentation = segmentationNode
        self._parameterNode.table = tableNode
        sidecar = json.loads(segmentationNode.GetAttribute(SIDECAR_ATTRIBUTE) or "{}")
        self.ui.statusLabel.text = _(
            "{name}: segmented in {seconds} s on {device}. Edit it in Segment Editor, then Update measurements."
        ).format(name=segmentationNode.GetName(), seconds=sidecar.get("seconds"), device=sidecar.get("device"))
        self.ui.statusLabel.text += self.resultNotes(segmentationNode, tableNode)
        levelsNode = segmentationNode.GetNodeReference(LEVELS_REFERENCE)
        if levelsNode is not None:
            self.ui.statusLabel.text += " " + _(
                "Disc levels: {name} (move a point, then Update measurements; segment again with it chosen "
                "to segment at the moved levels)."
            ).format(name=levelsNode.GetName())
        runGuarded(lambda: self.showResultViews(tableNode), self.showMessage, _("Showing the results"))

    def showResultViews(self, tableNode) -> None:
        """The scan, the 3D surface, the CSA plot and the table in the SpineAI results layout."""
        chart = tableNode.GetNodeReference(CHART_REFERENCE) if tableNode is not None else None
        if showResults(slicer.mrmlScene, slicer.app.applicationLogic(), tableNode, chart):
            layoutManager = slicer.app.layoutManager()
            if layoutManager is not None and layoutManager.threeDViewCount:
                layoutManager.threeDWidget(0).threeDView().resetFocalPoint()

    def onFailed(self, error) -> None:
        self.showRunning(False)
        self.showMessage(error)

    def onCancel(self) -> None:
        self.cancelRun()

    def cancelRun(self) -> None:
        if self.job is not None:
            self.job.cancel()
        self.pollTimer.stop()

    def showMessage(self, error: Exception) -> None:
        if isinstance(error, Cancelled):
            self.ui.statusLabel.text = self.cancelledText or _("Cancelled; nothing was added to the scene.")
            return
        self.ui.statusLabel.text = str(error)
        slicer.util.errorDisplay(str(error), windowTitle="SpineAI")

    # --- results -------------------------------------------------------------------------------

    def onUpdateMeasurements(self) -> None:
        if self.busy():
            return
        self.runClick(_("Update measurements"), self.updateMeasurements, self.onUpdateMeasurements)

    def updateMeasurements(self) -> None:
        # Measure on the grid the segmentation was made on, for the task that made it.
        segmentationNode = self._parameterNode.segmentation
        volumeNode = self._parameterNode.inputVolume
        task = "cord"
        if segmentationNode is not None:
            volumeNode = referenceVolume(segmentationNode) or volumeNode
            task = segmentationNode.GetAttribute(TASK_ATTRIBUTE) or task
        self._parameterNode.table = self.logic.updateMeasurements(
            segmentationNode, volumeNode, task, levelsNode=self._parameterNode.levelPoints
        )
        self.ui.statusLabel.text = _("Measurements updated from {name}.").format(name=segmentationNode.GetName())
        self.ui.statusLabel.text += self.resultNotes(segmentationNode, self._parameterNode.table)

    @staticmethod
    def resultNotes(segmentationNode, tableNode) -> str:
        """For the status line: the expected vs apparent contrast (tumour task) and the measurement's
        notes (e.g. 'no lesion inside the cord'), or ''."""
        notes = [contrastNote(segmentationNode)] if segmentationNode is not None else []
        notes += tableFlags(tableNode).get("notes", []) if tableNode is not None else []
        notes = [note for note in notes if note]
        return (" " + _("Notes: {notes}.").format(notes="; ".join(notes))) if notes else ""

    def onExportCSV(self) -> None:
        runGuarded(self.exportCSV, self.showMessage, _("Export CSV"))

    def exportCSV(self) -> None:
        tableNode = self._parameterNode.table
        suggested = str(Path(slicer.app.defaultScenePath) / f"{tableNode.GetName()}.csv")
        path = qt.QFileDialog.getSaveFileName(self.parent, _("Export measurements"), suggested, "CSV (*.csv)")
        if not path:
            return
        written = self.logic.exportCSV(tableNode, path)
        self.ui.statusLabel.text = _("Saved {path}").format(path=written)

    # --- Teach SpineAI: corrections, fine-tuning, the model of each task ------------------------

    def teachTask(self):
        """The task chosen in the Teach section (None before the panel has tasks)."""
        index = self.ui.teachTaskComboBox.currentIndex
        return self.teachTasks[index] if 0 <= index < len(self.teachTasks) else None

    def siteFolder(self) -> Path:
        """The site folder: the panel's, else the engine's default (shown in the panel once the section opens)."""
        return Teaching.siteFolder(self._parameterNode.siteFolder if self._parameterNode else None)

    def updateTeach(self) -> None:
        """Follow the task of a newly selected result; when the section is open, show the site folder, its
        count of corrected cases and the model choices of the task (read again when either changes)."""
        if self._fillingTeach or not self._parameterNode:
            return
        self._fillingTeach = True
        try:
            segmentationNode = self._parameterNode.segmentation
            segmentationID = segmentationNode.GetID() if segmentationNode is not None else None
            if segmentationID != self._followedSegmentationID:
                self._followedSegmentationID = segmentationID
                resultTask = segmentationNode.GetAttribute(TASK_ATTRIBUTE) if segmentationNode is not None else None
                if resultTask in self.teachTasks:
                    self.ui.teachTaskComboBox.currentIndex = self.teachTasks.index(resultTask)
            if self.ui.teachCollapsibleButton.collapsed:
                return  # nothing of the engine's learning code is read until the section is opened
            shown = (str(self._parameterNode.siteFolder), self.teachTask())
            if shown != self._teachShown:
                self._teachShown = shown  # also when reading fails: tried again once the folder or task changes
                runGuarded(self.refreshTeach, self.showTeachProblem, _("Teach SpineAI"))
            self.selectChosenModel()
        finally:
            self._fillingTeach = False

    def showTeachProblem(self, error) -> None:
        """A site folder that cannot be read is said beside the count, not in a message box: the section
        reads it again as the user types a folder."""
        self.ui.caseCountLabel.text = str(error)

    def refreshTeach(self) -> None:
        if str(self._parameterNode.siteFolder) in ("", "."):
            self._parameterNode.siteFolder = Teaching.siteFolder()  # the engine's default site folder
        folder = str(self._parameterNode.siteFolder)
        self._teachShown = (folder, self.teachTask())
        qt.QSettings().setValue(SITE_FOLDER_SETTING, folder)
        task = self.teachTask()
        self.modelChoices = []
        self.ui.modelComboBox.clear()
        if task is None:
            return
        self.ui.caseCountLabel.text = Teaching.caseCountText(self.siteFolder(), task)
        choices = Teaching.siteModelChoices(self.siteFolder(), task)
        chosen = Teaching.chosenModel(self._parameterNode.parameterNode, task)
        if chosen is not None and chosen not in [choice.folder for choice in choices]:
            # Chosen before, not in this site folder (or gone): still listed, so it is never changed silently.
            label = _("{name} (chosen; not in this site folder)").format(name=chosen)
            choices.append(Teaching.ModelChoice(label, chosen))
        self.modelChoices = choices
        for choice in choices:
            self.ui.modelComboBox.addItem(choice.label)

    def selectChosenModel(self) -> None:
        chosen = Teaching.chosenModel(self._parameterNode.parameterNode, self.teachTask() or "")
        folders = [choice.folder for choice in self.modelChoices]
        if chosen in folders and self.ui.modelComboBox.currentIndex != folders.index(chosen):
            self.ui.modelComboBox.currentIndex = folders.index(chosen)

    def onModelChosen(self, index: int) -> None:
        if self._fillingTeach or not self._parameterNode or not 0 <= index < len(self.modelChoices):
            return
        task = self.teachTask()
        folder = self.modelChoices[index].folder
        Teaching.chooseModel(self._parameterNode.parameterNode, task, folder)
        model = _("the shipped model") if folder is None else self.modelChoices[index].label
        self.ui.statusLabel.text = _("Segment {task} now uses {model}.").format(task=taskLabel(task), model=model)

    def onUseShippedModel(self) -> None:
        task = self.teachTask()
        if self._parameterNode and task is not None:
            Teaching.chooseModel(self._parameterNode.parameterNode, task, None)
            self.ui.statusLabel.text = _("Segment {task} now uses the shipped model.").format(task=taskLabel(task))

    def onAddCorrection(self) -> None:
        if self.busy():
            return
        runGuarded(self.addCorrection, self.showMessage, _("Add this correction"))

    def addCorrection(self) -> None:
        segmentationNode = self._parameterNode.segmentation
        site = self.siteFolder()
        added = Teaching.addCorrection(site, segmentationNode, task=self.teachTask())
        self.ui.statusLabel.text = added.message(segmentationNode.GetName(), site)
        self._teachShown = None  # count again
        if added.correction.task in self.teachTasks:
            self.ui.teachTaskComboBox.currentIndex = self.teachTasks.index(added.correction.task)
        self.updateTeach()

    def onFineTune(self) -> None:
        if self.busy():
            return
        runGuarded(lambda: self.startFineTuneFlow(self.teachTask()), self.showMessage, _("Fine-tune"))

    def startFineTuneFlow(self, task: str) -> None:
        """PyTorch first (asked, installed in the background) when it is missing, then the fine-tune."""
        job = self.logic.ensureTrainingPackages(
            lambda question: slicer.util.confirmOkCancelDisplay(question, "SpineAI")
        )
        if job is None:
            self.startFineTune(task)
            return
        job.progressChanged.connect(self.onInstallProgress)
        job.finished.connect(lambda: self.onInstalled(lambda: self.startFineTune(task)))
        job.failed.connect(self.onFailed)
        self.startPolling(
            job,
            _("Installing PyTorch for fine-tuning (Slicer stays usable)..."),
            _("Installation cancelled; nothing changed."),
        )

    def startFineTune(self, task: str) -> None:
        site = self.siteFolder()
        minutes = self._parameterNode.fineTuneMinutes
        job = Teaching.FineTuneJob(site, task, minutes, self._parameterNode.device)
        job.progressChanged.connect(self.onProgress)
        job.finished.connect(lambda folder: self.onFineTuned(task, folder))
        job.failed.connect(self.onFailed)
        job.start()
        self.ui.fineTuneResultLabel.text = ""
        self.startPolling(
            job,
            _("Fine-tuning the {task} model on {cases} for {minutes} min (Slicer stays usable)...").format(
                task=taskLabel(task), cases=Teaching.caseCountText(site, task).lower(), minutes=minutes
            ),
            _("Fine-tune cancelled; no model was written."),
        )

    def onFineTuned(self, task: str, folder) -> None:
        self.showRunning(False)
        self.ui.fineTuneResultLabel.text = "\n".join(Teaching.fineTuneSummary(folder, task))
        self.ui.statusLabel.text = _(
            "Fine-tune finished: {folder}. Choose it under Model to segment {task} with it."
        ).format(folder=Path(folder).name, task=taskLabel(task))
        self._teachShown = None  # list the new model
        self.updateTeach()


class SpineAILogic(ScriptedLoadableModuleLogic, EngineLogic):
    """SpineAILib's SpineAILogic (segment, updateMeasurements, exportCSV) with the module's parameter node."""

    def __init__(self, **kwargs) -> None:
        ScriptedLoadableModuleLogic.__init__(self)
        EngineLogic.__init__(self, **kwargs)

    def getParameterNode(self):
        return SpineAIParameterNode(super().getParameterNode())


class SpineAITest(ScriptedLoadableModuleTest):
    """Runs inside Slicer (``slicer_add_python_unittest``); the same checks run in CI on slicer-core."""

    def setUp(self):
        slicer.mrmlScene.Clear()

    def runTest(self):
        tests = (
            self.test_SampleData,
            self.test_SegmentAndMeasureSample,
            self.test_BackgroundRunAndCancel,
            self.test_TeachFineTuneAndSegmentWithTheSiteModel,
        )
        for test in tests:
            self.setUp()
            test()

    def _sample(self):
        from SpineAILib.SampleScan import loadSample

        return loadSample()

    def test_SampleData(self):
        import SampleData
        from SpineAILib.SampleScan import CATEGORY, NODE_NAME, SAMPLE_NAME

        sources = SampleData.SampleDataLogic.sampleDataSourcesByCategory(CATEGORY)
        self.assertEqual([source.sampleName for source in sources], [SAMPLE_NAME])
        volume = SampleData.downloadSample(SAMPLE_NAME)
        self.assertEqual(volume.GetName(), NODE_NAME)
        self.assertEqual(volume.GetImageData().GetDimensions(), self._sample().GetImageData().GetDimensions())

    def test_SegmentAndMeasureSample(self):
        self.delayDisplay("Segmenting the bundled sample scan")
        logic = SpineAILogic()
        logic.dependencies.requireInstalled()  # a clear failure when the engine's packages are missing
        volume = self._sample()
        segmentationNode, tableNode = logic.segment(volume, task="cord", device="auto")
        segment = segmentationNode.GetSegmentation().GetSegment("spinal_cord")
        self.assertEqual(segment.GetName(), "Spinal cord")
        self.assertIn("SCT^2748008^Spinal cord", segment.GetTerminology())
        self.assertGreater(tableNode.GetNumberOfRows(), 0)
        self.assertEqual(tableNode.GetColumnUnitLabel("MEAN(area)"), "mm^2")
        path = Path(slicer.app.temporaryPath) / "SpineAI-selftest.csv"
        self.assertEqual(logic.exportCSV(tableNode, path), path)
        self.assertTrue(path.read_text().startswith("Slice (I->S),"))
        chart = tableNode.GetNodeReference(CHART_REFERENCE)
        self.assertTrue(showResults(slicer.mrmlScene, slicer.app.applicationLogic(), tableNode, chart))
        tableViews = slicer.util.getNodesByClass("vtkMRMLTableViewNode")
        self.assertIn(tableNode.GetID(), [view.GetTableNodeID() for view in tableViews])
        self.delayDisplay("Test passed")

    def test_BackgroundRunAndCancel(self):
        import os
        import time

        logic = SpineAILogic()
        volume = self._sample()
        job = SegmentationJob(logic, volume, "cord", "auto")
        job.start()
        deadline = time.monotonic() + 300
        while job.poll() is JobState.RUNNING and time.monotonic() < deadline:
            slicer.app.processEvents()
            time.sleep(0.05)
        self.assertIs(job.state, JobState.DONE, job.log)
        nodes = slicer.mrmlScene.GetNumberOfNodes()
        job = SegmentationJob(logic, volume, "cord", "auto")
        job.start()
        while job.workerPid is None and job.poll() is JobState.RUNNING and time.monotonic() < deadline:
            time.sleep(0.05)  # until the engine's own process (PythonSlicer's child) has reported
        job.cancel()
        self.assertIs(job.state, JobState.CANCELLED)
        self.assertEqual(slicer.mrmlScene.GetNumberOfNodes(), nodes)
        if os.name == "posix" and job.workerPid is not None:
            time.sleep(1)
            with self.assertRaises(ProcessLookupError):  # the interpreter under the launcher is gone too
                os.kill(job.workerPid, 0)
        self.delayDisplay("Test passed")

    def test_TeachFineTuneAndSegmentWithTheSiteModel(self):
        """Teach SpineAI on the sample: add the result as a correction, fine-tune for 6 s in the background,
        choose the site model and segment with it, then go back to the shipped model."""
        import shutil
        import tempfile
        import time

        from SpineAILib.Dependencies import DependencyInstaller

        DependencyInstaller.training().requireInstalled()  # a clear failure when PyTorch is missing
        self.delayDisplay("Teach SpineAI: a correction, a short fine-tune, the site model")
        logic = SpineAILogic()
        volume = self._sample()
        segmentationNode, _ = logic.segment(volume, task="cord", device="auto")
        site = Path(tempfile.mkdtemp(prefix="SpineAI-site-"))
        try:
            self.assertEqual(Teaching.addCorrection(site, segmentationNode).count, 1)
            job = Teaching.FineTuneJob(site, "cord", 0.1, "auto")
            job.start()
            deadline = time.monotonic() + 600
            while job.poll() is JobState.RUNNING and time.monotonic() < deadline:
                slicer.app.processEvents()
                time.sleep(0.05)
            self.assertIs(job.state, JobState.DONE, job.log)
            choices = Teaching.siteModelChoices(site, "cord")
            self.assertEqual([choice.folder for choice in choices][0], None)
            self.assertEqual(len(choices), 2)
            parameterNode = logic.getParameterNode().parameterNode
            Teaching.chooseModel(parameterNode, "cord", choices[1].folder)
            result, _ = logic.segment(volume, task="cord", modelFolder=Teaching.chosenModel(parameterNode, "cord"))
            sidecar = json.loads(result.GetAttribute(SIDECAR_ATTRIBUTE))
            self.assertEqual(sidecar["model_folder"], str(Path(choices[1].folder).resolve()))
            Teaching.chooseModel(parameterNode, "cord", None)
            self.assertIsNone(Teaching.chosenModel(parameterNode, "cord"))
        finally:
            shutil.rmtree(site, ignore_errors=True)
        self.delayDisplay("Test passed")
