"""Segmentation metrics per case (measurements.md section 4), with SpineAI's empty-mask policy:
both masks empty -> Dice = IoU = 1; exactly one empty -> 0."""

from __future__ import annotations

import numpy as np


def confusion(prediction: np.ndarray, truth: np.ndarray) -> tuple[int, int, int]:
    """(TP, FP, FN) voxel counts of two binary masks."""
    prediction, truth = prediction.astype(bool), truth.astype(bool)
    tp = int(np.count_nonzero(prediction & truth))
    return tp, int(np.count_nonzero(prediction)) - tp, int(np.count_nonzero(truth)) - tp


def dice(prediction: np.ndarray, truth: np.ndarray) -> float:
    """Dice = 2TP / (2TP + FP + FN)."""
    tp, fp, fn = confusion(prediction, truth)
    return 1.0 if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn)


def iou(prediction: np.ndarray, truth: np.ndarray) -> float:
    """IoU (Jaccard) = TP / (TP + FP + FN)."""
    tp, fp, fn = confusion(prediction, truth)
    return 1.0 if tp + fp + fn == 0 else tp / (tp + fp + fn)


def precision(prediction: np.ndarray, truth: np.ndarray) -> float:
    """TP / (TP + FP); NaN when nothing is predicted."""
    tp, fp, _ = confusion(prediction, truth)
    return float("nan") if tp + fp == 0 else tp / (tp + fp)


def recall(prediction: np.ndarray, truth: np.ndarray) -> float:
    """TP / (TP + FN); NaN when the truth is empty."""
    tp, _, fn = confusion(prediction, truth)
    return float("nan") if tp + fn == 0 else tp / (tp + fn)


def annotated_range(truth: np.ndarray) -> slice:
    """Axial slices from the first to the last one the annotator labelled (canonical axis 0 = I->S).

    Some manual masks label only part of the scan (gm-challenge labels a slab), so voxels beyond
    the labelled slices are unknown rather than background.
    """
    labelled = np.flatnonzero(truth.any(axis=(1, 2)))
    return slice(labelled[0], labelled[-1] + 1) if labelled.size else slice(0, 0)
