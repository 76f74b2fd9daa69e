"""The networks as PyTorch modules: safetensors weights in and out, and a runner that infers with
them through the engine's code paths (``inference.SlicePredictor``).

Training, fine-tuning and ONNX export need this; inference does not (it runs the ONNX graph).
Weights are checked against the record's sha256 before loading and are never unpickled.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load as load_safetensors
from safetensors.torch import save_file

from ..models.registry import ModelSpec, sha256_of, verified_bytes
from ..models.unet import UNet2D, fuse_for_inference


def new_network(spec: ModelSpec) -> UNet2D:
    return UNet2D(in_channels=spec.in_channels, out_channels=spec.out_channels, channels=spec.channels)


def load_model(spec: ModelSpec) -> UNet2D:
    """Build the network and load its weights after verifying their sha256."""
    state = load_safetensors(verified_bytes(spec.weights_path, spec.sha256, "model weights"))
    model = new_network(spec)
    model.load_state_dict(state)
    return model.eval()


def save_weights(model: torch.nn.Module, path: Path) -> str:
    """Write the weights as safetensors and return their sha256."""
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(path))
    return sha256_of(path)


def inference_copy(model: UNet2D, spec: ModelSpec) -> torch.nn.Module:
    """A fused (BatchNorm folded) eval copy of ``model``, leaving the training network untouched."""
    copy = new_network(spec)
    copy.load_state_dict(model.state_dict())
    return fuse_for_inference(copy.eval())


class TorchRunner:
    """Runs a PyTorch network on the engine's batches: ``run(batch)`` maps (N, C, H, W) float32 to
    (N, out_channels, H, W) logits, as ``inference.OnnxRunner`` does. Used to validate while training
    and, in benchmarks, as the reference the ONNX graph is compared with."""

    def __init__(self, model: torch.nn.Module, device: str = "cpu"):
        self.device = device
        self.model = model.to(device).to(memory_format=torch.channels_last).eval()

    @torch.inference_mode()
    def run(self, batch: np.ndarray) -> np.ndarray:
        inputs = torch.from_numpy(np.ascontiguousarray(batch, np.float32)).to(self.device)
        logits = self.model(inputs.contiguous(memory_format=torch.channels_last))
        return logits.float().cpu().numpy()

    def on_cpu(self) -> TorchRunner:
        return TorchRunner(self.model, "cpu")
