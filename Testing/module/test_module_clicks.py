"""What a click meets when something fails: a message (and a logged traceback), never only a traceback;
missing packages lead to the installation from every button that needs them; the panel opens
without torch."""

import json
import logging
import os
import subprocess
import sys

from conftest import MODULE_DIR
from SpineAILib import SpineAILogic
from SpineAILib.Dependencies import DependencyError, DependencyInstaller
from SpineAILib.PanelActions import asUserError, runGuarded

from spineai.errors import InputError, SpineAIError


def click(action, name="Segment cord"):
    """What the panel does with a click: returns the message it would show (None when it ran through)."""
    shown = []
    runGuarded(action, shown.append, name)
    assert len(shown) <= 1
    return shown[0] if shown else None


def test_an_oserror_of_a_click_ends_in_a_message_and_a_logged_traceback(t2_volume, cached_engine, caplog, tmp_path):
    logic = SpineAILogic(engine=cached_engine)
    _, table_node = logic.segment(t2_volume, device="cpu")
    blocker = tmp_path / "not a folder"
    blocker.write_text("a file where the export folder should be")
    with caplog.at_level(logging.ERROR, logger="SpineAI"):
        message = click(lambda: logic.exportCSV(table_node, blocker / "out.csv"), "Export CSV")
    assert isinstance(message, SpineAIError)
    assert str(message).startswith("Export CSV failed: ")
    assert "the full report is in the Python console" in str(message)
    assert any(record.exc_info for record in caplog.records)  # the traceback went to the log


def test_a_runtime_error_from_the_engine_ends_in_a_message(t2_volume):
    def crashing_engine(*args, **options):
        raise RuntimeError("CUDA error: an illegal memory access was encountered")

    logic = SpineAILogic(engine=crashing_engine)
    message = click(lambda: logic.segment(t2_volume))
    assert str(message) == (
        "Segment cord failed: RuntimeError: CUDA error: an illegal memory access was encountered "
        "(the full report is in the Python console and Slicer's log)"
    )


def test_errors_the_user_can_act_on_keep_their_text():
    error = InputError("t2", "is a single 2D slice")
    assert asUserError(error, "Segment cord") is error
    assert click(lambda: None) is None


def test_update_measurements_with_packages_missing_asks_for_the_installation(t2_volume, cached_engine):
    logic = SpineAILogic(engine=cached_engine)
    segmentation_node, _ = logic.segment(t2_volume, device="cpu")
    logic.dependencies = DependencyInstaller(isSatisfied=lambda requirement: not requirement.startswith("scipy"))
    message = click(lambda: logic.updateMeasurements(segmentation_node, t2_volume), "Update measurements")
    # A DependencyError with packages missing is what the panel answers with the installation prompt.
    assert isinstance(message, DependencyError) and "scipy>=1.10" in str(message)
    assert logic.dependencies.missing() == ["scipy>=1.10"]


def test_a_module_that_cannot_be_imported_while_measuring_becomes_a_dependency_error(
    t2_volume, cached_engine, monkeypatch
):
    import SpineAILib.Logic as logic_module

    def measure_needing_a_missing_module(label_map):
        import spineai_module_that_is_not_installed  # noqa: F401

    spec = logic_module.MEASUREMENTS["cord"]
    broken = type(spec)(**{**spec.__dict__, "measure": measure_needing_a_missing_module})
    logic = SpineAILogic(engine=cached_engine)
    segmentation_node, table_node = logic.segment(t2_volume, device="cpu")
    monkeypatch.setitem(logic_module.MEASUREMENTS, "cord", broken)
    message = click(lambda: logic.updateMeasurements(segmentation_node, t2_volume), "Update measurements")
    assert isinstance(message, DependencyError)
    assert "measuring needs the engine's Python packages, and 'spineai_module_that_is_not_installed'" in str(message)
    assert table_node.GetNumberOfRows() > 0  # the last good table stays


def test_opening_the_panel_imports_neither_torch_nor_the_networks():
    """availableTasks is what the panel calls to build its sections; run it in a fresh interpreter."""
    code = (
        "import json, sys; import slicer; from SpineAILib import SpineAILogic; "
        "tasks = SpineAILogic().availableTasks(); "
        "print(json.dumps({'tasks': tasks, 'heavy': sorted(m for m in sys.modules "
        "if m.split('.')[0] in ('torch', 'onnxruntime') or m in ('spineai.pipeline', 'spineai.inference'))}))"
    )
    environment = {**os.environ, "PYTHONPATH": str(MODULE_DIR)}
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=True, timeout=120
    ).stdout
    result = json.loads(output.strip().splitlines()[-1])
    assert result["heavy"] == []
    assert result["tasks"] == ["cord", "lesion", "tumor", "stenosis"]


def test_a_broken_engine_does_not_stop_the_panel_from_building(mrml, monkeypatch):
    import SpineAILib.Logic as logic_module

    def broken_gpu_library():
        raise OSError("libcudnn.so.9: cannot open shared object file")

    monkeypatch.setattr(logic_module, "engineTasks", broken_gpu_library)
    assert SpineAILogic().availableTasks() == ["cord", "lesion", "tumor", "stenosis"]
