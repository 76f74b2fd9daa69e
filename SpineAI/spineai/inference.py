"""Slice-wise network inference on a canonical image.

The 2D network runs on the slices of the acquisition plane: the slice axis is the one with the
coarsest spacing (ties go to the axis with fewest voxels, e.g. the R-L axis of a 1 mm sagittal
volume). The two in-plane axes are resampled (SimpleITK, linear) only when their spacing lies
outside the range the model was trained on, and the probabilities are resampled back to the
canonical grid. Slices are inferred whole in batches, or, when the model's record sets
``inference.patch_size``, in overlapping patches blended with Gaussian weights (``spineai.tiling``)
so that large fields of view fit in memory.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from torch.nn import functional as F

from .devices import DEVICES
from .errors import Cancelled, SpineAIError
from .models.registry import ModelSpec, load_model, model_for_task
from .models.unet import UNet2D, fuse_for_inference
from .tiling import batch_size_for_memory, network_probabilities, predict_tiled, with_context

log = logging.getLogger(__name__)

Progress = Callable[[float], None]
ShouldCancel = Callable[[], bool]


def resolve_device(device: str) -> torch.device:
    """'auto' -> CUDA when available, else CPU; 'cuda' without a GPU is an error."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpineAIError("device 'cuda' requested but no CUDA GPU is available (use --device auto or cpu)")
    if device not in DEVICES:
        raise SpineAIError(f"unknown device '{device}' (choose {', '.join(DEVICES)})")
    return torch.device(device)


def slice_axis(spacing_zyx, size_zyx) -> int:
    """Array axis across the acquisition slices: coarsest spacing, then fewest voxels."""
    return min(range(3), key=lambda axis: (-round(spacing_zyx[axis], 3), size_zyx[axis]))


def network_spacing(spacing_zyx, axis: int, spacing_range) -> tuple[float, float, float]:
    """Spacing on the network grid: in-plane spacings clipped to the trained range, slice axis kept."""
    low, high = spacing_range
    return tuple(s if i == axis else float(np.clip(s, low, high)) for i, s in enumerate(spacing_zyx))


def resample_to_spacing(image: sitk.Image, spacing_zyx, interpolator=sitk.sitkLinear) -> sitk.Image:
    """Resample onto a grid of the given spacing covering the same physical extent."""
    old_xyz = np.array(image.GetSpacing())
    new_xyz = np.array(spacing_zyx[::-1], dtype=float)
    if np.allclose(old_xyz, new_xyz):
        return image
    size = np.maximum(np.round(np.array(image.GetSize()) * old_xyz / new_xyz), 1).astype(int)
    # Keep the first voxel's corner in place, so the two grids cover the same extent.
    direction = np.array(image.GetDirection()).reshape(3, 3)
    corner = np.array(image.GetOrigin()) - direction @ (old_xyz / 2)
    origin = corner + direction @ (new_xyz / 2)
    return sitk.Resample(
        image,
        [int(s) for s in size],
        sitk.Transform(),
        interpolator,
        tuple(origin),
        tuple(new_xyz),
        image.GetDirection(),
        0.0,
        sitk.sitkFloat32,
    )


def normalise_intensity(array: np.ndarray, percentiles) -> np.ndarray:
    """Map the [p_low, p_high] percentile range to [0, 1] (robust to scanner scale), clip outliers."""
    low, high = (float(p) for p in np.percentile(array, percentiles))
    scale = high - low if high > low else 1.0
    return np.clip((array.astype(np.float32) - low) / scale, -0.5, 2.0).astype(np.float32)


@lru_cache(maxsize=8)
def network_for(task: str, device: str = "auto", models_dir: Path | None = None) -> SlicePredictor:
    """The network of ``task``'s model record (``models_dir``: another model folder), loaded once per
    process and device. Every task's networks come from here, so each has the CUDA-to-CPU fallback."""
    spec = model_for_task(task, models_dir)
    return SlicePredictor(load_model(spec), spec, device)


class SlicePredictor:
    """A loaded network on a device: slice-wise probabilities of a canonical image (one-target
    networks) or class probabilities of 2D images (many-class networks). A CUDA failure reruns
    the work on the CPU with a warning."""

    def __init__(self, model: UNet2D, spec: ModelSpec, device: str = "auto", batch_size: int = 8):
        self.spec = spec
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.divisor = model.size_divisor
        self._model_cpu = fuse_for_inference(model).to(memory_format=torch.channels_last)
        self.model = self._model_cpu.to(self.device)

    def probability(
        self, canonical: sitk.Image, progress: Progress | None = None, should_cancel: ShouldCancel | None = None
    ) -> sitk.Image:
        """Cord probability (float32) on the canonical image's grid."""
        spacing = tuple(reversed(canonical.GetSpacing()))
        axis = slice_axis(spacing, canonical.GetSize()[::-1])
        network_grid = resample_to_spacing(canonical, network_spacing(spacing, axis, self.spec.in_plane_spacing_mm))
        volume = normalise_intensity(sitk.GetArrayViewFromImage(network_grid), self.spec.percentiles)
        slices = np.moveaxis(volume, axis, 0)
        probabilities = self._with_cpu_fallback(lambda: self._predict_slices(slices, progress, should_cancel))
        probability = sitk.GetImageFromArray(np.ascontiguousarray(np.moveaxis(probabilities, 0, axis)))
        probability.CopyInformation(network_grid)
        if probability.GetSize() == canonical.GetSize() and network_grid is canonical:
            return probability
        return sitk.Resample(probability, canonical, sitk.Transform(), sitk.sitkLinear, 0.0, sitk.sitkFloat32)

    def class_probabilities(self, images: np.ndarray) -> np.ndarray:
        """Softmax (N, classes, H, W) of a many-class network over 2D images (N, H, W)."""
        return self._with_cpu_fallback(lambda: class_probabilities(self.model, images, self.device, self.batch_size))

    def _with_cpu_fallback(self, work: Callable[[], np.ndarray]) -> np.ndarray:
        try:
            return work()
        except (torch.cuda.OutOfMemoryError, RuntimeError) as error:
            if self.device.type != "cuda" or isinstance(error, Cancelled):
                raise
            log.warning("CUDA failed (%s); running on the CPU instead", str(error).splitlines()[0])
            self.device, self.model = torch.device("cpu"), self._model_cpu.cpu()
            return work()

    def _predict_slices(self, slices: np.ndarray, progress, should_cancel) -> np.ndarray:
        if self.spec.patch_size:
            return self._predict_patches(slices, progress, should_cancel)
        return self._predict_whole_slices(slices, progress, should_cancel)

    def _predict_patches(self, slices: np.ndarray, progress, should_cancel) -> np.ndarray:
        """Sliding-window inference, the batch sized to free memory. A CUDA out-of-memory error
        halves the batch and starts again, down to one patch; after that ``probability`` falls
        back to the CPU as for whole slices."""
        spec = self.spec
        batch_size = batch_size_for_memory(spec.patch_size, spec.in_channels, spec.channels, self.device)
        while True:
            try:
                return predict_tiled(
                    self.model,
                    slices,
                    spec.context_slices,
                    spec.patch_size,
                    spec.patch_overlap,
                    batch_size,
                    self.device,
                    divisor=self.divisor,
                    progress=progress,
                    should_cancel=should_cancel,
                )
            except torch.cuda.OutOfMemoryError:
                if batch_size == 1:
                    raise
                batch_size //= 2
                torch.cuda.empty_cache()
                log.warning("CUDA out of memory; retrying with %d patches per batch", batch_size)

    @torch.inference_mode()
    def _predict_whole_slices(self, slices: np.ndarray, progress, should_cancel) -> np.ndarray:
        count, height, width = slices.shape
        pad_h, pad_w = (-height) % self.divisor, (-width) % self.divisor
        output = np.empty(slices.shape, dtype=np.float32)
        for start in range(0, count, self.batch_size):
            if should_cancel and should_cancel():
                raise Cancelled()
            indices = np.arange(start, min(start + self.batch_size, count))
            batch = torch.from_numpy(with_context(slices, indices, self.spec.context_slices))
            batch = F.pad(batch, (0, pad_w, 0, pad_h))
            probabilities = network_probabilities(self.model, batch, self.device)
            output[start : start + len(batch)] = probabilities[:, :height, :width].cpu().numpy()
            if progress:
                progress(min(1.0, (start + len(batch)) / count))
        return output


@torch.inference_mode()
def class_probabilities(model: torch.nn.Module, images: np.ndarray, device: torch.device, batch_size: int = 8):
    """Softmax (N, classes, H, W) of a many-class network over 2D images (N, H, W), padded to its divisor."""
    count, height, width = images.shape
    divisor = getattr(model, "size_divisor", 16)
    pad_h, pad_w = (-height) % divisor, (-width) % divisor
    outputs = []
    for start in range(0, count, batch_size):
        batch = torch.from_numpy(np.ascontiguousarray(images[start : start + batch_size], np.float32))[:, None]
        batch = F.pad(batch, (0, pad_w, 0, pad_h)).to(device)
        with torch.autocast(device.type, dtype=torch.float16, enabled=device.type == "cuda"):
            logits = model(batch)
        outputs.append(torch.softmax(logits.float(), 1)[:, :, :height, :width].cpu().numpy())
    return np.concatenate(outputs) if outputs else np.zeros((0, 1, height, width), np.float32)
