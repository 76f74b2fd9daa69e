"""Patch-based inference: tile placement, Gaussian blending, agreement with whole slices, memory-sized batches."""

import json
import shutil

import numpy as np
import pytest
import SimpleITK as sitk
from onnxruntime.capi.onnxruntime_pybind11_state import RuntimeException

from spineai import inference, tiling
from spineai.errors import Cancelled, SpineAIError
from spineai.inference import OnnxRunner, SlicePredictor, network_for, normalise_intensity
from spineai.io import read_image
from spineai.metrics import dice
from spineai.models.registry import MODELS_DIR, model_for_task
from spineai.orientation import to_canonical
from spineai.sample import T2
from spineai.tiling import batch_size_for_memory, blend_weights, predict_tiled, tile_starts

TUMOR_CHANNELS = (8, 16, 32, 64, 128)
HELD_OUT_AXIAL = "gm-challenge/sub-9669/anat/sub-9669_run-1_T2starw.nii.gz"  # 448 x 448 x 15, 0.5 mm in-plane


def sample_slices() -> np.ndarray:
    """The bundled T2's normalised canonical volume, (55, 60, 52): small slices."""
    return normalise_intensity(sitk.GetArrayFromImage(to_canonical(read_image(T2))), (0.5, 99.5))


@pytest.fixture(scope="module")
def axial_slices(data_dir) -> np.ndarray:
    """Five 448 x 448 axial slices of a real held-out T2*w scan (slice axis first), normalised."""
    volume = sitk.GetArrayFromImage(to_canonical(read_image(data_dir / HELD_OUT_AXIAL)))
    return normalise_intensity(volume, (0.5, 99.5))[5:10]


@pytest.mark.parametrize("length", [1, 50, 255, 256, 257, 300, 448, 512, 513, 1000])
@pytest.mark.parametrize("patch, overlap", [(256, 0.25), (256, 0.5), (128, 0.0), (64, 0.9)])
def test_tiles_cover_every_pixel_with_the_requested_overlap(length, patch, overlap):
    starts = tile_starts(length, patch, overlap)
    if length <= patch:
        assert starts == [0]
        return
    covered = np.zeros(length, int)
    for start in starts:
        covered[start : start + patch] += 1
    assert covered.min() >= 1
    assert starts[0] == 0 and starts[-1] + patch == length  # flush with both edges
    assert all(b - a >= 1 and patch - (b - a) >= overlap * patch for a, b in zip(starts, starts[1:], strict=False))


def test_tile_count_matches_nnunet_and_monai_for_a_512_slice():
    assert tile_starts(512, 256, 0.25) == [0, 128, 256]
    assert tile_starts(512, 256, 0.0) == [0, 256]


def test_overlap_outside_zero_to_one_is_refused():
    for overlap in (-0.1, 1.0):
        with pytest.raises(ValueError):
            tile_starts(512, 256, overlap)


def test_blend_weights_are_positive_symmetric_and_peak_at_the_centre():
    weights = blend_weights(64, 48)
    assert weights.shape == (64, 48) and weights.dtype == np.float32
    assert weights.min() > 0 and weights.max() == pytest.approx(1.0)
    np.testing.assert_array_equal(weights, weights[::-1, ::-1])
    peak = np.unravel_index(np.argmax(weights), weights.shape)
    assert peak in {(31, 23), (31, 24), (32, 23), (32, 24)}
    assert weights[0, 0] < 1e-3 * weights.max()  # sigma = patch / 8: the border hardly counts


def test_tiled_equals_whole_slice_prediction_when_the_patch_covers_the_slice():
    """One tile per slice is the whole slice, padded to the divisor the same way: bit-identical."""
    predictor = network_for("cord", "cpu")
    slices = sample_slices()
    whole = predictor._predict_whole_slices(slices, None, None)
    tiled = predict_tiled(predictor.sigmoid_of, slices, 1, 64, 0.25, 8, divisor=predictor.divisor)
    np.testing.assert_array_equal(tiled, whole)


def test_tiled_cord_mask_matches_the_whole_slice_mask(axial_slices):
    """The shipped cord network: measured Dice 0.99 between the 256-patch and whole-slice masks."""
    predictor = network_for("cord", "cpu")
    whole = predictor._predict_whole_slices(axial_slices, None, None) > 0.5
    tiled = predict_tiled(predictor.sigmoid_of, axial_slices, 1, 256, 0.25, 8, divisor=16) > 0.5
    assert whole.sum() > 1000 and dice(tiled, whole) > 0.97


def test_patch_not_a_multiple_of_the_divisor_is_refused():
    network = network_for("tumor", "cpu").sigmoid_of
    with pytest.raises(SpineAIError, match="divisor"):
        predict_tiled(network, np.zeros((2, 64, 64), np.float32), 1, 40, 0.25, 2, divisor=16)


def test_progress_reaches_completion_and_cancel_stops_the_run():
    network, slices = network_for("tumor", "cpu").sigmoid_of, sample_slices()[:6]
    reported = []
    predict_tiled(network, slices, 1, 32, 0.5, 4, divisor=16, progress=reported.append)
    assert reported == sorted(reported) and reported[-1] == 1.0 and len(reported) > 1
    calls = []
    with pytest.raises(Cancelled):
        predict_tiled(network, slices, 1, 32, 0.5, 4, divisor=16, should_cancel=lambda: calls.append(1) or True)
    assert len(calls) == 1


def test_batch_size_stays_within_bounds_and_grows_with_the_budget():
    budgets = (0, 50 << 20, 200 << 20, 1 << 40)
    sizes = [batch_size_for_memory(256, 3, TUMOR_CHANNELS, "cpu", budget) for budget in budgets]
    assert sizes[0] == 1 and sizes[-1] == tiling.MAX_BATCH
    assert sizes == sorted(sizes) and sizes[1] < sizes[2]
    assert 1 <= batch_size_for_memory(256, 3, TUMOR_CHANNELS, "cpu") <= tiling.MAX_BATCH


def test_activation_estimate_is_bigger_for_wider_networks_and_patches():
    estimate = tiling.activation_bytes_per_patch
    assert estimate(256, 3, TUMOR_CHANNELS) == 4 * 256 * 256 * 65  # the documented 65 floats per pixel
    assert estimate(512, 3, TUMOR_CHANNELS) == 4 * estimate(256, 3, TUMOR_CHANNELS)
    assert estimate(256, 3, (16, 32, 64, 128)) > estimate(256, 3, TUMOR_CHANNELS)


def patched_model_dir(tmp_path, patch_size: int, overlap: float):
    """The cord model's record with an ``inference`` block, beside a copy of its ONNX graph."""
    record = json.loads((MODELS_DIR / "cord.json").read_text())
    record["inference"] = {"patch_size": patch_size, "overlap": overlap}
    (tmp_path / "cord.json").write_text(json.dumps(record))
    shutil.copy(MODELS_DIR / record["onnx"]["file"], tmp_path / record["onnx"]["file"])
    return tmp_path


def test_shipped_record_without_inference_block_infers_whole_slices():
    spec = model_for_task("cord")
    assert spec.patch_size is None and spec.patch_overlap == 0.25


def test_model_record_with_patch_size_makes_the_predictor_tile(tmp_path, monkeypatch):
    spec = model_for_task("cord", patched_model_dir(tmp_path, 32, 0.5))
    assert spec.patch_size == 32 and spec.patch_overlap == 0.5
    calls = []

    def spy(*args, **kwargs):
        calls.append((args[3], args[4], args[5]))  # patch, overlap, batch size
        return predict_tiled(*args, **kwargs)

    monkeypatch.setattr(inference, "predict_tiled", spy)
    canonical = to_canonical(read_image(T2))
    reported = []
    probability = SlicePredictor(spec, OnnxRunner(spec)).probability(canonical, progress=reported.append)
    assert calls and calls[0][:2] == (32, 0.5) and 1 <= calls[0][2] <= tiling.MAX_BATCH
    assert probability.GetSize() == canonical.GetSize() and reported[-1] == 1.0
    whole = network_for("cord", "cpu").probability(canonical)
    # Measured Dice 0.985: 32-pixel patches are far smaller than the network's receptive field.
    assert dice(sitk.GetArrayViewFromImage(probability) > 0.5, sitk.GetArrayViewFromImage(whole) > 0.5) > 0.95


class OnCuda:
    """The CPU runner, labelled as running on CUDA: the predictor then treats errors as CUDA's."""

    device = "cuda"

    def __init__(self, runner):
        self.runner = runner

    def run(self, batch):
        return self.runner.run(batch)

    def on_cpu(self):
        return self.runner


def test_cuda_out_of_memory_halves_the_patch_batch(tmp_path, monkeypatch):
    spec = model_for_task("cord", patched_model_dir(tmp_path, 32, 0.25))
    predictor = SlicePredictor(spec, OnCuda(OnnxRunner(spec)))
    tried = []

    def out_of_memory_above_two(*args, **kwargs):
        tried.append(args[5])
        if args[5] > 2:
            raise RuntimeException("Failed to allocate memory for requested buffer of size 536870912")
        return predict_tiled(*args, **kwargs)

    monkeypatch.setattr(inference, "predict_tiled", out_of_memory_above_two)
    monkeypatch.setattr(inference, "batch_size_for_memory", lambda *args: 16)
    slices = sample_slices()[:4]
    predictor._predict_slices(slices, np.empty_like(slices), None, None)
    assert tried == [16, 8, 4, 2] and predictor.device == "cuda"


def test_another_cuda_error_is_not_retried_with_smaller_batches(tmp_path, monkeypatch):
    spec = model_for_task("cord", patched_model_dir(tmp_path, 32, 0.25))
    predictor = SlicePredictor(spec, OnCuda(OnnxRunner(spec)))
    tried = []

    def driver_failure(*args, **kwargs):
        tried.append(args[5])
        raise RuntimeException("CUDA failure 999: unknown error")

    monkeypatch.setattr(inference, "predict_tiled", driver_failure)
    monkeypatch.setattr(inference, "batch_size_for_memory", lambda *args: 16)
    slices = sample_slices()[:4]
    with pytest.raises(RuntimeException, match="unknown error"):
        predictor._predict_slices(slices, np.empty_like(slices), None, None)
    assert tried == [16]
