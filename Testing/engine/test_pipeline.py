"""The engine entry point: accuracy on real scans, determinism, checked graphs, cancel, device fallback."""

import logging
import shutil
from dataclasses import replace

import numpy as np
import pytest
import SimpleITK as sitk
from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

from spineai import inference
from spineai.errors import Cancelled, SpineAIError
from spineai.io import read_image
from spineai.metrics import dice
from spineai.models.registry import model_for_task, sha256_of
from spineai.orientation import to_canonical
from spineai.pipeline import segment
from spineai.sample import T2, T2_CORD_MANUAL


def overlap(mask: sitk.Image, truth_path) -> float:
    return dice(sitk.GetArrayViewFromImage(mask), sitk.GetArrayFromImage(read_image(truth_path)) > 0.5)


def test_bundled_sample_is_segmented_like_the_manual_mask():
    result = segment(read_image(T2), device="cpu")
    assert overlap(result.mask, T2_CORD_MANUAL) > 0.85


def test_held_out_axial_t2star_scan_is_segmented(data_dir):
    """gm-challenge sub-9669 is in the validation split: the network never saw this subject."""
    labels = data_dir / "gm-challenge/derivatives/labels/sub-9669/anat"
    result = segment(read_image(data_dir / "gm-challenge/sub-9669/anat/sub-9669_run-1_T2starw.nii.gz"), device="cpu")
    assert overlap(result.mask, labels / "sub-9669_run-1_T2starw_seg-manual.nii.gz") > 0.8


def test_result_is_one_component_without_holes():
    mask = sitk.GetArrayFromImage(segment(read_image(T2), device="cpu").mask)
    components = sitk.ConnectedComponent(sitk.GetImageFromArray(mask), True)
    assert sitk.GetArrayViewFromImage(components).max() == 1


def test_segmentation_is_deterministic():
    image = read_image(T2)
    first = sitk.GetArrayFromImage(segment(image, device="cpu").mask)
    second = sitk.GetArrayFromImage(segment(image, device="cpu").mask)
    assert np.array_equal(first, second)


def test_sidecar_records_model_device_and_geometry():
    image = read_image(T2)
    sidecar = segment(image, device="cpu").sidecar
    spec = model_for_task("cord")
    assert sidecar["model_sha256"] == spec.sha256 == sha256_of(spec.weights_path)
    assert sidecar["device"] == "cpu"
    assert sidecar["input_geometry"]["size"] == list(image.GetSize())
    assert sidecar["input_geometry"]["orientation"] == "PSR"
    assert sidecar["labels"] == {"1": "Spinal cord"}
    assert sidecar["seconds"] > 0


def test_tampered_onnx_graph_is_refused(tmp_path):
    spec = model_for_task("cord")
    for name in (spec.weights, spec.onnx.file, "cord.json"):
        shutil.copy(spec.folder / name, tmp_path / name)
    data = bytearray((tmp_path / spec.onnx.file).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / spec.onnx.file).write_bytes(bytes(data))
    with pytest.raises(SpineAIError, match="sha256 .* does not match the model record"):
        inference.network_for("cord", "cpu", tmp_path)


def test_a_record_without_onnx_graph_says_how_to_make_one(tmp_path):
    spec = model_for_task("cord")
    shutil.copy(spec.weights_path, tmp_path / spec.weights)
    replace(spec, onnx=None, folder=tmp_path).write()  # a record from before ONNX export
    with pytest.raises(SpineAIError, match=f"names no ONNX graph; write one with: spineai export-onnx {tmp_path}"):
        inference.network_for("cord", "cpu", tmp_path)


def test_unknown_task_and_device_are_refused():
    with pytest.raises(SpineAIError, match="unknown task"):
        segment(read_image(T2), task="brain")
    with pytest.raises(SpineAIError, match="unknown device"):
        inference.resolve_device("tpu")


def test_cuda_without_the_cuda_provider_warns_once_and_runs_on_the_cpu(monkeypatch, caplog):
    monkeypatch.setattr(inference, "cuda_available", lambda: False)
    inference._warn_once.cache_clear()
    with caplog.at_level(logging.WARNING):
        assert [inference.resolve_device(d) for d in ("cuda", "cuda", "auto", "cpu")] == ["cpu"] * 4
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and "CUDA requested but ONNX Runtime has no CUDA provider" in warnings[0]
    monkeypatch.setattr(inference, "cuda_available", lambda: True)
    assert inference.resolve_device("auto") == inference.resolve_device("cuda") == "cuda"


def test_a_cuda_session_that_does_not_start_falls_back_to_the_cpu(caplog, capsys):
    """Here ONNX Runtime has no CUDA provider: asked for one anyway, it runs on the CPU, and the user
    reads one line from SpineAI instead of ONNX Runtime's banner on stdout."""
    spec = model_for_task("cord")
    inference._warn_once.cache_clear()
    with caplog.at_level(logging.WARNING):
        runner = inference.OnnxRunner(spec, "cuda")
    assert runner.device == "cpu" and runner.session.get_providers() == ["CPUExecutionProvider"]
    assert "CUDA failed" in caplog.text and "running on the CPU instead" in caplog.text
    assert capsys.readouterr().out == ""


def test_progress_reaches_completion_and_cancel_stops_the_run():
    seen = []
    segment(read_image(T2), device="cpu", progress=seen.append)
    assert seen[-1] == 1.0 and seen == sorted(seen)
    with pytest.raises(Cancelled):
        segment(read_image(T2), device="cpu", should_cancel=lambda: True)


class FailingCuda:
    """A runner that says it is on CUDA and fails there as ONNX Runtime does; its CPU twin works."""

    device = "cuda"

    def __init__(self, cpu_runner):
        self.cpu_runner, self.calls = cpu_runner, 0

    def run(self, batch):
        self.calls += 1
        raise RuntimeException("CUDA failure 2: out of memory ; GPU=0 ; expr=cudaMalloc")

    def on_cpu(self):
        return self.cpu_runner


def test_cuda_failure_falls_back_to_cpu(caplog):
    """A CUDA error (out of memory, driver failure) reruns the slices on the CPU with a warning."""
    spec = model_for_task("cord")
    cuda = FailingCuda(inference.OnnxRunner(spec, "cpu"))
    predictor = inference.SlicePredictor(spec, cuda)
    probability = predictor.probability(to_canonical(read_image(T2)))
    assert cuda.calls == 1 and predictor.device == "cpu"
    assert "CUDA failed (CUDA failure 2: out of memory" in caplog.text and "running on the CPU instead" in caplog.text
    assert sitk.GetArrayViewFromImage(probability).max() > 0.5


def test_a_cpu_failure_is_not_retried():
    spec = model_for_task("cord")
    broken = FailingCuda(None)
    broken.device = "cpu"
    with pytest.raises(RuntimeException, match="out of memory"):
        inference.SlicePredictor(spec, broken).probability(to_canonical(read_image(T2)))


def test_predictor_is_loaded_once_per_task_and_device():
    assert inference.network_for("cord", "cpu") is inference.network_for("cord", "cpu")
