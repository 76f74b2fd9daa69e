"""Render the SpineAI panel from its .ui file into the pictures of docs/slicer-module.md.

Run ``QT_QPA_PLATFORM=offscreen PYTHONPATH=SpineAI python docs/make_screenshots.py`` from the
repository root. The panel is Resources/UI/SpineAI.ui as Qt's QUiLoader builds it, with the task
sections added as SpineAI.py adds them (from the same task list and segment names); Slicer's own
widgets, which only exist inside Slicer, are drawn by plain Qt stand-ins: a collapsible section
(ctkCollapsibleButton) as a titled group with an arrow, a node selector (qMRMLNodeComboBox) as a
combo box showing the node's name, a path line edit (ctkPathLineEdit) as a line edit showing the path.
A section the .ui collapses (Teach SpineAI) is drawn collapsed unless a picture opens it. The pictures
show the panel's states a user goes through; the texts in the status line are the ones SpineAI.py and
SpineAILib.Teaching write (the Teach SpineAI texts from a run on the bundled sample, TEACH_RUN below).
"""

from pathlib import Path

from PySide6.QtCore import QFile, QLoggingCategory, Qt
from PySide6.QtUiTools import QUiLoader
from PySide6.QtWidgets import (
    QApplication,
    QComboBox,
    QDoubleSpinBox,
    QGroupBox,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)
from SpineAILib.Logic import SpineAILogic, needsLevels, taskLabel
from SpineAILib.Teaching import SHIPPED_MODEL_LABEL
from SpineAILib.Terminology import stylesForTask

ROOT = Path(__file__).resolve().parents[1]
UI = ROOT / "SpineAI" / "Resources" / "UI" / "SpineAI.ui"
IMAGES = ROOT / "docs" / "images"
WIDTH = 440


class ctkCollapsibleButton(QGroupBox):  # noqa: N801 (the .ui's class name)
    """Stand-in: a section with a title bar and an arrow (collapsed sections are not drawn)."""


class qMRMLNodeComboBox(QComboBox):  # noqa: N801
    """Stand-in: shows the name of the selected node, or its 'none' text."""


class ctkPathLineEdit(QLineEdit):  # noqa: N801
    """Stand-in: shows the path (the real one adds a '...' button that opens a folder dialog)."""


class qMRMLWidget(QWidget):  # noqa: N801
    pass


def load_panel() -> QWidget:
    loader = QUiLoader()
    for cls in (ctkCollapsibleButton, ctkPathLineEdit, qMRMLNodeComboBox, qMRMLWidget):
        loader.registerCustomWidget(cls)
    ui_file = QFile(str(UI))
    ui_file.open(QFile.ReadOnly)
    panel = loader.load(ui_file)
    ui_file.close()
    for section in panel.findChildren(ctkCollapsibleButton):
        set_collapsed(section, bool(section.property("collapsed")))
    add_task_sections(panel)
    teach = panel.findChild(QComboBox, "teachTaskComboBox")
    teach.addItems([taskLabel(task) for task in SpineAILogic().availableTasks()])  # as addTeachTasks
    panel.setFixedWidth(WIDTH)
    return panel


def set_collapsed(section, collapsed: bool) -> None:
    """A collapsed section shows its title bar only, with the arrow pointing right."""
    section.setTitle(("\u25b6 " if collapsed else "\u25bc ") + str(section.property("text")))
    for child in section.findChildren(QWidget, options=Qt.FindChildOption.FindDirectChildrenOnly):
        child.setVisible(not collapsed)
    section.setFlat(collapsed)
    section.setMaximumHeight(section.fontMetrics().height() + 4 if collapsed else 16777215)


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
        buttons[task].setObjectName(f"segment-{task}")
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
    for name in ("addCorrectionButton", "fineTuneButton", "useShippedModelButton"):
        panel.findChild(QPushButton, name).setEnabled(not running)
    panel.findChild(QComboBox, "modelComboBox").setEnabled(not running)


def base_panel(volume: str = "t2") -> QWidget:
    panel = load_panel()
    select(panel, "inputSelector", volume)
    panel.findChild(QComboBox, "deviceComboBox").addItems(["auto", "GPU", "CPU"])
    select(panel, "levelPointsSelector", "Find the discs on the scan")
    select(panel, "segmentationSelector", "None")
    select(panel, "tableSelector", "None")
    show_running(panel, False)
    for name in ("updateMeasurementsButton", "exportCSVButton", "addCorrectionButton"):
        panel.findChild(QPushButton, name).setEnabled(False)
    panel.findChild(QLineEdit, "siteFolderPathLineEdit").setText(SITE)
    panel.findChild(QDoubleSpinBox, "fineTuneMinutesSpinBox").setValue(5.0)  # the parameter node's default
    panel.findChild(QComboBox, "modelComboBox").addItem(SHIPPED_MODEL_LABEL)
    return panel


# Teach SpineAI: what the panel said in a run on the bundled sample (the cord result with its top five
# slices erased, added to a new site folder, fine-tuned for 1 min on the 2-core CPU, 2026-12-07, with the
# recipe of that time: half site patches, L2-SP weight 0.01).
SITE = "/home/you/.local/share/SpineAI/site"
TEACH_RUN = {
    "added": "t2 cord segmentation: added as cord case b2962edcb76bbed9 (T2w, 3D, first result edited: yes) "
    f"in {SITE}. 1 corrected cord case.",
    "count": "1 corrected cord case",
    "summary": [
        "spineai-cord-unet2d-site-2026-12-07: 27 steps in 62.9 s on cpu (budget 1.0 min), written to "
        f"{SITE}/models/cord-20261207-180939.",
        "b2962edcb76bbed9 (T2w): Dice 0.792 -> 0.753",
        "Evaluated on the cases trained on (fit check: no case held back).",
        "With 1 case none is held back: the Dice is a fit check on the case trained on, not an accuracy (from "
        "three cases on, a fifth is held back to measure it).",
        "What it knew: median Dice on the rehearsal set 0.961 -> 0.953.",
        "It is used only when chosen: select it under Model to segment with it.",
    ],
    "model": "spineai-cord-unet2d-site-2026-12-07 (2026-12-07 18:11 UTC, cord-20261207-180939)",
}


def open_teach(panel) -> None:
    """The Teach SpineAI section opened, a corrected cord result selected (as updateTeach shows it)."""
    set_collapsed(panel.findChild(QGroupBox, "teachCollapsibleButton"), False)
    panel.findChild(QLabel, "caseCountLabel").setText(TEACH_RUN["count"])
    panel.findChild(QPushButton, "addCorrectionButton").setEnabled(True)


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

    panel = base_panel()
    show_result(panel)
    open_teach(panel)
    status(panel, TEACH_RUN["added"])
    save(panel, "panel-teach.png")

    panel = base_panel()
    show_result(panel)
    open_teach(panel)
    show_running(panel, True, 40)
    status(panel, "Fine-tuning the cord model on 1 corrected cord case for 5.0 min (Slicer stays usable)...")
    save(panel, "panel-finetune.png")

    panel = base_panel()
    show_result(panel)
    open_teach(panel)
    models = panel.findChild(QComboBox, "modelComboBox")
    models.addItem(TEACH_RUN["model"])
    models.setCurrentIndex(1)
    result = panel.findChild(QLabel, "fineTuneResultLabel")
    result.setText("\n".join(TEACH_RUN["summary"]))
    result.setMinimumHeight(result.heightForWidth(WIDTH - 60))  # the wrapped lines inside the section's frame
    panel.findChild(QPushButton, "segment-cord").setText("Segment cord (site model)")  # as updateButtons
    status(panel, f"Segment cord now uses {TEACH_RUN['model']}.")
    save(panel, "panel-site-model.png")


if __name__ == "__main__":
    main()
