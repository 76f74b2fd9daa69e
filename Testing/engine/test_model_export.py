"""ONNX export (needs PyTorch): a re-export of each shipped model gives the shipped graph's outputs,
the graph gives PyTorch's, safetensors are checked before loading, and tiling with a random network."""

import shutil

import numpy as np
import pytest
import SimpleITK as sitk
import torch
from torch import nn

from spineai.errors import SpineAIError
from spineai.inference import OnnxRunner, SlicePredictor, network_for, normalise_intensity, sigmoid
from spineai.io import read_image
from spineai.models.registry import MODELS_DIR, model_for_task
from spineai.models.unet import UNet2D, fuse_for_inference
from spineai.orientation import to_canonical
from spineai.sample import T2
from spineai.tiling import predict_tiled
from spineai.training.export import export_folder
from spineai.training.weights import TorchRunner, load_model

TASKS = ["cord", "discs", "lesion", "stenosis", "tumor"]
HELD_OUT_AXIAL = "gm-challenge/sub-9669/anat/sub-9669_run-1_T2starw.nii.gz"  # 448 x 448 x 15, 0.5 mm in-plane


def real_batch(in_channels: int) -> np.ndarray:
    """Eight normalised slices of the bundled T2 (with neighbours as channels), padded to 64 x 64."""
    volume = normalise_intensity(sitk.GetArrayFromImage(to_canonical(read_image(T2))), (0.5, 99.5))
    slices = volume[20 : 28 + in_channels - 1]
    batch = np.stack([slices[i : i + in_channels] for i in range(8)])
    return np.pad(batch, ((0, 0), (0, 0), (0, 64 - batch.shape[2]), (0, 64 - batch.shape[3])))


@pytest.fixture(scope="module")
def reexported(tmp_path_factory):
    """Every shipped model exported again from its safetensors into a fresh folder."""
    folder = tmp_path_factory.mktemp("models")
    for task in TASKS:
        for name in (f"{task}.json", model_for_task(task).weights):
            shutil.copy(MODELS_DIR / name, folder / name)
    export_folder(folder)
    return folder


@pytest.mark.parametrize("task", TASKS)
def test_a_reexport_gives_the_shipped_graph_s_outputs(task, reexported):
    shipped, again = model_for_task(task), model_for_task(task, reexported)
    assert again.sha256 == shipped.sha256 and again.onnx.opset == shipped.onnx.opset
    batch = real_batch(shipped.in_channels)
    expected = OnnxRunner(shipped).run(batch)
    assert np.abs(OnnxRunner(again).run(batch) - expected).max() < 1e-5
    assert expected.std() > 0.5  # logits that vary: the comparison says something


@pytest.mark.parametrize("task", TASKS)
def test_the_onnx_graph_gives_pytorch_s_logits(task):
    spec = model_for_task(task)
    batch = real_batch(spec.in_channels)
    torch_logits = TorchRunner(fuse_for_inference(load_model(spec))).run(batch)
    assert np.abs(OnnxRunner(spec).run(batch) - torch_logits).max() < 1e-3


def test_tampered_weights_are_refused(tmp_path):
    spec = model_for_task("cord")
    shutil.copy(spec.weights_path, tmp_path / spec.weights)
    shutil.copy(spec.folder / "cord.json", tmp_path / "cord.json")
    data = bytearray((tmp_path / spec.weights).read_bytes())
    data[-1] ^= 0xFF
    (tmp_path / spec.weights).write_bytes(bytes(data))
    with pytest.raises(SpineAIError, match="sha256"):
        load_model(model_for_task("cord", tmp_path))


def test_the_torch_runner_and_the_onnx_runner_give_the_same_cord_mask():
    """The benchmark's torch reference and the product's path, through the same predictor."""
    spec = model_for_task("cord")
    canonical = to_canonical(read_image(T2))
    onnx = network_for("cord", "cpu").probability(canonical)
    reference = SlicePredictor(spec, TorchRunner(fuse_for_inference(load_model(spec)))).probability(canonical)
    a, b = sitk.GetArrayFromImage(onnx), sitk.GetArrayFromImage(reference)
    assert np.abs(a - b).max() < 1e-4 and np.array_equal(a > 0.5, b > 0.5) and (a > 0.5).sum() > 1000


def random_unet(seed: int = 0):
    """A fused UNet2D of the tumour architecture, variance-preserving random weights (outputs vary),
    as the tiling's network: (N, C, h, w) -> (N, h, w) probabilities."""
    torch.manual_seed(seed)
    network = UNet2D(in_channels=3, channels=(8, 16, 32, 64, 128))
    for layer in network.modules():
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
    runner = TorchRunner(fuse_for_inference(network))
    return lambda batch: sigmoid(runner.run(batch)[:, 0])


def test_tiled_prediction_is_close_to_whole_slices_for_a_random_network(data_dir):
    """Patches see zeros beyond their borders where whole slices see tissue; Gaussian blending keeps the
    change small. Measured on 5 slices of 448 x 448 with 256 patches, 2 x 2 tiles: max 0.105, mean 0.0012
    (uniform blending: max 0.34, mean 0.0036); probabilities span 0.20 to 0.99."""
    volume = sitk.GetArrayFromImage(to_canonical(read_image(data_dir / HELD_OUT_AXIAL)))
    axial_slices = normalise_intensity(volume, (0.5, 99.5))[5:10]
    network = random_unet()
    whole = predict_tiled(network, axial_slices, 1, 512, 0.25, 4, divisor=16)
    tiled = predict_tiled(network, axial_slices, 1, 256, 0.25, 8, divisor=16)
    difference = np.abs(tiled - whole)
    assert whole.std() > 0.05  # a network whose output varies, or the comparison says nothing
    assert difference.max() < 0.2 and difference.mean() < 0.005
