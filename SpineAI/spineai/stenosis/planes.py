"""Planes across the canal at each disc level: where the sac is segmented and measured.

A level plane is a one-slice SimpleITK image whose third axis is the plane normal: columns run
right -> left, rows anterior -> posterior (``u = v x n``, ``v`` = posterior projected on the plane,
``n`` = the disc normal pointing superior), ``PLANE_PIXELS`` square at ``PLANE_SPACING_MM``, centred
``POSTERIOR_SHIFT_MM`` behind the level point so that a point on the disc centre or in the canal
both keep the whole canal in view. On an axial stack of thick slices the plane is the slice
nearest the level: radiographers angle those slices along the disc, and a cut across thick slices
would only show their staircase.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

PLANE_SPACING_MM = 0.5
PLANE_PIXELS = 192  # 96 mm: disc, canal, posterior arch
POSTERIOR_SHIFT_MM = 15.0
MEASURE_SPACING_MM = 0.25  # label maps are measured on a finer copy of the plane
THICK_SLICE_RATIO = 2.0  # slice spacing over in-plane spacing from which a scan is an axial stack


def slice_axis_of_stack(image: sitk.Image) -> int | None:
    """Index axis of the thick slices of an axial stack (its normal mostly S-I), or None."""
    spacing = np.array(image.GetSpacing())
    axis = int(np.argmax(spacing))
    direction = np.array(image.GetDirection()).reshape(3, 3)
    is_thick = spacing[axis] >= THICK_SLICE_RATIO * np.delete(spacing, axis).max()
    return axis if is_thick and abs(direction[2, axis]) > 0.7 else None


def plane_frame(image: sitk.Image, point, normal) -> tuple[np.ndarray, np.ndarray, float]:
    """(centre point, 3x3 direction with columns u, v, n, distance from ``point`` to the plane used)."""
    point = np.asarray(point, float)
    axis = slice_axis_of_stack(image)
    if axis is not None:
        direction = np.array(image.GetDirection()).reshape(3, 3)
        n = direction[:, axis] * np.sign(direction[2, axis])
        index = list(image.TransformPhysicalPointToContinuousIndex(point.tolist()))
        index[axis] = float(np.clip(round(index[axis]), 0, image.GetSize()[axis] - 1))
        snapped = np.array(image.TransformContinuousIndexToPhysicalPoint(index))
        return snapped, _frame(n), float(np.linalg.norm(snapped - point))
    n = np.array([0.0, 0.0, 1.0]) if normal is None else np.asarray(normal, float)
    return point, _frame(n / np.linalg.norm(n)), 0.0


def _frame(n: np.ndarray) -> np.ndarray:
    v = np.array([0.0, 1.0, 0.0]) - n[1] * n  # LPS posterior, made perpendicular to n
    v /= np.linalg.norm(v)
    return np.column_stack([np.cross(v, n), v, n])


def plane_image(centre, frame: np.ndarray, spacing: float = PLANE_SPACING_MM, thickness: float = 1.0) -> sitk.Image:
    """An empty level plane (uint8) centred ``POSTERIOR_SHIFT_MM`` behind ``centre``."""
    pixels = int(round(PLANE_PIXELS * PLANE_SPACING_MM / spacing))
    middle = np.asarray(centre) + POSTERIOR_SHIFT_MM * frame[:, 1]
    origin = middle - frame[:, :2] @ np.full(2, (pixels - 1) / 2 * spacing)
    plane = sitk.Image([pixels, pixels, 1], sitk.sitkUInt8)
    plane.SetSpacing((spacing, spacing, thickness))
    plane.SetDirection(frame.flatten().tolist())
    plane.SetOrigin(origin.tolist())
    return plane


def reslice(image: sitk.Image, plane: sitk.Image, interpolator=sitk.sitkLinear, pixel_type=sitk.sitkFloat32):
    """``image`` sampled on ``plane``: 2D array (rows anterior -> posterior, columns right -> left)."""
    sampled = sitk.Resample(image, plane, sitk.Transform(), interpolator, 0, pixel_type)
    return sitk.GetArrayFromImage(sampled)[0]


def coverage(image: sitk.Image, plane: sitk.Image, field_mm: float = 20.0) -> float:
    """Fraction of the plane's central ``field_mm`` square (where the canal is) that lies inside the
    scan: a sagittal stack may be only 40 mm wide, which is enough."""
    inside = sitk.Image(image.GetSize(), sitk.sitkUInt8) + 1
    inside.CopyInformation(image)
    covered = reslice(inside, plane, sitk.sitkNearestNeighbor, sitk.sitkUInt8)
    middle, half = covered.shape[0] // 2, int(field_mm / 2 / plane.GetSpacing()[0])
    return float(covered[middle - half : middle + half, middle - half : middle + half].mean())


def slab_thickness(image: sitk.Image, normal: np.ndarray) -> float:
    """Extent of one scan voxel along ``normal``: a slab that thick holds a whole sheet of voxels."""
    direction = np.array(image.GetDirection()).reshape(3, 3)
    return float(np.sum(np.abs(direction.T @ normal) * np.array(image.GetSpacing())))


def paint(labels_2d: np.ndarray, plane: sitk.Image, reference: sitk.Image) -> np.ndarray:
    """The plane's labels on the reference grid (array z, y, x): voxels within half a slab of the plane."""
    slab = sitk.GetImageFromArray(labels_2d[None].astype(np.uint8))
    slab.SetSpacing(
        (*plane.GetSpacing()[:2], slab_thickness(reference, np.array(plane.GetDirection()).reshape(3, 3)[:, 2]))
    )
    slab.SetDirection(plane.GetDirection())
    slab.SetOrigin(plane.GetOrigin())
    painted = sitk.Resample(slab, reference, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk.GetArrayFromImage(painted)
