"""The panel's .ui loads and holds every widget the module code names; the extension files are complete.

The widget code itself needs Slicer's PythonQt and runs only inside Slicer (SpineAITest); here the
.ui file is loaded with PySide6's QUiLoader (custom Slicer widgets fall back to their base class,
names and dynamic properties survive), and the names are parsed from the code, so renaming a
widget on one side only fails this test.
"""

import ast
import json
import re
import struct
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MODULE = REPO / "SpineAI"
WIDGET_CODE = [MODULE / "SpineAI.py", *sorted((MODULE / "SpineAILib").glob("*.py"))]


@pytest.fixture(scope="module")
def panel():
    from PySide6.QtCore import QFile
    from PySide6.QtUiTools import QUiLoader
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication([])
    ui_file = QFile(str(MODULE / "Resources" / "UI" / "SpineAI.ui"))
    assert ui_file.open(QFile.ReadOnly)
    widget = QUiLoader().load(ui_file)
    ui_file.close()
    assert widget is not None
    yield widget
    widget.deleteLater()
    del app


def names_used_by_code() -> set[str]:
    return {name for path in WIDGET_CODE for name in re.findall(r"\bself\.ui\.(\w+)", path.read_text())}


def parameter_node_fields() -> dict[str, str]:
    tree = ast.parse((MODULE / "SpineAI.py").read_text())
    (cls,) = [node for node in tree.body if isinstance(node, ast.ClassDef) and node.name == "SpineAIParameterNode"]
    return {
        statement.target.id: ast.unparse(statement.annotation)
        for statement in cls.body
        if isinstance(statement, ast.AnnAssign)
    }


def test_every_widget_the_code_names_is_in_the_ui(panel):
    from PySide6.QtCore import QObject

    used = names_used_by_code()
    assert {
        "tasksCollapsibleButton",
        "cancelButton",
        "progressBar",
        "updateMeasurementsButton",
        "exportCSVButton",
        "addCorrectionButton",
        "fineTuneButton",
        "modelComboBox",
        "useShippedModelButton",
        "caseCountLabel",
        "fineTuneResultLabel",
    } <= used
    missing = sorted(name for name in used if panel.findChild(QObject, name) is None)
    assert missing == [], f"named in the module code but absent from SpineAI.ui: {missing}"


def test_bound_widgets_match_the_parameter_node(panel):
    from PySide6.QtWidgets import QWidget

    bound = {
        widget.property("SlicerParameterName"): widget
        for widget in panel.findChildren(QWidget)
        if widget.property("SlicerParameterName")
    }
    fields = parameter_node_fields()
    assert set(bound) == set(fields)
    assert "vtkMRMLScalarVolumeNode" in fields["inputVolume"]
    assert bound["inputVolume"].objectName() == "inputSelector"
    assert list(bound["inputVolume"].property("nodeTypes")) == ["vtkMRMLScalarVolumeNode"]
    assert bound["inputVolume"].property("showChildNodeTypes") is False  # no label maps offered as input
    assert "Choice" in fields["device"] and "'GPU'" in fields["device"]
    # Teach SpineAI: the site folder in a path line edit that picks folders, the fine-tune budget bounded.
    assert fields["siteFolder"] == "Path" and bound["siteFolder"].objectName() == "siteFolderPathLineEdit"
    assert ui_classes()["siteFolderPathLineEdit"] == "ctkPathLineEdit"
    assert ui_property("siteFolderPathLineEdit", "filters") == "ctkPathLineEdit::Dirs"
    assert fields["fineTuneMinutes"] == "Annotated[float, WithinRange(0.1, 600.0)]"
    assert bound["fineTuneMinutes"].metaObject().className() == "QDoubleSpinBox"


def ui_tree():
    return ElementTree.parse(MODULE / "Resources" / "UI" / "SpineAI.ui")


def ui_classes() -> dict[str, str]:
    """Each widget's class as the .ui names it (QUiLoader replaces Slicer's and CTK's by their base class)."""
    return {widget.get("name"): widget.get("class") for widget in ui_tree().iter("widget")}


def ui_property(widget: str, name: str) -> str:
    (element,) = [w for w in ui_tree().iter("widget") if w.get("name") == widget]
    (value,) = [p for p in element.findall("property") if p.get("name") == name]
    return "".join(value.itertext()).strip()


def test_panel_has_the_run_controls_and_result_actions(panel):
    from PySide6.QtCore import QObject

    def text(name):
        return panel.findChild(QObject, name).property("text")

    assert text("cancelButton") == "Cancel"
    assert text("updateMeasurementsButton") == "Update measurements"
    assert text("exportCSVButton") == "Export CSV..."
    assert panel.findChild(QObject, "progressBar").metaObject().className() == "QProgressBar"
    assert text("addCorrectionButton") == "Add this correction"
    assert text("fineTuneButton") == "Fine-tune"
    assert text("useShippedModelButton") == "Use shipped model"
    assert panel.findChild(QObject, "modelComboBox").metaObject().className() == "QComboBox"
    # The Teach section is a collapsed section after the results: opening it is what reads the site folder.
    assert ui_classes()["teachCollapsibleButton"] == "ctkCollapsibleButton"
    assert ui_property("teachCollapsibleButton", "text") == "Teach SpineAI"
    assert ui_property("teachCollapsibleButton", "collapsed") == "true"


def cmake_list(text: str, variable: str) -> list[str]:
    body = re.search(rf"set\({variable}\s+(.*?)\)", text, re.S).group(1)
    return [line.split("#")[0].strip() for line in body.splitlines() if line.split("#")[0].strip()]


def test_cmake_ships_every_module_file_and_the_engine():
    text = (MODULE / "CMakeLists.txt").read_text()
    scripts = [s.replace("${MODULE_NAME}", "SpineAI") for s in cmake_list(text, "MODULE_PYTHON_SCRIPTS")]
    on_disk = ["SpineAI.py"] + [f"SpineAILib/{p.name}" for p in sorted((MODULE / "SpineAILib").glob("*.py"))]
    assert sorted(scripts) == sorted(on_disk)
    resources = [s.replace("${MODULE_NAME}", "SpineAI") for s in cmake_list(text, "MODULE_PYTHON_RESOURCES")]
    for resource in resources:
        if not resource.startswith("$"):
            assert (MODULE / resource).is_file(), resource
    assert "GLOB_RECURSE ENGINE_PYTHON_SCRIPTS" in text and "spineai/*.py" in text
    for pattern in ("spineai/models/*.safetensors", "spineai/models/*.json"):
        assert pattern in text and list(MODULE.glob(pattern)), pattern
    assert "slicer_add_python_unittest(SCRIPT ${MODULE_NAME}.py)" in text


def test_every_engine_data_file_ships_in_the_extension_and_the_wheel():
    """Weights, ONNX graphs, tables, the sample, the rehearsal crops: what the engine reads at run time
    must be in the extension's resource globs and in the package data, or Slicer and pip users lack it."""
    import fnmatch

    import tomllib

    engine = MODULE / "spineai"
    files = [p.relative_to(MODULE).as_posix() for p in engine.rglob("*") if p.is_file()]
    data = [path for path in files if not path.endswith((".py", ".pyc")) and "__pycache__" not in path]
    text = (MODULE / "CMakeLists.txt").read_text(encoding="utf-8")
    globs = re.search(r"file\(GLOB ENGINE_RESOURCES RELATIVE \S+ CONFIGURE_DEPENDS(.*?)\)", text, re.S).group(1).split()
    pyproject = tomllib.loads((MODULE.parent / "pyproject.toml").read_text(encoding="utf-8"))
    package_data = pyproject["tool"]["setuptools"]["package-data"]["spineai"]
    assert len(data) > 40
    for path in data:
        assert any(fnmatch.fnmatch(path, pattern) for pattern in globs), f"{path}: not in the extension's resources"
        inside = path.removeprefix("spineai/")
        assert any(fnmatch.fnmatch(inside, pattern) for pattern in package_data), f"{path}: not in the package data"


def cmake_set(text: str, variable: str) -> str:
    return re.search(rf'set\({variable}\s+"([^"]*)"\)', text).group(1)


def test_extension_metadata_is_complete_and_needs_no_other_extension():
    top = (REPO / "CMakeLists.txt").read_text()
    assert "add_subdirectory(SpineAI)" in top and re.search(r"^project\(SpineAI\)", top, re.M)
    assert cmake_set(top, "EXTENSION_DEPENDS") == "NA"  # segmenting needs no PyTorch extension
    assert cmake_set(top, "EXTENSION_CATEGORY") == "Segmentation"
    description = cmake_set(top, "EXTENSION_DESCRIPTION")
    assert len(description) > 200 and "Requires 3D Slicer 5.10 or later" in description
    urls = [cmake_set(top, "EXTENSION_ICONURL"), *cmake_set(top, "EXTENSION_SCREENSHOTURLS").split()]
    assert len(urls) >= 3
    for url in urls:  # raw files of the repository: each must exist here, as a PNG
        prefix = "https://raw.githubusercontent.com/spineai/SlicerSpineAI/main/"
        assert url.startswith(prefix), url
        assert (REPO / url[len(prefix) :]).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", url
    module = (MODULE / "SpineAI.py").read_text()
    contributors = cmake_set(top, "EXTENSION_CONTRIBUTORS")
    assert f'self.parent.contributors = ["{contributors}"]' in module
    # The help text links the documentation, which lives at the extension's homepage.
    homepage = cmake_set(top, "EXTENSION_HOMEPAGE")
    assert homepage.endswith("docs/slicer-module.md") and (REPO / "docs" / "slicer-module.md").is_file()
    assert f'DOCUMENTATION_URL = "{homepage}"' in module and 'href="{url}"' in module


def test_minimum_slicer_version_is_the_same_in_cmake_and_in_the_module():
    from SpineAILib.Compatibility import MINIMUM_SLICER

    top = (REPO / "CMakeLists.txt").read_text()
    assert cmake_set(top, "SpineAI_MINIMUM_SLICER_VERSION") == "{}.{}".format(*MINIMUM_SLICER)
    assert "VERSION_LESS SpineAI_MINIMUM_SLICER_VERSION" in top and "FATAL_ERROR" in top


def test_extensions_index_catalog_entry():
    """SpineAI.json in the form the Extensions Index takes (Slicer's catalog entry schema v1.0.2,
    Schemas/slicer-extension-catalog-entry-schema-v1.0.2.json, and the index's own checks in
    scripts/check_description_files.py: known category, https or git URL, 'Slicer' in the repository name)."""
    entry = json.loads((REPO / "SpineAI.json").read_text())
    schema_keys = {
        "$schema": str, "category": str, "scm_url": str, "scm_revision": str, "scm_type": str,
        "build_dependencies": list, "dicom_support_rule": str, "build_subdirectory": str, "enabled": bool, "tier": int,
    }  # fmt: skip
    assert {"$schema", "category", "scm_url"} <= set(entry) <= set(schema_keys)
    assert all(isinstance(entry[key], schema_keys[key]) for key in entry)
    assert entry["$schema"].endswith("/Schemas/slicer-extension-catalog-entry-schema-v1.0.2.json#")
    assert entry["scm_type"] in ("git", "local") and 1 <= entry["tier"] <= 5
    assert entry["build_dependencies"] == []  # as EXTENSION_DEPENDS
    top = (REPO / "CMakeLists.txt").read_text()
    assert entry["category"] == cmake_set(top, "EXTENSION_CATEGORY")
    assert entry["scm_url"].startswith("https://") and "slicer" in entry["scm_url"].rsplit("/", 1)[1].lower()
    assert (REPO / "SpineAI.json").stem == re.search(r"^project\((\w+)\)", top, re.M).group(1)


@pytest.mark.parametrize("path", ["Resources/SpineAI.png", "SpineAI/Resources/Icons/SpineAI.png"])
def test_icons_are_128_pixel_pngs(path):
    data = (REPO / path).read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert struct.unpack(">II", data[16:24]) == (128, 128)
