"""Analytic cord phantoms: binary elliptic cylinders voxelised on any image grid.

The cylinder is defined in physical (LPS, mm) space, so the same object can be written on grids
of any orientation, spacing or obliquity. A voxel is 1 when at least half of its volume (estimated
with ``supersample``^3 sub-voxel points) lies inside the cylinder: an unbiased binary rendering
whose area error per slice is only the random rounding of the boundary voxels.
"""

from __future__ import annotations

import math

import numpy as np
import SimpleITK as sitk

LAS = (1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # SimpleITK direction of a canonical (LAS) image


def grid(size_xyz, spacing_xyz, direction=LAS, centre_lps=(0.0, 0.0, 0.0)) -> sitk.Image:
    """Empty uint8 image of the given size/spacing/direction whose centre lies at ``centre_lps``."""
    image = sitk.Image([int(n) for n in size_xyz], sitk.sitkUInt8)
    image.SetSpacing([float(s) for s in spacing_xyz])
    image.SetDirection(direction)
    half = (np.asarray(size_xyz) - 1) / 2 * np.asarray(spacing_xyz)
    image.SetOrigin(tuple(np.asarray(centre_lps) - np.asarray(direction).reshape(3, 3) @ half))
    return image


def axis_from_tilts(tilt_ap_deg: float = 0.0, tilt_rl_deg: float = 0.0) -> np.ndarray:
    """Unit cord axis (LPS) whose tangent has dx/dz = tan(tilt_ap) towards L and dy/dz = tan(tilt_rl) towards A.

    These are exactly SCT's angle_AP and angle_RL of the straight cylinder.
    """
    tangent = np.array([math.tan(math.radians(tilt_ap_deg)), -math.tan(math.radians(tilt_rl_deg)), 1.0])
    return tangent / np.linalg.norm(tangent)


def cross_section_frame(axis: np.ndarray, rotation_deg: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """(e_rl, e_ap): unit vectors perpendicular to ``axis``; e_ap points anteriorly.

    With ``rotation_deg`` = 0, e_rl is the direction closest to L; a positive rotation turns e_rl
    towards anterior (the left end of the long axis moves forward).
    """
    left = np.array([1.0, 0.0, 0.0]) - axis[0] * axis
    left /= np.linalg.norm(left)
    anterior = -np.cross(axis, left)  # LPS: +y is posterior
    phi = math.radians(rotation_deg)
    return math.cos(phi) * left + math.sin(phi) * anterior, -math.sin(phi) * left + math.cos(phi) * anterior


def elliptic_cylinder(
    reference: sitk.Image,
    a_rl: float,
    b_ap: float,
    axis=(0.0, 0.0, 1.0),
    centre_lps=(0.0, 0.0, 0.0),
    rotation_deg: float = 0.0,
    supersample: int = 3,
) -> sitk.Image:
    """Binary infinite elliptic cylinder on ``reference``'s grid.

    Semi-axes ``a_rl`` (R-L) and ``b_ap`` (A-P) in mm, perpendicular to ``axis`` (LPS), through
    ``centre_lps``; the cross-section turned by ``rotation_deg`` (see ``cross_section_frame``).
    """
    axis = np.asarray(axis, dtype=float) / np.linalg.norm(axis)
    e_rl, e_ap = cross_section_frame(axis, rotation_deg)
    size = np.array(reference.GetSize())
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    sub = np.stack(np.meshgrid(offsets, offsets, offsets, indexing="ij"), axis=-1).reshape(1, -1, 3)
    matrix = np.asarray(reference.GetDirection()).reshape(3, 3) * np.asarray(reference.GetSpacing())
    shift = np.asarray(reference.GetOrigin()) - np.asarray(centre_lps)
    voxels = np.zeros(tuple(size[::-1]), dtype=np.uint8)
    for k in range(size[2]):  # one index-slice at a time keeps memory small
        i, j = np.meshgrid(np.arange(size[0]), np.arange(size[1]), indexing="xy")
        index = np.stack([i, j, np.full_like(i, k)], axis=-1).reshape(-1, 1, 3).astype(float)
        points = (index + sub) @ matrix.T + shift
        inside = (points @ e_rl / a_rl) ** 2 + (points @ e_ap / b_ap) ** 2 <= 1.0
        voxels[k] = (inside.mean(axis=1) >= 0.5).reshape(size[1], size[0])
    image = sitk.GetImageFromArray(voxels)
    image.CopyInformation(reference)
    return image


def render(inside, shape, spacing, supersample=3):
    """Binary a[z, y, x]: 1 where >= half of the voxel's sub-points (mm, voxel k centred at k * spacing) are inside."""
    offsets = (np.arange(supersample) + 0.5) / supersample - 0.5
    index = np.ogrid[0 : shape[0], 0 : shape[1], 0 : shape[2]]  # open grids: the shape functions broadcast
    count = np.zeros(shape)
    for oz in offsets:
        for oy in offsets:
            for ox in offsets:
                count += inside(*((i + o) * s for i, o, s in zip(index, (oz, oy, ox), spacing, strict=True)))
    return count >= supersample**3 / 2
