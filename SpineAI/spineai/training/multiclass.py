"""Training of many-class slice networks (disc levels, dural sac contents) from a batch sampler.

The cord-type tasks fit one sigmoid target on patches of labelled scans (``train``); the lumbar
tasks have several exclusive classes and draw whole 2D fields (sagittal slices, or phantom planes),
so they share only the augmentation. Loss: cross-entropy + soft Dice over the foreground classes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..models.registry import ModelSpec
from ..models.unet import UNet2D
from .augment import random_affine, random_contrast, random_resolution_and_noise
from .export import write_model
from .weights import new_network

IGNORE = 255  # label of pixels left out of the loss (not known: e.g. around a roughly labelled sac)
# (rng, batch size) -> images (N, 1, H, W) float32 normalised, labels (N, H, W) int64
BatchSampler = Callable[[np.random.Generator, int], tuple[torch.Tensor, torch.Tensor]]


def augment_classes(images, labels, classes: int, generator, flips: bool, max_degrees: float = 15.0):
    """Geometry applied alike to image and one-hot labels (ignored pixels as one more channel), then
    contrast, resolution and noise."""
    ignored = labels == IGNORE
    one_hot = F.one_hot(torch.where(ignored, classes, labels), classes + 1).permute(0, 3, 1, 2).float()
    images, one_hot = random_affine(images, one_hot, generator, max_degrees=max_degrees, scale=(0.8, 1.25), flips=flips)
    images = random_contrast(images, generator, invert_probability=0.0)
    images = random_resolution_and_noise(images, generator, blur_probability=0.4)
    labels = one_hot.argmax(1)  # an empty one-hot pixel (edge) falls to class 0
    return images.clamp(-0.5, 2.0), torch.where(labels == classes, IGNORE, labels)


def soft_dice_loss(logits, labels, classes: int, eps: float = 1.0):
    known = (labels != IGNORE).unsqueeze(1).float()
    probabilities = torch.softmax(logits, 1)[:, 1:] * known
    targets = F.one_hot(torch.where(labels == IGNORE, 0, labels), classes).permute(0, 3, 1, 2).float()[:, 1:] * known
    intersection = (probabilities * targets).sum((0, 2, 3))
    totals = probabilities.sum((0, 2, 3)) + targets.sum((0, 2, 3))
    return 1 - ((2 * intersection + eps) / (totals + eps)).mean()


def fit_classes(
    sample: BatchSampler,
    spec: ModelSpec,
    iterations: int,
    batch_size: int = 8,
    learning_rate: float = 3e-3,
    seed: int = 0,
    flips: bool = True,
    progress=None,
    initial: UNet2D | None = None,
) -> tuple[UNet2D, dict]:
    """Fit a fresh ``UNet2D`` with ``spec.out_channels`` classes (or fine-tune ``initial``); returns
    it (eval mode) and a short history."""
    torch.manual_seed(seed)
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    classes = spec.out_channels
    model = initial or new_network(spec)
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    warm_up = min(0.5, max(0.05, 2 / iterations))  # at least two steps, so that short runs (tests) schedule too
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, learning_rate, total_steps=iterations, pct_start=warm_up)
    started, losses = time.perf_counter(), []
    for step in range(1, iterations + 1):
        model.train()
        images, labels = augment_classes(*sample(rng, batch_size), classes, generator, flips)
        logits = model(images)
        loss = F.cross_entropy(logits, labels, ignore_index=IGNORE) + soft_dice_loss(logits, labels, classes)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        losses.append(loss.item())
        if progress:
            progress(step, iterations, loss.item())
    history = {
        "iterations": iterations,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "seed": seed,
        "final_loss": round(float(np.mean(losses[-50:])), 4),
        "minutes": round((time.perf_counter() - started) / 60, 1),
    }
    return model.eval(), history


def write_class_model(model, spec: ModelSpec, out_dir: Path, metrics: dict) -> ModelSpec:
    """``<task>.safetensors`` + ``.onnx`` + ``.json`` (the model record) + ``metrics.json`` in ``out_dir``."""
    spec = write_model(model, spec, out_dir)
    (Path(out_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n", encoding="utf-8")
    return spec
