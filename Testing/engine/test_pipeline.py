"""The engine entry point: accuracy on real scans, determinism, safe weights, cancel, device fallback."""

import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch

from spineai import inference
from spineai.errors import Cancelled, SpineAIError
from spineai.io import read_image
from spineai.metrics import dice
from spineai.models.registry import load_model, model_for_task, sha256_of
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


def test_tampered_weights_are_refused(tmp_path):
    spec = model_for_task("cord")
    shutil.copy(spec.weights_path, tmp_path / spec.weights)
    shutil.copy(spec.folder / "cord.json", tmp_path / "cord.json")
    data = bytearray((tmp_path / spec.weights).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / spec.weights).write_bytes(bytes(data))
    with pytest.raises(SpineAIError, match="sha256"):
        load_model(model_for_task("cord", tmp_path))


def test_unknown_task_and_device_are_refused():
    with pytest.raises(SpineAIError, match="unknown task"):
        segment(read_image(T2), task="brain")
    with pytest.raises(SpineAIError, match="unknown device"):
        inference.resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(SpineAIError, match="no CUDA GPU"):
            inference.resolve_device("cuda")


def test_progress_reaches_completion_and_cancel_stops_the_run():
    seen = []
    segment(read_image(T2), device="cpu", progress=seen.append)
    assert seen[-1] == 1.0 and seen == sorted(seen)
    with pytest.raises(Cancelled):
        segment(read_image(T2), device="cpu", should_cancel=lambda: True)


def test_cuda_failure_falls_back_to_cpu(monkeypatch, caplog):
    """A CUDA error (out of memory, driver failure) reruns the slices on the CPU with a warning."""
    spec = model_for_task("cord")
    predictor = inference.SlicePredictor(load_model(spec), spec, "cpu")
    original = inference.SlicePredictor._predict_slices
    calls = []

    def failing_once(self, *args):
        calls.append(self.device.type)
        if len(calls) == 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return original(self, *args)

    predictor.device = torch.device("cuda")  # as if CUDA had been picked
    monkeypatch.setattr(inference.SlicePredictor, "_predict_slices", failing_once)
    from spineai.orientation import to_canonical

    probability = predictor.probability(to_canonical(read_image(T2)))
    assert calls == ["cuda", "cpu"] and predictor.device.type == "cpu"
    assert "running on the CPU instead" in caplog.text
    assert sitk.GetArrayViewFromImage(probability).max() > 0.5


def test_predictor_is_loaded_once_per_task_and_device():
    assert inference.network_for("cord", "cpu") is inference.network_for("cord", "cpu")
