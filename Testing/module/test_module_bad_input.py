"""Bad input, cancellation and dependency trouble: a clear SpineAIError and no half-made nodes."""

import dataclasses

import numpy as np
import pytest
import SimpleITK as sitk
import slicer
from SpineAILib import SpineAILogic
from SpineAILib.Dependencies import DependencyError, DependencyInstaller
from SpineAILib.SceneTransaction import nodeIDs

from spineai.errors import Cancelled, InputError, SpineAIError


def run_leaves_scene_unchanged(run, error_type, match):
    """Run ``run``, expect ``error_type`` matching ``match``, and check no node was added; return the error."""
    before = nodeIDs(slicer.mrmlScene)
    with pytest.raises(error_type, match=match) as raised:
        run()
    assert nodeIDs(slicer.mrmlScene) == before
    return raised.value


def test_inputs_the_engine_cannot_use_are_refused(mrml, cached_engine):
    logic = SpineAILogic(engine=cached_engine)
    localizer = slicer.util.addVolumeFromArray(np.random.default_rng(1).random((1, 64, 64)), name="localizer")
    frames = slicer.util.addVolumeFromArray(
        np.random.default_rng(1).random((8, 9, 10, 4)), name="perfusion", nodeClassName="vtkMRMLVectorVolumeNode"
    )
    labels = slicer.util.addVolumeFromArray(
        np.ones((8, 9, 10), np.uint8), name="cord label", nodeClassName="vtkMRMLLabelMapVolumeNode"
    )
    run_leaves_scene_unchanged(lambda: logic.segment(None), InputError, "no volume selected")
    run_leaves_scene_unchanged(lambda: logic.segment(localizer), InputError, "localizer: is a single 2D slice")
    run_leaves_scene_unchanged(lambda: logic.segment(frames), InputError, "perfusion: has 4 values per voxel")
    run_leaves_scene_unchanged(lambda: logic.segment(labels), InputError, "cord label: is a segmentation")
    run_leaves_scene_unchanged(lambda: logic.segment(labels, task="brain"), InputError, "is a segmentation")


def test_unknown_task_or_device_is_refused(t2_volume, cached_engine):
    logic = SpineAILogic(engine=cached_engine)
    run_leaves_scene_unchanged(lambda: logic.segment(t2_volume, task="brain"), SpineAIError, "unknown task 'brain'")
    run_leaves_scene_unchanged(lambda: logic.segment(t2_volume, device="tpu"), SpineAIError, "unknown device 'tpu'")


def test_a_cancelled_run_adds_nothing(t2_volume):
    logic = SpineAILogic()  # the real engine, asked to stop at its first check
    error = run_leaves_scene_unchanged(
        lambda: logic.segment(t2_volume, device="cpu", shouldCancel=lambda: True), Cancelled, "cancelled by the user"
    )
    assert str(error) == "cancelled by the user"


def test_a_failure_while_building_results_removes_what_was_built(t2_volume, cached_engine, monkeypatch):
    import SpineAILib.Logic as logic_module

    def broken_measure(mask):
        raise SpineAIError("measurement failed on purpose")

    spec = logic_module.MEASUREMENTS["cord"]
    monkeypatch.setitem(logic_module.MEASUREMENTS, "cord", type(spec)(**{**spec.__dict__, "measure": broken_measure}))
    logic = SpineAILogic(engine=cached_engine)
    # The segmentation node exists when the table fails: it must go too.
    run_leaves_scene_unchanged(lambda: logic.segment(t2_volume, device="cpu"), SpineAIError, "on purpose")


def test_a_result_on_the_wrong_grid_adds_nothing(t2_volume, cached_engine):
    def shifted_engine(image, task, device, progress, should_cancel, source):
        result = cached_engine(image, task, "cpu", progress, should_cancel, source)
        mask = sitk.Image(result.mask)  # a copy: the cached result stays intact
        mask.SetOrigin(tuple(o + 2.0 for o in mask.GetOrigin()))
        return dataclasses.replace(result, mask=mask)

    logic = SpineAILogic(engine=shifted_engine)
    run_leaves_scene_unchanged(lambda: logic.segment(t2_volume), InputError, "another voxel grid")


def test_a_scan_without_cord_adds_nothing(t2_volume, cached_engine):
    def nothing_found(image, task, device, progress, should_cancel, source):
        result = cached_engine(image, task, "cpu", progress, should_cancel, source)
        empty = sitk.Image(result.mask.GetSize(), sitk.sitkUInt8)
        empty.CopyInformation(result.mask)
        return dataclasses.replace(result, mask=empty)

    logic = SpineAILogic(engine=nothing_found)
    run_leaves_scene_unchanged(lambda: logic.segment(t2_volume), InputError, "t2: no spinal cord found")


def test_measuring_an_erased_or_deleted_segment_says_so(t2_volume, cached_engine):
    logic = SpineAILogic(engine=cached_engine)
    segmentation_node, table_node = logic.segment(t2_volume, device="cpu")
    rows = table_node.GetNumberOfRows()
    mask = slicer.util.arrayFromSegmentBinaryLabelmap(segmentation_node, "spinal_cord", t2_volume)
    slicer.util.updateSegmentBinaryLabelmapFromArray(np.zeros_like(mask), segmentation_node, "spinal_cord", t2_volume)
    name = segmentation_node.GetName()
    run_leaves_scene_unchanged(
        lambda: logic.updateMeasurements(segmentation_node, t2_volume),
        InputError,
        f"{name}: the 'Spinal cord' segment is empty",
    )
    segmentation_node.GetSegmentation().RemoveSegment("spinal_cord")
    run_leaves_scene_unchanged(
        lambda: logic.updateMeasurements(segmentation_node, t2_volume),
        SpineAIError,
        f"{name}: has no 'Spinal cord' segment",
    )
    run_leaves_scene_unchanged(
        lambda: logic.updateMeasurements(None, t2_volume), SpineAIError, "no segmentation selected"
    )
    assert table_node.GetNumberOfRows() == rows  # the last good table stays


def test_missing_packages_are_named_before_anything_runs(t2_volume):
    calls = []
    missing_runtime = DependencyInstaller(isSatisfied=lambda requirement: not requirement.startswith("onnxruntime"))
    logic = SpineAILogic(engine=lambda *args: calls.append(args), dependencies=missing_runtime)
    run_leaves_scene_unchanged(
        lambda: logic.segment(t2_volume),
        DependencyError,
        r"not installed in Slicer: onnxruntime>=1\.17\. .*installDependencies",
    )
    assert calls == []
