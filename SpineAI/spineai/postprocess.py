"""Clean-up of a thresholded network output, on canonical arrays a[z, y, x]."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage


def largest_component(mask: np.ndarray) -> np.ndarray:
    """Keep the largest 3D connected component (26-connectivity): the cord is one continuous structure."""
    if not mask.any():
        return mask
    labels = sitk.ConnectedComponent(sitk.GetImageFromArray(mask.astype(np.uint8)), True)
    # The biggest label, ties to the lowest as RelabelComponent orders them, without a relabelled copy
    # of the (uint32) label image.
    sizes = sitk.LabelShapeStatisticsImageFilter()
    sizes.ComputePerimeterOff()
    sizes.Execute(labels)
    largest = max(sizes.GetLabels(), key=lambda label: (sizes.GetNumberOfPixels(label), -label))
    return sitk.GetArrayFromImage(labels == largest).astype(mask.dtype)


def fill_holes_axial(mask: np.ndarray) -> np.ndarray:
    """Fill holes inside each axial slice (a cord cross-section has none)."""
    filled = mask.copy()
    for z in np.flatnonzero(mask.any(axis=(1, 2))):
        filled[z] = ndimage.binary_fill_holes(mask[z])
    return filled


def clean_cord_mask(probability: np.ndarray, threshold: float = 0.5) -> np.ndarray:
    """Threshold, keep the largest component, fill axial holes; returns uint8 0/1."""
    mask = (probability >= threshold).astype(np.uint8)
    return fill_holes_axial(largest_component(mask)).astype(np.uint8)


LESION_MIN_INSIDE = 0.5  # share of a lesion component's voxels that must lie in the cord


def lesion_label_map(
    cord: np.ndarray, lesion_probability: np.ndarray, threshold: float = 0.5
) -> tuple[np.ndarray, int]:
    """Label map 0 background / 1 cord / 2 lesion, and the number of lesion voxels dropped outside the cord.

    A lesion is intramedullary by definition, so a lesion component is kept only when most of it
    (``LESION_MIN_INSIDE``) lies in the cord; the rest are dropped and counted (bright CSF beside
    the cord, partial volume at the cord's edge). A kept component is kept whole and the cord grows
    to contain it: a contused cord is swollen and bright, exactly where a cord network trained on
    healthy cords is likeliest to fall short, and clipping the lesion to that cord would understate it.
    """
    candidates = (lesion_probability >= threshold) & np.isfinite(lesion_probability)
    components, count = ndimage.label(candidates, structure=ndimage.generate_binary_structure(3, 2))
    sizes = np.bincount(components.ravel(), minlength=count + 1)
    inside = np.bincount(components[cord > 0].ravel(), minlength=count + 1)
    kept = np.flatnonzero(inside >= LESION_MIN_INSIDE * np.maximum(sizes, 1))
    lesion = np.isin(components, kept[kept > 0])
    labels = np.where(cord > 0, 1, 0).astype(np.uint8)
    labels[lesion] = 2
    return labels, int(np.count_nonzero(candidates & ~lesion))


TUMOR_REACH_MM = 10.0  # how far from the cord a spinal (intradural) tumour may lie


def clean_tumor_mask(
    probability: np.ndarray,
    cord: np.ndarray | None = None,
    spacing=(1.0, 1.0, 1.0),
    threshold: float = 0.5,
    min_voxels: int = 10,
) -> tuple[np.ndarray, int]:
    """Threshold, fill axial holes, keep components of at least ``min_voxels`` within reach of the cord.

    Returns (uint8 0/1 mask, voxels dropped as too far from the cord). Unlike the cord there may be
    several tumours (metastases, drop lesions), so every plausible component is kept; but bright
    fat or vessels far from the canal are not spinal tumours. Without a cord nothing is dropped
    for distance (the cord network fails on some contrasts, e.g. axial T1).
    """
    mask = fill_holes_axial((probability >= threshold).astype(np.uint8))
    components, _ = ndimage.label(mask, structure=ndimage.generate_binary_structure(3, 2))
    sizes = np.bincount(components.ravel())
    keep = set(np.flatnonzero(sizes >= min_voxels).tolist()) - {0}
    dropped = 0
    if cord is not None and cord.any():
        near = ndimage.distance_transform_edt(cord == 0, sampling=spacing) <= TUMOR_REACH_MM
        reachable = set(np.unique(components[near & (components > 0)]).tolist())
        dropped = int(np.isin(components, sorted(keep - reachable)).sum())
        keep &= reachable
    return np.isin(components, sorted(keep)).astype(np.uint8), dropped
