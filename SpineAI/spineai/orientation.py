"""The engine's one array convention, used everywhere.

Every computation runs on a *canonical* image: the input permuted and flipped (losslessly, no
interpolation) to SimpleITK orientation ``LAS``. Its numpy array ``a[z, y, x]`` then runs

* z: inferior -> superior (index 0 = most inferior; the "Slice (I->S)" of SCT),
* y: posterior -> anterior,
* x: right -> left,

which is the Spinal Cord Toolbox's "RPI" convention (SCT names the side an axis comes *from*,
SimpleITK the side it goes *to*). Spacing in this module is always given in array order (z, y, x)
in millimetres. Oblique acquisitions are reoriented to the nearest axis-aligned orientation; the
residual obliquity stays in the direction matrix, so no geometry is lost, and results go back to
the input's exact grid through ``from_canonical``.
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

CANONICAL = "LAS"


def orientation_code(image: sitk.Image) -> str:
    """Three-letter SimpleITK orientation code of the image (e.g. 'PSR', 'LAS')."""
    return sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())


def to_canonical(image: sitk.Image) -> sitk.Image:
    """The image permuted/flipped to the canonical LAS orientation (exact, no resampling)."""
    return sitk.DICOMOrient(image, CANONICAL)


def from_canonical(canonical: sitk.Image, reference: sitk.Image) -> sitk.Image:
    """Undo ``to_canonical``: the result has exactly ``reference``'s size, spacing, origin, direction."""
    restored = sitk.DICOMOrient(canonical, orientation_code(reference))
    if restored.GetSize() != reference.GetSize():
        raise ValueError(f"grid mismatch: {restored.GetSize()} vs {reference.GetSize()}")
    restored.CopyInformation(reference)
    return restored


def canonical_array(image: sitk.Image, dtype=None) -> np.ndarray:
    """Array a[z, y, x] (I->S, P->A, R->L) of a canonical image."""
    array = sitk.GetArrayFromImage(image)
    return array if dtype is None else array.astype(dtype, copy=False)


def spacing_zyx(image: sitk.Image) -> tuple[float, float, float]:
    """Voxel size in mm in array order (z, y, x)."""
    x, y, z = image.GetSpacing()
    return (z, y, x)


def array_to_image(array: np.ndarray, reference: sitk.Image) -> sitk.Image:
    """Wrap a[z, y, x] as an image on ``reference``'s grid (same size required)."""
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    return image
