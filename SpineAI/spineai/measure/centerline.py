"""Spinal cord centreline from a cord mask, in millimetres (SCT ``get_centerline``, bspline mode).

All arrays follow the engine convention (``spineai.orientation``): a canonical mask ``m[z, y, x]``
with z = I->S, y = P->A, x = R->L and ``spacing = (pz, py, px)`` in mm. Positions are given in mm
in that grid (index times spacing); the grid's own direction cosines are orthonormal, so
distances and angles measured this way are physical.

The centreline is the per-slice centre of mass of the mask, smoothed by a cubic smoothing
spline of x(z) and y(z) exactly as SCT does it (``smooth=30``). Its tangent gives the two angles
SCT reports and uses for the angle correction of the cross-sectional area.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import interpolate

SMOOTHING = 30.0  # SCT's sct_process_segmentation default for the bspline centreline


@dataclass(frozen=True)
class Centerline:
    """Fitted centreline sampled at every slice ``z`` from the first to the last non-empty slice.

    ``y_mm``/``x_mm``: position in mm along the P->A and R->L axes; ``dy_dz``/``dx_dz``: its
    derivative in mm per slice; ``pz``: slice spacing in mm. The tangent in mm is
    ``t = (pz, dy_dz, dx_dz)`` in (z, y, x) order.
    """

    z: np.ndarray
    y_mm: np.ndarray
    x_mm: np.ndarray
    dy_dz: np.ndarray
    dx_dz: np.ndarray
    pz: float

    def angle_ap(self) -> np.ndarray:
        """angle_AP [deg] = atan2(t_x, t_z): tilt of the cord in the coronal plane (rotation about A-P)."""
        return np.degrees(np.arctan2(self.dx_dz, self.pz))

    def angle_rl(self) -> np.ndarray:
        """angle_RL [deg] = atan2(t_y, t_z): tilt of the cord in the sagittal plane (rotation about R-L)."""
        return np.degrees(np.arctan2(self.dy_dz, self.pz))

    def points_mm(self, z: np.ndarray | None = None) -> np.ndarray:
        """Centreline points (N, 3) in mm, (z, y, x) order, at slice positions ``z`` (default: every slice)."""
        if z is None:
            return np.column_stack([self.z * self.pz, self.y_mm, self.x_mm])
        z = np.asarray(z, dtype=float)
        y = np.interp(z, self.z, self.y_mm)
        x = np.interp(z, self.z, self.x_mm)
        return np.column_stack([z * self.pz, y, x])


def slice_centres_of_mass(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per non-empty slice z: mean y and mean x index of the non-zero voxels (SCT ``find_and_sort_coord``)."""
    z, y, x = np.nonzero(mask)
    slices, inverse, counts = np.unique(z, return_inverse=True, return_counts=True)
    y_mean = np.bincount(inverse, weights=y) / counts
    x_mean = np.bincount(inverse, weights=x) / counts
    return slices.astype(float), y_mean, x_mean


def smoothing_factor(n_points: int, n_slices: int, smooth: float, pz: float, pixel_mm: float) -> float:
    """Spline smoothing ``s`` for coordinates in mm.

    SCT (curve_fitting.bspline) fits voxel coordinates with
    ``s_vox = (n_points / n_slices)**2 * smooth * pz / 3``; fitting ``pixel_mm`` times the coordinates
    gives the same curve (scaled) with ``s = s_vox * pixel_mm**2``.
    """
    return (n_points / n_slices) ** 2 * smooth * pz / 3.0 * pixel_mm**2


def fit_coordinate(z: np.ndarray, values_mm: np.ndarray, z_ref: np.ndarray, s: float) -> tuple[np.ndarray, np.ndarray]:
    """Smoothing spline of one coordinate: value and derivative d(value)/dz at ``z_ref``.

    Cubic (k=3) like SCT, k=1 when there are 3 points or fewer; a single point gives a constant.
    """
    if len(z) == 1:
        return np.full(len(z_ref), values_mm[0]), np.zeros(len(z_ref))
    degree = 3 if len(z) > 3 else 1
    tck = interpolate.splrep(z, values_mm, s=s, k=degree)
    return interpolate.splev(z_ref, tck), interpolate.splev(z_ref, tck, der=1)


def fit_centerline(mask: np.ndarray, spacing: tuple[float, float, float], smooth: float = SMOOTHING) -> Centerline:
    """Centreline of a canonical mask ``m[z, y, x]`` with ``spacing = (pz, py, px)`` mm.

    Centres of mass per slice, then x(z) and y(z) fitted in mm by a smoothing spline (see
    ``smoothing_factor``) and sampled at every slice between the first and last non-empty one.
    """
    pz, py, px = spacing
    z, y_mean, x_mean = slice_centres_of_mass(mask)
    if len(z) == 0:
        raise ValueError("empty mask: no centreline")
    z_ref = np.arange(int(z.min()), int(z.max()) + 1, dtype=float)
    y_fit, dy = fit_coordinate(z, y_mean * py, z_ref, smoothing_factor(len(z), len(z_ref), smooth, pz, py))
    x_fit, dx = fit_coordinate(z, x_mean * px, z_ref, smoothing_factor(len(z), len(z_ref), smooth, pz, px))
    return Centerline(z=z_ref, y_mm=y_fit, x_mm=x_fit, dy_dz=dy, dx_dz=dx, pz=float(pz))
