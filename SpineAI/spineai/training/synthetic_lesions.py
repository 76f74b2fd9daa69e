"""Intramedullary lesions synthesised into real cord scans, for training where no real labels exist.

SpineAI's shared data hold real cord masks but no spinal cord injury lesion labels. A lesion is
painted into a real scan instead: an elongated, irregular region inside the cord that follows the
cord's course slice by slice, brighter than the cord on T2 (oedema/contusion), with a soft
partial-volume edge or an oedema that fades into the cord, sometimes a dark core (haemorrhage), and
sometimes a swollen cord that pushes into the CSF around it. Its label is the region where the
lesion weight is >= 0.5 inside the cord. Everything is in millimetres on canonical arrays
a[z, y, x] (``spineai.orientation``), so one lesion looks the same on a 0.5 mm axial stack and a
1 mm sagittal volume, and intensities are relative to the scan's own cord and CSF, so the raw
scanner scale does not matter.

Models trained this way have never seen a real contusion; the model card says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage
from scipy.special import expit


@dataclass(frozen=True)
class LesionShape:
    """Size ranges in mm and contrast ranges of the synthesised lesions."""

    length_mm: tuple[float, float] = (4.0, 45.0)  # rostro-caudal extent, drawn log-uniformly
    radius_mm: tuple[float, float] = (0.8, 5.0)  # in-plane semi-axes (a cord is about 6 x 4.5 mm)
    contrast: tuple[float, float] = (0.25, 1.0)  # lesion = cord + c * (CSF - cord)
    haemorrhage_probability: float = 0.25
    irregularity: float = 0.3  # relative amplitude of the smooth noise that roughens the outline
    softness: tuple[float, float] = (0.05, 0.25)  # edge width relative to size; 0.6: an oedema fading out
    swelling_probability: float = 0.0  # share of lesions that swell the cord
    swelling_mm: tuple[float, float] = (0.5, 2.0)  # how far the swollen cord reaches into the CSF at the epicentre
    family: str = "ellipsoid"  # or "lobulated": 2-3 overlapping ellipsoids along the cord (the test set's family)


def synthesise_lesions(
    image: np.ndarray,
    cord: np.ndarray,
    spacing: tuple[float, float, float],
    rng: np.random.Generator,
    count: int,
    shape: LesionShape = LesionShape(),
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` lesions painted into ``image`` inside ``cord``; returns (image, lesion mask uint8).

    ``image`` float (any scale), ``cord`` 0/1, both a[z, y, x] with ``spacing`` (pz, py, px) mm.
    Lesions may touch or merge, as real ones do. The input arrays are not modified.
    """
    image = image.astype(np.float32, copy=True)
    lesion = np.zeros(cord.shape, np.uint8)
    cord = cord > 0
    slices = np.flatnonzero(cord.any(axis=(1, 2)))
    if count <= 0 or slices.size == 0:
        return image, lesion
    cord_level, csf_level = _reference_intensities(image, cord)
    for _ in range(count):
        blob = _lesion_blob(cord, spacing, slices, rng, shape)
        box = blob.box
        host = cord[box]
        if shape.swelling_probability and rng.random() < shape.swelling_probability:
            host = _swell(image, cord, box, blob, spacing, rng.uniform(*shape.swelling_mm), cord_level)
        weight = blob.inside() * host
        contrast = rng.uniform(*shape.contrast)
        shift = weight * contrast * (csf_level - cord_level)
        if rng.random() < shape.haemorrhage_probability:
            core = blob.inside(rng.uniform(0.3, 0.6)) * host  # the inner part: a dark haemorrhage
            shift -= core * (contrast * (csf_level - cord_level) + rng.uniform(0.3, 0.6) * cord_level)
        image[box] += shift
        lesion[box] |= (weight >= 0.5).astype(np.uint8)
    return image, lesion


def _reference_intensities(image: np.ndarray, cord: np.ndarray) -> tuple[float, float]:
    """Median cord intensity and the CSF-like bright level of the ring just around the cord."""
    cord_level = float(np.median(image[cord]))
    ring = ndimage.binary_dilation(cord, iterations=3) & ~cord
    csf_level = float(np.percentile(image[ring], 90)) if ring.any() else cord_level
    # On T2 the CSF is brighter than the cord; if the ring is not (T1, partial FOV) use a fixed step.
    return cord_level, max(csf_level, 1.6 * cord_level)


def _swell(image, cord, box, blob: Blob, spacing, reach_mm: float, cord_level: float) -> np.ndarray:
    """Swell the cord on the lesion's slices: the CSF within ``reach_mm`` of the cord (most at the
    epicentre, tapering with the lesion) becomes cord-like tissue. Returns the swollen cord on ``box``."""
    _, py, px = spacing
    region = cord[box]
    profile = blob.inside().max(axis=(1, 2))  # 0..1 along the cord: the lesion's extent
    outside = np.full(region.shape, np.inf)  # a slice without cord does not swell
    for i in np.flatnonzero(region.any(axis=(1, 2))):
        outside[i] = ndimage.distance_transform_edt(~region[i], sampling=(py, px))
    ring = ~region & (outside <= reach_mm * profile[:, None, None])
    image[box][ring] = cord_level
    return region | ring


def _lesion_blob(cord, spacing, slices, rng, shape: LesionShape) -> Blob:
    """A lesion-sized ellipsoid (or a lobulated cluster of them) around a random cord position,
    off-centre within the cord."""
    length = float(np.exp(rng.uniform(*np.log(shape.length_mm))))
    radii = rng.uniform(*shape.radius_mm, size=2)  # (ry, rx) mm
    z0 = int(rng.choice(slices))
    if shape.family == "lobulated":
        return _lobulated(cord, spacing, z0, length, radii, rng, shape)
    offset = rng.normal(0, 0.25, size=2) * radii  # off-centre within the cord (e.g. dorsal horns)
    return ellipsoid_along_cord(cord, spacing, z0, length, radii, offset, rng, shape.irregularity, shape.softness)


def _lobulated(cord, spacing, z0: int, length: float, radii, rng, shape: LesionShape) -> Blob:
    """2-3 overlapping ellipsoids of different sizes and offsets spread along ``length``: one outline
    (their union), one softness."""
    softness = rng.uniform(*shape.softness)
    parts = []
    for _ in range(int(rng.integers(2, 4))):
        centre = z0 + int(round(rng.uniform(-0.3, 0.3) * length / spacing[0]))
        centre = int(np.clip(centre, 0, cord.shape[0] - 1))
        size = radii * rng.uniform(0.6, 1.0, size=2)
        offset = rng.normal(0, 0.3, size=2) * size
        extent, edge = length * rng.uniform(0.4, 0.7), (softness, softness)
        parts.append(ellipsoid_along_cord(cord, spacing, centre, extent, size, offset, rng, shape.irregularity, edge))
    return union(parts, softness)


def union(parts: list[Blob], softness: float) -> Blob:
    """One blob whose outline is the union of ``parts``' (each on whole slices)."""
    first, last = min(p.box[0].start for p in parts), max(p.box[0].stop for p in parts)
    distance = np.full((last - first, *parts[0].distance.shape[1:]), np.inf, np.float32)
    for part in parts:
        rows = slice(part.box[0].start - first, part.box[0].stop - first)
        distance[rows] = np.minimum(distance[rows], part.distance)
    return Blob(distance, softness, (slice(first, last), slice(None), slice(None)))


@dataclass(frozen=True)
class Blob:
    """A roughened ellipsoid on ``box`` (whole slices): ``distance`` 1 on its outline, 0 at its centre."""

    distance: np.ndarray
    softness: float
    box: tuple

    def inside(self, radius: float = 1.0) -> np.ndarray:
        """Soft (0..1) membership of the blob shrunk to ``radius`` (e.g. 0.5: its inner half)."""
        return expit((radius - self.distance) / self.softness).astype(np.float32)


def ellipsoid_along_cord(cord, spacing, z0, length, radii, offset, rng, irregularity, softness_range) -> Blob:
    """A roughened ellipsoid whose axial centre follows the cord's centre slice by slice.

    ``length`` (mm) along the cord around slice ``z0``, in-plane semi-axes ``radii`` = (ry, rx) mm,
    its centre ``offset`` (mm) from the cord's; slices without cord use the centre at ``z0``.
    """
    pz, py, px = spacing
    half = int(np.ceil(length / 2 / pz)) + 1
    zs = np.arange(max(z0 - half, 0), min(z0 + half + 1, cord.shape[0]))
    ys, xs = np.arange(cord.shape[1]), np.arange(cord.shape[2])
    distance = np.zeros((len(zs), cord.shape[1], cord.shape[2]), np.float32)
    roughness = _smooth_noise(distance.shape, spacing, rng) * irregularity
    softness = rng.uniform(*softness_range)
    for i, z in enumerate(zs):
        centre = _cord_centre(cord, z) or _cord_centre(cord, z0)
        dz = (z - z0) * pz / (length / 2)
        dy = ((ys - centre[0]) * py - offset[0]) / radii[0]
        dx = ((xs - centre[1]) * px - offset[1]) / radii[1]
        distance[i] = np.sqrt(dz**2 + dy[:, None] ** 2 + dx[None, :] ** 2) * (1 + roughness[i])
    return Blob(distance, softness, (slice(zs[0], zs[-1] + 1), slice(None), slice(None)))


def _cord_centre(cord: np.ndarray, z: int):
    ys, xs = np.nonzero(cord[z])
    return (ys.mean(), xs.mean()) if ys.size else None


def _smooth_noise(shape, spacing, rng, scale_mm: float = 3.0) -> np.ndarray:
    """Zero-mean, unit-range noise smoothed over ``scale_mm``: an irregular, not jagged, outline."""
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), [scale_mm / s for s in spacing])
    peak = np.abs(noise).max()
    return (noise / peak if peak > 0 else noise).astype(np.float32)
