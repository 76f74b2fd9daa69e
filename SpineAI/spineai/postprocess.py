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
    largest = sitk.RelabelComponent(labels, sortByObjectSize=True) == 1
    return sitk.GetArrayFromImage(largest).astype(mask.dtype)


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
