"""The model database: one JSON record per shipped network, weights checked before use.

Each ``<name>.json`` beside this file is the single record of a model: architecture, the
preprocessing it was trained with (nnU-Net's "plans" idea), its labels, the weights file and the
weights' sha256. ``load_model`` refuses weights whose checksum differs and never unpickles:
weights are safetensors.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import SpineAIError
from .unet import UNet2D

MODELS_DIR = Path(__file__).resolve().parent


@dataclass(frozen=True)
class ModelSpec:
    name: str
    task: str
    weights: str
    sha256: str
    channels: tuple[int, ...]
    in_plane_spacing_mm: tuple[float, float]
    percentiles: tuple[float, float]
    labels: dict[int, str]
    threshold: float = 0.5
    contrasts: tuple[str, ...] = ()
    context_slices: int = 0  # neighbouring slices on each side given as extra input channels (2.5D)
    patch_size: int | None = None  # in-plane patch of sliding-window inference; None: whole slices
    patch_overlap: float = 0.25  # fraction of the patch shared by neighbouring patches
    out_channels: int = 1  # 1: sigmoid of one target; more: softmax over classes 0..out_channels-1
    folder: Path = field(default=MODELS_DIR, compare=False)

    @property
    def in_channels(self) -> int:
        return 2 * self.context_slices + 1

    @property
    def weights_path(self) -> Path:
        return self.folder / self.weights

    @classmethod
    def from_json(cls, path: Path) -> ModelSpec:
        record = json.loads(Path(path).read_text())
        inference = record.get("inference", {})  # optional: absent means whole-slice inference
        return cls(
            name=record["name"],
            task=record["task"],
            weights=record["weights"],
            sha256=record["sha256"],
            channels=tuple(record["architecture"]["channels"]),
            in_plane_spacing_mm=tuple(record["preprocessing"]["in_plane_spacing_mm"]),
            percentiles=tuple(record["preprocessing"]["percentiles"]),
            labels={int(k): v for k, v in record["labels"].items()},
            threshold=record.get("threshold", 0.5),
            contrasts=tuple(record.get("contrasts", ())),
            context_slices=(record["architecture"].get("in_channels", 1) - 1) // 2,
            patch_size=inference.get("patch_size"),
            patch_overlap=inference.get("overlap", 0.25),
            out_channels=record["architecture"].get("out_channels", 1),
            folder=Path(path).resolve().parent,
        )


def model_for_task(task: str, models_dir: Path | None = None) -> ModelSpec:
    """The spec of the shipped model for ``task`` (``models_dir`` overrides the bundled folder)."""
    path = Path(models_dir or MODELS_DIR) / f"{task}.json"
    if not path.exists():
        raise SpineAIError(f"{path}: no model for task '{task}'")
    return ModelSpec.from_json(path)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_model(spec: ModelSpec) -> UNet2D:
    """Build the network and load its weights after verifying their sha256."""
    path = spec.weights_path
    if not path.exists():
        raise SpineAIError(f"{path}: model weights not found")
    actual = sha256_of(path)
    if actual != spec.sha256:
        raise SpineAIError(f"{path}: sha256 {actual} does not match the model record ({spec.sha256}); refusing to load")
    model = UNet2D(in_channels=spec.in_channels, out_channels=spec.out_channels, channels=spec.channels)
    model.load_state_dict(load_file(str(path)))
    return model.eval()


def save_weights(model: torch.nn.Module, path: Path) -> str:
    """Write the weights as safetensors and return their sha256."""
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(path))
    return sha256_of(path)
