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
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

from ..errors import SpineAIError
from ..inference import SlicePredictor
from ..io import read_image
from ..metrics import annotated_range, dice, lesion_detection
from ..models.registry import ModelSpec, model_for_task
from ..models.unet import UNet2D
from ..orientation import canonical_array, spacing_zyx, to_canonical
from ..postprocess import clean_cord_mask, clean_tumor_mask, lesion_label_map
from .augment import CORD_CONTRAST, augment
from .cases import Case
from .data import PatchSampler, prepare_volume
from .export import write_model
from .synthetic_data import SYNTHETIC_TASKS, SyntheticTrainingSet, synthetic_test_scans
from .weights import TorchRunner, inference_copy, load_model, new_network

log = logging.getLogger(__name__)

# A training run's settings are the shipped model's record (architecture, preprocessing, labels,
# inference): one source, ``models/<task>.json``. The lesion and tumour records see every scan at
# 0.5 mm in plane (a lesion or small mass is a few pixels at 1 mm), the tumour record tiles.
CORD_SPEC, LESION_SPEC, TUMOR_SPEC = (model_for_task(task).untrained() for task in ("cord", "lesion", "tumor"))
SPECS = {"cord": CORD_SPEC, "lesion": LESION_SPEC, "tumor": TUMOR_SPEC}
REFRESH_STEPS = 200  # synthetic targets are re-drawn this often


def soft_dice_loss(logits, targets, eps=1.0):
    probabilities = torch.sigmoid(logits)
    intersection = (probabilities * targets).sum()
    return 1 - (2 * intersection + eps) / (probabilities.sum() + targets.sum() + eps)


def validate(model: UNet2D, spec: ModelSpec, cases: list[Case], synthetic_scans=None) -> list[dict]:
    """Per-scan scores on whole held-out scans, segmented through the inference path.

    Cord: Dice against the manual mask. Lesion, tumour: Dice and component-wise detection on
    ``synthetic_scans`` (``synthetic_data.synthetic_test_scans``); lesions are kept where they
    touch the true cord, so the score is the lesion network's alone.
    """
    predictor = SlicePredictor(spec, TorchRunner(inference_copy(model, spec)))
    if synthetic_scans is not None:
        return [_score_synthetic(predictor, scan) for scan in synthetic_scans]
    return [_score_cord(predictor, case) for case in cases]


def _case_record(case: Case) -> dict:
    return {"image": case.image.name, "subject": case.subject, "group": case.group, "plane": case.plane}


def _score_cord(predictor: SlicePredictor, case: Case) -> dict:
    canonical = to_canonical(read_image(case.image))
    prediction = clean_cord_mask(canonical_array(predictor.probability(canonical)), predictor.spec.threshold)
    truth = canonical_array(to_canonical(read_image(case.mask))) > 0.5
    labelled = annotated_range(truth)
    return _case_record(case) | {
        "dice": round(dice(prediction, truth), 4),
        "dice_annotated_slices": round(dice(prediction[labelled], truth[labelled]), 4),
    }


def _score_synthetic(predictor: SlicePredictor, scan) -> dict:
    probability = canonical_array(predictor.probability(scan.image))
    if predictor.spec.task == "lesion":
        prediction = lesion_label_map(scan.cord, probability, predictor.spec.threshold)[0] == 2
    else:
        spacing = spacing_zyx(scan.image)
        prediction = clean_tumor_mask(probability, scan.cord, spacing, predictor.spec.threshold)[0] > 0
    detection = lesion_detection(prediction, scan.target)
    # Target-free copies are reported apart: there only false positives can happen.
    group = scan.case.group + ("" if scan.target.any() else " (target-free)")
    return _case_record(scan.case) | {
        "group": group,
        "dice": round(dice(prediction, scan.target), 4),
        "target_voxels": int(scan.target.sum()),
        **{key: round(value, 4) for key, value in detection.items()},
    }


def summarise(results: list[dict]) -> dict:
    """Per dataset/contrast group: the number of scans and the median of every score."""
    groups: dict[str, list[dict]] = {}
    for result in results:
        groups.setdefault(result["group"], []).append(result)
    scores = [key for key, value in results[0].items() if isinstance(value, float)] if results else []
    return {
        group: {"n": len(rows)} | {f"median_{key}": round(statistics.median(r[key] for r in rows), 4) for key in scores}
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
    spec: ModelSpec = CORD_SPEC,
    progress=None,
    initial_model: Path | None = None,
    contrast: dict | None = None,
) -> dict:
    """Train, validate, and write ``<task>.safetensors`` + ``<task>.json`` + ``metrics.json`` to ``out_dir``.

    ``spec`` says the task (``SPECS``); ``contrast``: ``augment.random_contrast`` settings (None:
    the task's default, ``CORD_CONTRAST`` for the cord). The lesion and tumour tasks train on painted targets
    where the cases have none (``synthetic_data``), never inverting contrast: a T2 lesion and an
    enhancing tumour are bright, and that is the signal.
    """
    synthetic = SYNTHETIC_TASKS.get(spec.task)
    invert_probability = 0.0 if synthetic else 0.2
    if contrast is None:  # the task's default; {} = the plain contrast augmentation
        contrast = CORD_CONTRAST if spec.task == "cord" else {}
    torch.manual_seed(seed)
    rng, generator = np.random.default_rng(seed), torch.Generator().manual_seed(seed)
    train_cases = [case for case in cases if case.split == "train"]
    val_cases = [case for case in cases if case.split == "val"]
    volumes = [prepare_volume(case, spec) for case in train_cases]
    painted = SyntheticTrainingSet(volumes, synthetic, rng) if synthetic else None
    test_scans = synthetic_test_scans(val_cases, synthetic) if synthetic else None
    sampler = (
        painted.sampler(patch_size, spec.context_slices)
        if painted
        else PatchSampler.of_volumes(volumes, patch_size, spec)
    )
    model = _initial_network(spec, initial_model)
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, learning_rate, total_steps=iterations, pct_start=0.05)
    history, started = [], time.perf_counter()
    for step in range(1, iterations + 1):
        model.train()
        if painted and step % REFRESH_STEPS == 0:
            sampler = painted.sampler(patch_size, spec.context_slices)
        images, masks = augment(*sampler.sample(batch_size, rng), generator, invert_probability, contrast)
        logits = model(images)
        loss = F.binary_cross_entropy_with_logits(logits, masks) + soft_dice_loss(logits, masks)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        schedule.step()
        if progress:
            progress(step, iterations, loss.item())
        if step % validate_every == 0 or step == iterations:
            results = validate(model, spec, val_cases, test_scans) if val_cases else []
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
                contrast_augmentation=contrast or "plain",
                seed=seed,
                minutes=history[-1]["minutes"],
            )
            metrics = _write_model(model, spec, out_dir, cases, results, history, settings)
    return metrics


def _initial_network(spec: ModelSpec, folder: Path | None) -> UNet2D:
    """A fresh network, or the task's model in ``folder`` (checksum verified) to fine-tune, e.g. on a site's labels."""
    if folder is None:
        return new_network(spec)
    start = model_for_task(spec.task, folder)
    if (start.in_channels, start.channels) != (spec.in_channels, spec.channels):
        raise SpineAIError(f"{folder}: the {spec.task} model there has another architecture than this training")
    return load_model(start)


def _write_model(model, spec, out_dir, cases, results, history, settings) -> dict:
    spec = write_model(model, spec, out_dir)
    metrics = {
        "training": settings,
        "train_cases": [
            {"image": str(c.image.name), "subject": c.subject, "group": c.group} for c in cases if c.split == "train"
        ],
        "validation_cases": results,
        "validation_summary": summarise(results) if results else {},
        "history": history,
        "model": spec.to_record(),
    }
    (Path(out_dir) / "metrics.json").write_text(json.dumps(metrics, indent=2, default=str) + "\n", encoding="utf-8")
    return metrics
