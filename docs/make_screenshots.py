"""Render the SpineAI panel from its .ui file into the pictures of docs/slicer-module.md.

Run ``QT_QPA_PLATFORM=offscreen PYTHONPATH=SpineAI python docs/make_screenshots.py`` from the
repository root. The panel is Resources/UI/SpineAI.ui as Qt's QUiLoader builds it, with the task
sections added as SpineAI.py adds them (from the same task list and segment names); Slicer's own
widgets, which only exist inside Slicer, are drawn by plain Qt stand-ins: a collapsible section
(ctkCollapsibleButton) as a titled group with an arrow, a node selector (qMRMLNodeComboBox) as a
combo box showing the node's name. The pictures show the panel's states a user goes through; the
texts in the status line are the ones SpineAI.py writes.
"""

from pathlib import Path

from PySide6.QtCore import QFile, QLoggingCategory
from PySide6.QtUiTools import QUiLoader
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QGroupBox,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from SpineAILib.Logic import SpineAILogic, needsLevels, taskLabel
from SpineAILib.Terminology import stylesForTask

ROOT = Path(__file__).resolve().parents[1]
UI = ROOT / "SpineAI" / "Resources" / "UI" / "SpineAI.ui"
IMAGES = ROOT / "docs" / "images"
WIDTH = 440


class ctkCollapsibleButton(QGroupBox):  # noqa: N801 (the .ui's class name)
    """Stand-in: a section with a title bar and an arrow (collapsed sections are not drawn)."""


class qMRMLNodeComboBox(QComboBox):  # noqa: N801
    """Stand-in: shows the name of the selected node, or its 'none' text."""


class qMRMLWidget(QWidget):  # noqa: N801
    pass


def load_panel() -> QWidget:
    loader = QUiLoader()
    for cls in (ctkCollapsibleButton, qMRMLNodeComboBox, qMRMLWidget):
        loader.registerCustomWidget(cls)
    ui_file = QFile(str(UI))
    ui_file.open(QFile.ReadOnly)
    panel = loader.load(ui_file)
    ui_file.close()
    for section in panel.findChildren(ctkCollapsibleButton):
        section.setTitle("\u25bc " + str(section.property("text")))
    add_task_sections(panel)
    panel.setFixedWidth(WIDTH)
    return panel


def add_task_sections(panel) -> dict[str, QPushButton]:
    """As SpineAIWidget.addTaskSections: one titled section per task with its Segment button."""
    layout = panel.findChild(QWidget, "tasksCollapsibleButton").layout()
    levels = panel.findChild(QWidget, "levelPointsWidget")
    buttons = {}
    for task in SpineAILogic().availableTasks():
        section = QGroupBox(", ".join(stylesForTask(task)))
        section_layout = QVBoxLayout(section)
        if needsLevels(task):
            section_layout.addWidget(levels)
        buttons[task] = QPushButton(f"Segment {taskLabel(task)}")
        section_layout.addWidget(buttons[task])
        layout.addWidget(section)
    return buttons


def select(panel, name: str, text: str) -> None:
    combo = panel.findChild(QComboBox, name)
    combo.clear()
    combo.addItem(text)


def show_result(panel) -> None:
    """A result selected: as updateButtons, Update measurements and Export CSV become available."""
    select(panel, "segmentationSelector", "t2 cord segmentation")
    select(panel, "tableSelector", "t2 cord measurements")
    for name in ("updateMeasurementsButton", "exportCSVButton"):
        panel.findChild(QPushButton, name).setEnabled(True)


def status(panel, text: str) -> None:
    panel.findChild(QLabel, "statusLabel").setText(text)


def show_running(panel, running: bool, percent: int = 0) -> None:
    """As SpineAIWidget.showRunning and updateButtons: progress and Cancel shown, inputs and task buttons off."""
    panel.findChild(QWidget, "runWidget").setVisible(running)
    for button in panel.findChild(QWidget, "tasksCollapsibleButton").findChildren(QPushButton):
        button.setEnabled(not running)
    panel.findChild(QProgressBar, "progressBar").setValue(percent)
    panel.findChild(QWidget, "inputsCollapsibleButton").setEnabled(not running)


def base_panel(volume: str = "t2") -> QWidget:
    panel = load_panel()
    select(panel, "inputSelector", volume)
    panel.findChild(QComboBox, "deviceComboBox").addItems(["auto", "GPU", "CPU"])
    select(panel, "levelPointsSelector", "Find the discs on the scan")
    select(panel, "segmentationSelector", "None")
    select(panel, "tableSelector", "None")
    show_running(panel, False)
    for name in ("updateMeasurementsButton", "exportCSVButton"):
        panel.findChild(QPushButton, name).setEnabled(False)
    return panel


def save(panel: QWidget, name: str) -> Path:
    panel.layout().activate()
    # The status line wraps: give the panel the height its layout needs at this width.
    panel.setFixedHeight(max(panel.layout().totalHeightForWidth(WIDTH), panel.sizeHint().height()))
    path = IMAGES / name
    assert panel.grab().save(str(path)), path
    print(path)
    return path


def main() -> None:
    # The .ui connects Slicer's scene signal, which the stand-ins lack: not worth a warning each.
    QLoggingCategory.setFilterRules("qt.core.qobject.connect=false")
    app = QApplication.instance() or QApplication([])
    app.setStyle("Fusion")
    IMAGES.mkdir(parents=True, exist_ok=True)

    panel = base_panel()
    save(panel, "panel-start.png")

    panel = base_panel()
    show_running(panel, True, 0)
    status(panel, "Installing Python packages: step 1 of 1: Collecting scipy>=1.10")
    save(panel, "panel-installing.png")

    panel = base_panel()
    show_running(panel, True, 60)
    status(panel, "Segmenting cord...")
    save(panel, "panel-running.png")

    panel = base_panel()
    show_result(panel)
    status(
        panel,
        "t2 cord segmentation: segmented in 1.2 s on cpu. Edit it in Segment Editor, then Update measurements.",
    )
    save(panel, "panel-result.png")

    panel = base_panel()
    show_result(panel)
    status(
        panel,
        "Update measurements failed: OSError: [Errno 28] No space left on device "
        "(the full report is in the Python console and Slicer's log)",
    )
    save(panel, "panel-message.png")


if __name__ == "__main__":
    main()
