"""Training of the slice-wise U-Net from a manifest of labelled scans (``spineai train``).

Slices of the acquisition plane are prepared exactly as inference prepares them (canonical
orientation, in-plane spacing clipped to the model's range, percentile normalisation), random
patches are drawn with the cord in most of them, augmented (``augment``), and the network is fitted
with BCE + soft Dice. The model of the last iteration is kept (no selection on the validation
set, so the validation Dice is an honest estimate) and validated on whole held-out scans through
the same code path as ``spineai segment``.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import SimpleITK as sitk
import torch
from torch.nn import functional as F

from .. import __version__
from ..inference import (
    SlicePredictor,
    network_spacing,
    normalise_intensity,
    resample_to_spacing,
    slice_axis,
    with_context,
)
from ..io import read_image
from ..metrics import annotated_range, dice
from ..models.registry import ModelSpec, save_weights
from ..models.unet import UNet2D
from ..orientation import canonical_array, to_canonical
from ..postprocess import clean_cord_mask
from .augment import augment
from .cases import Case

log = logging.getLogger(__name__)

DEFAULT_SPEC = ModelSpec(
    name="spineai-cord-unet2d",
    task="cord",
    weights="cord.safetensors",
    sha256="",
    channels=(8, 16, 32, 64, 128),
    in_plane_spacing_mm=(0.5, 1.0),
    percentiles=(0.5, 99.5),
    labels={1: "Spinal cord"},
    context_slices=1,
    contrasts=("T2w", "T2starw", "T1w", "MT"),
)


def prepare_slices(case: Case, spec: ModelSpec) -> tuple[np.ndarray, np.ndarray]:
    """(images, masks) of shape (slices, H, W) on the network grid, as inference sees them."""
    image = to_canonical(read_image(case.image))
    mask = to_canonical(read_image(case.mask))
    spacing = tuple(reversed(image.GetSpacing()))
    axis = slice_axis(spacing, image.GetSize()[::-1])
    target = network_spacing(spacing, axis, spec.in_plane_spacing_mm)
    image = resample_to_spacing(image, target)
    mask = resample_to_spacing(sitk.Cast(mask > 0.5, sitk.sitkFloat32), target)
    images = normalise_intensity(sitk.GetArrayViewFromImage(image), spec.percentiles)
    masks = (sitk.GetArrayViewFromImage(mask) > 0.5).astype(np.uint8)
    return np.moveaxis(images, axis, 0), np.moveaxis(masks, axis, 0)


class PatchSampler:
    """Draws square patches: a volume uniformly, then a slice (mostly one with cord), then a crop."""

    def __init__(self, volumes, patch_size: int = 128, cord_fraction: float = 0.85, context_slices: int = 0):
        self.volumes = volumes
        self.context = context_slices
        self.patch = patch_size
        self.cord_fraction = cord_fraction
        self.cord_slices = [np.flatnonzero(masks.any(axis=(1, 2))) for _, masks in volumes]

    def sample(self, batch_size: int, rng: np.random.Generator):
        images = np.zeros((batch_size, 2 * self.context + 1, self.patch, self.patch), np.float32)
        masks = np.zeros((batch_size, 1, self.patch, self.patch), np.float32)
        for b in range(batch_size):
            v = rng.integers(len(self.volumes))
            volume_images, volume_masks = self.volumes[v]
            with_cord = len(self.cord_slices[v]) and rng.random() < self.cord_fraction
            s = rng.choice(self.cord_slices[v]) if with_cord else rng.integers(len(volume_images))
            top, left = self._corner(volume_masks[s], with_cord, rng)
            crop = (slice(max(top, 0), top + self.patch), slice(max(left, 0), left + self.patch))
            piece = with_context(volume_images, np.array([s]), self.context)[0][(slice(None), *crop)]
            dst = (
                slice(max(-top, 0), max(-top, 0) + piece.shape[1]),
                slice(max(-left, 0), max(-left, 0) + piece.shape[2]),
            )
            images[b][(slice(None), *dst)] = piece
            masks[b, 0][dst] = volume_masks[s][crop]
        return torch.from_numpy(images), torch.from_numpy(masks)

    def _corner(self, mask, with_cord, rng):
        height, width = mask.shape
        if with_cord:
            ys, xs = np.nonzero(mask)
            i = rng.integers(len(ys))
            centre = (
                ys[i] + rng.integers(-self.patch // 4, self.patch // 4 + 1),
                xs[i] + rng.integers(-self.patch // 4, self.patch // 4 + 1),
            )
        else:
            centre = (rng.integers(height), rng.integers(width))
        return int(centre[0]) - self.patch // 2, int(centre[1]) - self.patch // 2


def soft_dice_loss(logits, targets, eps=1.0):
    probabilities = torch.sigmoid(logits)
    intersection = (probabilities * targets).sum()
    return 1 - (2 * intersection + eps) / (probabilities.sum() + targets.sum() + eps)


def validate(model: UNet2D, spec: ModelSpec, cases: list[Case]) -> list[dict]:
    """Dice of each validation scan, segmented whole through the inference path."""
    predictor = SlicePredictor(_copy_for_inference(model), spec, "cpu")
    results = []
    for case in cases:
        canonical = to_canonical(read_image(case.image))
        probability = canonical_array(predictor.probability(canonical))
        prediction = clean_cord_mask(probability, spec.threshold)
        truth = canonical_array(to_canonical(read_image(case.mask))) > 0.5
        labelled = annotated_range(truth)
        labelled = annotated_range(truth)
        results.append(
            {
                "image": case.image.name,
                "subject": case.subject,
                "group": case.group,
                "plane": case.plane,
                "dice": round(dice(prediction, truth), 4),
                "dice_annotated_slices": round(dice(prediction[labelled], truth[labelled]), 4),
            }
        )
    return results


def _copy_for_inference(model: UNet2D) -> UNet2D:
    copy = UNet2D(in_channels=model.in_channels, channels=model.channels)
    copy.load_state_dict(model.state_dict())
    return copy.eval()


def summarise(results: list[dict]) -> dict:
    """Median and per-case Dice per dataset/contrast group."""
    groups: dict[str, list[dict]] = {}
    for result in results:
        groups.setdefault(result["group"], []).append(result)
    return {
        group: {
            "n": len(rows),
            "median_dice": round(statistics.median(r["dice"] for r in rows), 4),
            "median_dice_annotated_slices": round(statistics.median(r["dice_annotated_slices"] for r in rows), 4),
        }
        for group, rows in sorted(groups.items())
    }


def train(
    cases: list[Case],
    out_dir: Path,
    iterations: int = 2000,
    batch_size: int = 12,
    patch_size: int = 128,
    learning_rate: float = 3e-3,
    seed: int = 0,
    validate_every: int = 500,
    spec: ModelSpec = DEFAULT_SPEC,
    progress=None,
) -> dict:
    """Train, validate, and write ``<task>.safetensors`` + ``<task>.json`` + ``metrics.json`` to ``out_dir``."""
    torch.manual_seed(seed)
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    train_cases = [case for case in cases if case.split == "train"]
    val_cases = [case for case in cases if case.split == "val"]
    sampler = PatchSampler(
        [prepare_slices(case, spec) for case in train_cases], patch_size, context_slices=spec.context_slices
    )
    model = UNet2D(in_channels=spec.in_channels, channels=spec.channels)
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, learning_rate, total_steps=iterations, pct_start=0.05)
    history, started = [], time.perf_counter()
    for step in range(1, iterations + 1):
        model.train()
        images, masks = augment(*sampler.sample(batch_size, rng), generator)
        logits = model(images)
        loss = F.binary_cross_entropy_with_logits(logits, masks) + soft_dice_loss(logits, masks)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if progress:
            progress(step, iterations, loss.item())
        if step % validate_every == 0 or step == iterations:
            results = validate(model, spec, val_cases) if val_cases else []
            history.append(
                {
                    "step": step,
                    "loss": round(loss.item(), 4),
                    "minutes": round((time.perf_counter() - started) / 60, 1),
                    "validation": summarise(results) if results else {},
                }
            )
            log.info("step %d: %s", step, json.dumps(history[-1]))
            # A checkpoint at every validation: a long CPU run stopped early still leaves a model.
            settings = dict(
                iterations=iterations,
                completed=step,
                batch_size=batch_size,
                patch_size=patch_size,
                learning_rate=learning_rate,
                seed=seed,
                minutes=history[-1]["minutes"],
            )
            metrics = _write_model(model, spec, out_dir, cases, results, history, settings)
    return metrics


def _write_model(model, spec, out_dir, cases, results, history, settings) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sha256 = save_weights(model, out_dir / spec.weights)
    spec = replace(spec, sha256=sha256)
    record = {
        "name": spec.name,
        "task": spec.task,
        "weights": spec.weights,
        "sha256": sha256,
        "architecture": {
            "type": "UNet2D",
            "channels": list(spec.channels),
            "in_channels": spec.in_channels,
            "out_channels": 1,
        },
        "preprocessing": {
            "orientation": "LAS (SCT RPI)",
            "slice_axis": "coarsest spacing, then fewest voxels",
            "in_plane_spacing_mm": list(spec.in_plane_spacing_mm),
            "normalisation": "percentile range to [0, 1]",
            "percentiles": list(spec.percentiles),
        },
        "labels": {str(k): v for k, v in spec.labels.items()},
        "threshold": spec.threshold,
        "contrasts": list(spec.contrasts),
        "engine_version": __version__,
    }
    (out_dir / f"{spec.task}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    metrics = {
        "training": settings,
        "train_cases": [
            {"image": str(c.image.name), "subject": c.subject, "group": c.group} for c in cases if c.split == "train"
        ],
        "validation_cases": results,
        "validation_summary": summarise(results) if results else {},
        "history": history,
        "model": {k: v for k, v in asdict(spec).items() if k != "folder"},
    }
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n", encoding="utf-8")
    return metrics
