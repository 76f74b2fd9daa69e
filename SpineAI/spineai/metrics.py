"""Segmentation metrics per case (``docs/measurements.md`` section 4), with SpineAI's empty-mask policy:
both masks empty -> Dice = IoU = 1; exactly one empty -> 0."""

from __future__ import annotations

import numpy as np
from scipy import ndimage


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


def lesion_detection(prediction: np.ndarray, truth: np.ndarray) -> dict:
    """Lesion-wise detection: a true lesion is found when a predicted one overlaps it, and vice versa.

    Lesions are 3D components (18-connectivity, as the lesion metrics count them). precision =
    predicted lesions touching a true one / predicted lesions; recall = true lesions touched /
    true lesions; F1 their harmonic mean (1 when both are empty, 0 when exactly one is).
    """
    structure = ndimage.generate_binary_structure(3, 2)
    predicted, n_predicted = ndimage.label(prediction > 0, structure)
    true, n_true = ndimage.label(truth > 0, structure)
    found = len(np.unique(true[(predicted > 0) & (true > 0)]))
    correct = len(np.unique(predicted[(predicted > 0) & (true > 0)]))
    precision_ = correct / n_predicted if n_predicted else float(n_true == 0)
    recall_ = found / n_true if n_true else float(n_predicted == 0)
    f1 = 2 * precision_ * recall_ / (precision_ + recall_) if precision_ + recall_ else 0.0
    return {
        "true_lesions": n_true,
        "predicted_lesions": n_predicted,
        "lesion_precision": precision_,
        "lesion_recall": recall_,
        "lesion_f1": f1,
    }
