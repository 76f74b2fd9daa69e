"""Checks on the inputs of the morphometry: a binary cord mask, and grids that agree."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..errors import InputError

GEOMETRY_TOLERANCE = 1e-4


def check_mask(mask: sitk.Image, source, image: sitk.Image | None = None) -> None:
    """Raise ``InputError`` naming ``source`` unless ``mask`` is a non-empty 3D {0, 1} mask on ``image``'s grid."""
    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(source, "a cord mask must be a 3D scalar image")
    values = sitk.GetArrayViewFromImage(mask)
    stray = (values != 0) & (values != 1)
    if np.any(stray):
        found = np.unique(values[stray])[:5]
        raise InputError(
            source,
            f"not a binary mask: {int(np.count_nonzero(stray))} voxels hold values other than 0 and 1 "
            f"(e.g. {', '.join(f'{v:g}' for v in found)}); "
            "threshold a soft mask first, give level labels with --levels",
        )
    if not np.any(values == 1):
        raise InputError(source, "empty mask: no voxel is 1")
    if image is not None:
        check_same_grid(mask, image, source, "the image")


def check_same_grid(mask: sitk.Image, other: sitk.Image, source, other_name: str) -> None:
    """Raise ``InputError`` unless size, spacing, origin and direction agree (within 1e-4)."""
    for name, a, b in (
        ("size", mask.GetSize(), other.GetSize()),
        ("spacing", mask.GetSpacing(), other.GetSpacing()),
        ("origin", mask.GetOrigin(), other.GetOrigin()),
        ("direction", mask.GetDirection(), other.GetDirection()),
    ):
        if len(a) != len(b) or not np.allclose(a, b, rtol=0, atol=GEOMETRY_TOLERANCE):
            shown_a, shown_b = (tuple(round(v, 4) for v in x) for x in (a, b))
            raise InputError(source, f"does not match the geometry of {other_name}: {name} {shown_a} vs {shown_b}")
