"""Boot real MRML from the slicer-core wheel, without the Slicer application (see docs/slicer-module.md).

The wheel has the MRML library, vtkSegmentationCore and the C++ module logics, but no Qt application:
no ``slicer.app``, ``slicer.mrmlScene`` or ``slicer.modules``. ``boot()`` creates a scene and the logics
the SpineAI module uses, and installs the few names that ``slicer.util`` and the module look up, so the
module's own code runs unchanged on a real scene.
"""

from __future__ import annotations

import os
import types
from pathlib import Path

import slicer
import slicer.util
import vtk

# Logics the module reaches through slicer.modules.<name>.logic(). (Without the application's Qt
# plugins, nodes added to the scene get no subject hierarchy item by themselves; tests create them.)
_LOGICS = {
    "subjecthierarchy": slicer.vtkSlicerSubjectHierarchyModuleLogic,
    "terminologies": slicer.vtkSlicerTerminologiesModuleLogic,
    "volumes": slicer.vtkSlicerVolumesLogic,
    "segmentations": slicer.vtkSlicerSegmentationsModuleLogic,
    "tables": slicer.vtkSlicerTablesLogic,
    "plots": slicer.vtkSlicerPlotsLogic,
}


def terminologyDirectory() -> Path:
    """Slicer's terminology JSON files, which the slicer-core wheel lacks (trame-slicer carries them)."""
    import trame_slicer

    return Path(trame_slicer.__file__).parent / "resources" / "terminologies"


class _CoreIOManager:
    """The parts of qSlicerCoreIOManager that slicer.util's load/save helpers call, routed to real logics."""

    def __init__(self, scene, modules):
        self.scene = scene
        self.modules = modules

    def fileType(self, filename) -> str:
        name = str(filename).lower()
        if name.endswith(".seg.nrrd"):
            return "SegmentationFile"
        if name.endswith((".csv", ".tsv")):
            return "TableFile"
        return "VolumeFile"

    def loadNodes(self, fileType, properties, loadedNodes, userMessages) -> bool:
        path = properties["fileName"]
        name = properties.get("name") or Path(path).name.split(".")[0]
        if fileType == "SegmentationFile":
            node = self.modules.segmentations.logic().LoadSegmentationFromFile(path, True, name)
        elif fileType == "TableFile":
            node = self.modules.tables.logic().AddTable(path, name)
        else:
            labelmap = 1 if properties.get("labelmap") else 0
            node = self.modules.volumes.logic().AddArchetypeVolume(path, name, labelmap)
        if node is None:
            userMessages.AddMessage(vtk.vtkCommand.ErrorEvent, f"could not load {path}")
            return False
        loadedNodes.AddItem(node)
        return True

    def fileWriterFileType(self, node) -> str:
        return node.GetClassName()

    def saveNodes(self, fileType, properties, userMessages) -> bool:
        node = self.scene.GetNodeByID(properties["nodeID"])
        storageNode = node.GetStorageNode()
        if storageNode is None:
            node.AddDefaultStorageNode()
            storageNode = node.GetStorageNode()
        storageNode.SetFileName(str(properties["fileName"]))
        return bool(storageNode.WriteData(node))


class _ProcessEnvironment:
    """The part of QProcessEnvironment that slicer.util.startupEnvironment reads."""

    def __init__(self, variables: dict):
        self._variables = dict(variables)

    def keys(self):
        return list(self._variables)

    def value(self, name):
        return self._variables[name]


class _App:
    """Stand-in for slicer.app: the application logic, the IO manager, the environment Slicer was
    started with (``startupEnvironment``; tests may replace ``startupVariables``), version 5.13, and
    not in testing mode."""

    majorVersion, minorVersion = 5, 13

    def __init__(self, scene, appLogic, modules):
        self._appLogic = appLogic
        self._ioManager = _CoreIOManager(scene, modules)
        self.startupVariables = dict(os.environ)

    def startupEnvironment(self):
        return _ProcessEnvironment(self.startupVariables)

    def applicationLogic(self):
        return self._appLogic

    def coreIOManager(self):
        return self._ioManager

    def testingEnabled(self) -> bool:
        return False


def boot() -> types.SimpleNamespace:
    """A fresh scene with the module logics, exposed as slicer.mrmlScene / slicer.modules / slicer.app."""
    scene = slicer.vtkMRMLScene()
    scene.SetDataIOManager(slicer.vtkDataIOManager())
    appLogic = slicer.vtkSlicerApplicationLogic()
    appLogic.SetMRMLScene(scene)
    colorLogic = appLogic.GetColorLogic()
    colorLogic.SetMRMLScene(scene)
    colorLogic.AddDefaultColorNodes()
    appLogic.SetModuleLogic("Colors", colorLogic)

    # Logics and the application logic point at each other without owning: keep every one referenced
    # from Python (slicer.app, slicer.modules) or it is freed and later calls crash.
    modules = types.SimpleNamespace(colors=types.SimpleNamespace(logic=lambda: colorLogic))
    for name, logicClass in _LOGICS.items():
        logic = logicClass()
        if name == "terminologies":
            # Terminologies load when the scene is set, from the share directory.
            logic.SetModuleShareDirectory(str(terminologyDirectory()))
        logic.SetMRMLApplicationLogic(appLogic)
        logic.SetMRMLScene(scene)
        appLogic.SetModuleLogic(name, logic)
        setattr(modules, name, types.SimpleNamespace(logic=lambda logic=logic: logic))

    application = types.SimpleNamespace(
        scene=scene, appLogic=appLogic, modules=modules, app=_App(scene, appLogic, modules)
    )
    activate(application)
    return application


def activate(application: types.SimpleNamespace) -> None:
    """Make a booted scene the current one again (another test may have booted its own since)."""
    slicer.mrmlScene = application.scene
    slicer.modules = application.modules
    slicer.app = application.app


def loadIntoStudy(path, patient: str = "Patient 1", study: str = "Cervical MRI"):
    """Load a scan with Slicer's own reader and file it under a patient/study, as the DICOM browser would."""
    volume = slicer.util.loadVolume(str(path))
    sh = slicer.vtkMRMLSubjectHierarchyNode.GetSubjectHierarchyNode(slicer.mrmlScene)
    studyItem = sh.CreateStudyItem(sh.CreateSubjectItem(sh.GetSceneItemID(), patient), study)
    sh.CreateItem(studyItem, volume)
    return volume
