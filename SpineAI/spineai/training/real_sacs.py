"""Real dural sacs for the sac network: planes of the healthy ``lumbar-ivd`` scans with rough labels.

No dural-sac masks exist in SpineAI's data, and phantoms alone do not look like a real resliced
sagittal scan. In these healthy adults the sac is the bright CSF column right behind the disc, so
a plane cut across the canal (at the disc levels and between them) gets a rough label by a fixed
rule: the bright component met first when walking back from the disc centre along the midline,
grown within an intensity threshold. Planes where the rule finds nothing sac-sized are skipped.
Only the sac is labelled: the pixels around it that could be epidural fat are ignored in the
loss (``IGNORE``), so the fat class is learned from phantoms alone. These rough labels are
training material, never a measure of accuracy.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from ..stenosis.levels import LevelPoint
from ..stenosis.planes import PLANE_PIXELS, PLANE_SPACING_MM, POSTERIOR_SHIFT_MM, plane_frame, plane_image, reslice
from .multiclass import IGNORE

SAC_AREA_MM2 = (60.0, 400.0)
FAT_MARGIN_MM = 8.0  # around the sac: maybe epidural fat, not labelled


def rough_sac(plane: np.ndarray) -> np.ndarray | None:
    """Boolean sac of a normalised plane whose level point (the disc centre) is at the plane's
    anterior-centre (``POSTERIOR_SHIFT_MM`` in front of the middle), or None."""
    smooth = ndimage.gaussian_filter(plane, 1.0)
    row0 = int((PLANE_PIXELS * PLANE_SPACING_MM / 2 - POSTERIOR_SHIFT_MM) / PLANE_SPACING_MM)
    col = PLANE_PIXELS // 2
    window = smooth[
        row0 : row0 + int(45 / PLANE_SPACING_MM), col - int(12 / PLANE_SPACING_MM) : col + int(12 / PLANE_SPACING_MM)
    ]
    threshold = np.percentile(window, 82)
    profile = smooth[row0 : row0 + int(40 / PLANE_SPACING_MM), col - 2 : col + 3].mean(1)
    bright = np.flatnonzero(profile > threshold)
    if not bright.size:
        return None
    seed = (row0 + int(bright[0]) + 2, col)
    components, _ = ndimage.label(smooth > threshold)
    label = components[seed]
    if not label:
        return None
    # A healthy sac is at most about 12 x 22 mm: cut off leaks into the foramina and the fat behind it.
    rows, cols = np.ogrid[: plane.shape[0], : plane.shape[1]]
    box = ((rows - seed[0] - 5 / PLANE_SPACING_MM) / (8 / PLANE_SPACING_MM)) ** 2 + (
        (cols - col) / (11 / PLANE_SPACING_MM)
    ) ** 2 <= 1
    sac = ndimage.binary_opening((components == label) & box, iterations=2)
    sac = ndimage.binary_fill_holes(sac if not sac.any() else components_at(sac, seed))
    area = sac.sum() * PLANE_SPACING_MM**2
    if not SAC_AREA_MM2[0] <= area <= SAC_AREA_MM2[1] or not sac[seed]:
        return None
    return sac


def components_at(mask: np.ndarray, seed) -> np.ndarray:
    """The component of ``mask`` holding ``seed``, or its largest when the seed fell out."""
    components, count = ndimage.label(mask)
    label = components[seed] or 1 + int(np.argmax(np.bincount(components.ravel())[1:]))
    return components == label


def real_sac_planes(image: sitk.Image, levels: list[LevelPoint], percentiles, steps=(-0.3, 0.0, 0.3)):
    """(normalised plane, classes with IGNORE) at each level and between levels (``steps`` of the
    way to the next level), where the rough rule finds a sac."""
    from ..inference import normalise_intensity

    ordered = sorted(levels, key=lambda level: level.code)
    samples = []
    for i, level in enumerate(ordered):
        neighbour = ordered[i + 1] if i + 1 < len(ordered) else ordered[i - 1]
        for step in steps:
            point = np.add(level.point, step * np.subtract(neighbour.point, level.point))
            centre, frame, _ = plane_frame(image, point, level.normal)
            plane = normalise_intensity(reslice(image, plane_image(centre, frame)), percentiles)
            sac = rough_sac(plane)
            if sac is None:
                continue
            classes = np.zeros(plane.shape, np.int64)
            near = ndimage.distance_transform_edt(~sac, sampling=PLANE_SPACING_MM) <= FAT_MARGIN_MM
            classes[near & ~sac] = IGNORE
            classes[sac] = 2  # CSF: at 1 mm the roots of a healthy sac are not resolved
            samples.append((plane.astype(np.float32), classes))
    return samples
