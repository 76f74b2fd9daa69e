"""Enhancing spinal tumours synthesised into real scans, for training where no real labels exist.

SpineAI's shared data hold no tumour images. A tumour is painted into a real scan with a cord
mask instead: a rounded, lobulated mass 5-60 mm long that enhances (is brighter than the cord,
as after gadolinium on T1), either inside the cord (intramedullary: ependymoma, astrocytoma) or
beside it in the canal pushing on it (intradural extramedullary: meningioma, schwannoma), some
with a dark non-enhancing core (cyst, necrosis) that belongs to the tumour. Intensities are
relative to the scan's own cord, so any contrast and scanner scale can host one: the network is
trained contrast-agnostic and told nothing about the contrast.

Arrays are canonical a[z, y, x] (``spineai.orientation``) with spacing (pz, py, px) in mm.
Models trained this way have never seen a real tumour; the model card says so.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .synthetic_lesions import Blob, ellipsoid_along_cord, union


@dataclass(frozen=True)
class TumorShape:
    length_mm: tuple[float, float] = (5.0, 60.0)  # rostro-caudal extent, log-uniform
    radius_mm: tuple[float, float] = (2.0, 8.0)  # in-plane semi-axes
    enhancement: tuple[float, float] = (0.5, 1.5)  # tumour = cord x (1 + e)
    intramedullary_probability: float = 0.5
    core_probability: float = 0.3  # a dark, non-enhancing centre
    irregularity: float = 0.35
    family: str = "ellipsoid"  # or "lobulated": 2-3 overlapping ellipsoids (the test set's family)


TEST_TUMORS = TumorShape(family="lobulated")


def synthesise_tumors(
    image: np.ndarray,
    cord: np.ndarray,
    spacing: tuple[float, float, float],
    rng: np.random.Generator,
    count: int,
    shape: TumorShape = TumorShape(),
) -> tuple[np.ndarray, np.ndarray]:
    """``count`` tumours painted into ``image`` at or beside ``cord``; returns (image, tumour mask uint8)."""
    image = image.astype(np.float32, copy=True)
    tumor = np.zeros(cord.shape, np.uint8)
    cord = cord > 0
    slices = np.flatnonzero(cord.any(axis=(1, 2)))
    if count <= 0 or slices.size == 0:
        return image, tumor
    cord_level = float(np.median(image[cord]))
    for _ in range(count):
        inside = rng.random() < shape.intramedullary_probability
        blob = _tumor_blob(cord, spacing, slices, rng, shape, inside)
        box = blob.box
        # Inside: clipped to the cord. Outside: the mass stops at the cord, which stays visible beside it.
        allowed = cord[box] if inside else ~cord[box]
        weight = blob.inside() * allowed
        level = cord_level * (1 + rng.uniform(*shape.enhancement))
        target = np.full(weight.shape, level, np.float32)
        if rng.random() < shape.core_probability:
            core = blob.inside(rng.uniform(0.3, 0.6)) * allowed  # the centre: cyst or necrosis, darker than cord
            target = target * (1 - core) + core * cord_level * rng.uniform(0.3, 0.8)
        # Replace rather than add: an extramedullary mass displaces CSF or fat, it does not sit on top.
        image[box] = image[box] * (1 - weight) + weight * (target + _texture(image[box], rng))
        tumor[box] |= (weight >= 0.5).astype(np.uint8)
    return image, tumor


def _tumor_blob(cord, spacing, slices, rng, shape: TumorShape, inside: bool) -> Blob:
    """A tumour-sized ellipsoid at a random cord level, in the cord or abutting it."""
    _, py, px = spacing
    length = float(np.exp(rng.uniform(*np.log(shape.length_mm))))
    radii = rng.uniform(*shape.radius_mm, size=2)
    z0 = int(rng.choice(slices))
    if inside:
        offset = rng.normal(0, 0.2, size=2) * radii
    else:  # beside the cord, abutting it: centred about one cord radius plus one own radius away
        angle = rng.uniform(0, 2 * np.pi)
        cord_radius = np.sqrt(cord[z0].sum() * py * px / np.pi)
        distance = cord_radius + radii.mean() * rng.uniform(0.8, 1.2)
        offset = distance * np.array([np.sin(angle), np.cos(angle)])
    if shape.family == "lobulated":
        return _lobulated(cord, spacing, z0, length, radii, offset, rng, shape)
    return ellipsoid_along_cord(cord, spacing, z0, length, radii, offset, rng, shape.irregularity, (0.05, 0.2))


def _lobulated(cord, spacing, z0: int, length: float, radii, offset, rng, shape: TumorShape) -> Blob:
    """2-3 overlapping lobes of different sizes around the tumour's place, spread along ``length``."""
    softness = rng.uniform(0.05, 0.2)
    lobes = []
    for _ in range(int(rng.integers(2, 4))):
        centre = int(np.clip(z0 + round(rng.uniform(-0.3, 0.3) * length / spacing[0]), 0, cord.shape[0] - 1))
        size = radii * rng.uniform(0.6, 1.0, size=2)
        shift = offset + rng.normal(0, 0.3, size=2) * size
        extent, edge = length * rng.uniform(0.4, 0.7), (softness, softness)
        lobes.append(ellipsoid_along_cord(cord, spacing, centre, extent, size, shift, rng, shape.irregularity, edge))
    return union(lobes, softness)


def _texture(region: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Noise like the scan's own, so the painted mass is not conspicuously smooth."""
    sigma = 0.05 * float(np.percentile(region, 99) - np.percentile(region, 1))
    return rng.normal(0, sigma, region.shape).astype(np.float32)
