"""Which Slicer SpineAI runs in: the version check, the API it calls, the Python it is written for.

- The minimum is Slicer 5.10 (SpineAILib/Compatibility.py says why); older ones get one line.
- Every Slicer, MRML and VTK call of the module is in the API recorded from the slicer-core wheel of
  the minimum (``slicer_api_minimum.json``, written by ``slicer_api.py``) and in the installed
  (newer, preview) slicer-core; the application and Qt calls are in the list below with the Slicer
  source that declares them, and the Qt ones are checked against Qt's own meta-objects.
- The module and the engine code it imports compile on Python 3.12 (Slicer 5.10's), and what runs
  before the version check compiles and runs on Python 3.9 (Slicer 5.6 and 5.8).
"""

import ast
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import slicer
import slicer.util
import vtk
from slicer_api import CODE, MODULE, RECORD, member_of, usedApi
from SpineAILib.Compatibility import MINIMUM_SLICER, runningSlicerVersion, slicerVersionProblem


def test_older_slicers_get_one_line_saying_what_is_needed():
    problem = slicerVersionProblem((5, 8), (3, 9))
    assert problem == (
        "SpineAI needs 3D Slicer 5.10 or later; this is Slicer 5.8. "
        "Install the current Slicer from download.slicer.org."
    )
    assert "\n" not in problem
    assert "needs 3D Slicer 5.10 or later; this is Slicer 4.11." in slicerVersionProblem((4, 11), (3, 6))
    assert "Python 3.10 or later; this Slicer runs Python 3.9" in slicerVersionProblem((5, 10), (3, 9))


def test_the_stable_and_preview_releases_are_supported(mrml):
    assert MINIMUM_SLICER == (5, 10)
    for version in [(5, 10), (5, 11), (5, 12), (5, 13), (6, 0)]:
        assert slicerVersionProblem(version, (3, 12)) is None, version
    assert runningSlicerVersion(slicer.app) == (5, 13)  # the test application says it is the preview


# --- the API ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded():
    return json.loads(RECORD.read_text(encoding="utf-8"))


def test_every_slicer_mrml_and_vtk_call_is_in_the_minimum_versions_api(recorded):
    used = usedApi()
    assert "SetTerminology" in used["methods"] and "vtkSegment" in used["classes"]  # the scan sees the calls
    unrecorded = sorted((used["methods"] - set(recorded["methods"])) | (used["classes"] - set(recorded["classes"])))
    unrecorded += sorted(f"slicer.util.{name}" for name in used["util"] - set(recorded["util"]))
    assert unrecorded == [], (
        f"not in the API recorded from {recorded['source']['package'].split(' (')[0]}: {unrecorded}; run "
        "'python Testing/module/slicer_api.py' with that wheel: it refuses names the minimum version lacks"
    )
    assert all(recorded["methods"][name] for name in used["methods"])  # each was found on some class there
    assert recorded["source"]["package"].startswith("slicer-core 5.11.0.2 ")  # the oldest wheel on PyPI


def test_the_installed_preview_has_every_recorded_call_on_the_same_classes(recorded):
    def lookup(name):
        return getattr(slicer, name, None) or getattr(vtk, name, None)

    missing = [name for name in recorded["classes"] if lookup(name) is None]
    for name, owners in recorded["methods"].items():
        owner, member = name.split(".") if "." in name else (owners[0], name)
        if not member_of(lookup(owner), member):
            missing.append(f"{owner}.{member}")
    missing += [f"slicer.util.{name}" for name in recorded["util"] if not hasattr(slicer.util, name)]
    assert missing == []


# What SpineAI.py calls on the Slicer application, its widgets and scripted modules, which the
# slicer-core wheel does not have: each with the Slicer source (5.10) that declares it.
APPLICATION = {
    "slicer.app.majorVersion": "Base/QTCore/qSlicerCoreApplication.h: Q_PROPERTY(int majorVersion ...)",
    "slicer.app.minorVersion": "Base/QTCore/qSlicerCoreApplication.h: Q_PROPERTY(int minorVersion ...)",
    "slicer.app.applicationLogic": "Base/QTCore/qSlicerCoreApplication.h: applicationLogic()",
    "slicer.app.temporaryPath": "Base/QTCore/qSlicerCoreApplication.h: Q_PROPERTY(QString temporaryPath ...)",
    "slicer.app.defaultScenePath": "Base/QTCore/qSlicerCoreApplication.h: Q_PROPERTY(QString defaultScenePath ...)",
    "slicer.app.startupEnvironment": "Base/QTCore/qSlicerCoreApplication.h: startupEnvironment()",
    "slicer.app.processEvents": "QCoreApplication::processEvents",
    "slicer.app.connect": "PythonQt signal connection; startupCompleted() in qSlicerApplication.h",
    "slicer.app.layoutManager": "Base/QTGUI/qSlicerApplication.h: layoutManager()",
    "layoutManager.threeDViewCount": "Base/QTGUI/qSlicerLayoutManager.h: Q_PROPERTY(int threeDViewCount ...)",
    "layoutManager.threeDWidget": "Libs/MRML/Widgets/qMRMLLayoutManager.h: threeDWidget(int)",
    "threeDView().resetFocalPoint": "Libs/MRML/Widgets/qMRMLThreeDView.h: resetFocalPoint()",
    "uiWidget.setMRMLScene": "Libs/MRML/Widgets/qMRMLWidget.h: setMRMLScene(vtkMRMLScene*)",
    "teachCollapsibleButton.contentsCollapsed": "CTK Libs/Widgets/ctkCollapsibleButton.h: contentsCollapsed(bool)",
    "teachCollapsibleButton.collapsed": "CTK Libs/Widgets/ctkCollapsibleButton.h: Q_PROPERTY(bool collapsed ...)",
    "_parameterNode.parameterNode": "Base/Python/slicer/parameterNodeWrapper/wrapper.py: _initMethod",
    "siteFolder: Path (ctkPathLineEdit)": "Base/Python/slicer/parameterNodeWrapper/guiConnectors.py: "
    "ctkPathLineEditToPathConnector; serializers.py: PathSerializer",
    "WithinRange": "Base/Python/slicer/parameterNodeWrapper/validators.py: WithinRange(minimum, maximum)",
    "SampleData.SampleDataLogic.registerCustomSampleDataSource": "Modules/Scripted/SampleData/SampleData.py",
    "SampleData.SampleDataLogic.sampleDataSourcesByCategory": "Modules/Scripted/SampleData/SampleData.py",
    "SampleData.downloadSample": "Modules/Scripted/SampleData/SampleData.py",
}


def test_every_application_call_is_declared_in_slicer():
    text = "\n".join(path.read_text(encoding="utf-8") for path in CODE)
    used = {f"slicer.app.{name}" for name in re.findall(r"slicer\.app\.(\w+)", text)}
    used |= {f"slicer.app.{name}" for name in re.findall(r"\bapp\.(\w+)", text) if name != "connect"}
    used |= {name for name in APPLICATION if name.split("(")[0].split(".")[-1] in text}
    assert used <= set(APPLICATION), sorted(used - set(APPLICATION))
    assert {"slicer.app.majorVersion", "slicer.app.layoutManager", "layoutManager.threeDWidget"} <= used


# Qt widgets and what SpineAI.py uses of them: PythonQt reads and writes Q_PROPERTYs by name and calls
# slots and methods. Checked on Qt's meta-objects (PySide6, Qt 6; these names are the same since Qt 4).
QT_USED = {
    "QTimer": (["interval"], ["setInterval", "start", "stop", "timeout"]),
    "QGroupBox": (["title"], []),
    "QVBoxLayout": ([], ["addWidget", "addStretch"]),
    "QPushButton": (["toolTip", "enabled", "text"], ["clicked"]),
    "QLabel": (["wordWrap", "text"], []),
    "QProgressBar": (["value"], []),
    "QWidget": (["visible", "enabled"], ["layout"]),
    "QFileDialog": ([], ["getSaveFileName"]),
    "QSettings": ([], ["value", "setValue"]),
    "QComboBox": (["currentIndex"], ["addItem", "clear", "currentIndexChanged"]),
}


def test_qt_properties_and_methods_exist():
    from PySide6 import QtCore, QtWidgets

    text = (MODULE / "SpineAI.py").read_text(encoding="utf-8")
    assert set(re.findall(r"\bqt\.(Q\w+)", text)) <= set(QT_USED)
    for name, (properties, methods) in QT_USED.items():
        cls = getattr(QtWidgets, name, None) or getattr(QtCore, name)
        meta = cls.staticMetaObject
        assert all(meta.indexOfProperty(prop) >= 0 for prop in properties), name
        assert all(hasattr(cls, method) for method in methods), name


# --- the Python of the minimum version ---------------------------------------------------------


def interpreter(version: str) -> str | None:
    """A working Python ``version`` interpreter (pyenv's, or one on PATH), or None."""
    candidates = [str(p) for p in sorted(Path.home().glob(f".pyenv/versions/{version}.*/bin/python{version}"))]
    candidates.append(shutil.which(f"python{version}"))
    for candidate in filter(None, candidates):
        if subprocess.run([candidate, "-c", "pass"], capture_output=True).returncode == 0:
            return candidate
    return None


def engine_modules_imported_by_the_module() -> list[Path]:
    """Every file of the engine package that the module's code imports, directly or through the engine."""
    todo = [*CODE, MODULE / "SpineAILib" / "EngineWorker.py"]
    seen: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        package = path.relative_to(MODULE).with_suffix("").parts[:-1]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
                names = [base] + [f"{base}.{alias.name}" for alias in node.names]
            for name in names:
                if name.split(".")[0] == "spineai":
                    todo += [p for p in _engine_file(name) if p not in seen]
    return sorted(p for p in seen if "spineai" in p.relative_to(MODULE).parts[:1])


def _engine_file(name: str) -> list[Path]:
    """The module's file and the __init__.py of every package above it (Python runs those first)."""
    parts = name.split(".")
    base = MODULE.joinpath(*parts)
    packages = [MODULE.joinpath(*parts[:depth], "__init__.py") for depth in range(1, len(parts))]
    return [p for p in (*packages, base.with_suffix(".py"), base / "__init__.py") if p.is_file()]


COMPILE = """
import ast, json, sys
paths, stdlib_used = json.loads(sys.argv[1]), json.loads(sys.argv[2])
errors = []
for path in paths:
    try:
        compile(open(path, encoding="utf-8").read(), path, "exec")
    except SyntaxError as error:
        errors.append(f"{path}:{error.lineno}: {error.msg}")
known = getattr(sys, "stdlib_module_names", None)  # Python >= 3.10
removed = [] if known is None else sorted(name for name in stdlib_used if name not in known)
print(json.dumps({"version": list(sys.version_info[:2]), "errors": errors, "removed": removed}))
"""


def stdlib_imports(paths) -> list[str]:
    names = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module.split(".")[0])
    return sorted(name for name in names if name in sys.stdlib_module_names)


def compile_with(python: str, paths) -> dict:
    arguments = [json.dumps([str(p) for p in paths]), json.dumps(stdlib_imports(paths))]
    output = subprocess.run([python, "-c", COMPILE, *arguments], capture_output=True, text=True, check=True)
    return json.loads(output.stdout)


def test_the_module_and_the_engine_code_it_imports_compile_on_python_3_12():
    engine = engine_modules_imported_by_the_module()
    names = {path.relative_to(MODULE).as_posix() for path in engine}
    assert {"spineai/pipeline.py", "spineai/tasks/__init__.py", "spineai/measure/cord.py", "spineai/io.py"} <= names
    python = interpreter("3.12")
    if python is None:
        pytest.skip("no Python 3.12 interpreter here (Slicer 5.10's Python)")
    result = compile_with(python, [*CODE, MODULE / "SpineAILib" / "EngineWorker.py", *engine])
    assert result["version"] == [3, 12]
    assert result["errors"] == [] and result["removed"] == []


def test_what_runs_before_the_version_check_compiles_and_runs_on_python_3_9():
    """An old Slicer (Python 3.9) must get as far as the one-line message, not a traceback."""
    python = interpreter("3.9")
    if python is None:
        pytest.skip("no Python 3.9 interpreter here (the Python of Slicer 5.6 and 5.8)")
    first = [MODULE / "SpineAI.py", MODULE / "SpineAILib" / "__init__.py", MODULE / "SpineAILib" / "Compatibility.py"]
    result = compile_with(python, first)
    assert result["version"] == [3, 9] and result["errors"] == []
    code = (
        f"import sys; sys.path.insert(0, {str(MODULE)!r}); "
        "from SpineAILib.Compatibility import slicerVersionProblem; "
        "import SpineAILib; print(slicerVersionProblem((5, 8))); print(sorted(vars(SpineAILib)))"
    )
    output = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True).stdout.splitlines()
    assert output[0].startswith("SpineAI needs 3D Slicer 5.10 or later; this is Slicer 5.8.")
    assert "SpineAILogic" not in output[1]  # nothing else of SpineAI was imported on Python 3.9
