"""Checks on the inputs of the measurements: a task's label map, and grids that agree."""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk

from ..errors import InputError

GEOMETRY_TOLERANCE = 1e-4


def check_mask(mask: sitk.Image, source, image: sitk.Image | None = None) -> None:
    """Raise ``InputError`` naming ``source`` unless ``mask`` is a non-empty 3D {0, 1} mask on ``image``'s grid."""
    _check_labels(
        mask,
        source,
        (0, 1),
        "not a binary mask",
        "threshold a soft mask first, give level labels with --vertebral-levels",
    )
    if image is not None:
        check_same_grid(mask, image, source, "the image")


def check_label_map(labels: sitk.Image, task, source, image: sitk.Image | None = None) -> None:
    """As ``check_mask`` for the label map of ``task`` (a ``tasks.Task``): the values its segments make.
    A one-segment task's map is a binary mask."""
    if len(task.segments) == 1:
        return check_mask(labels, source, image)
    _check_labels(labels, source, task.label_values(), f"not a {task.name} label map", task.label_description())
    if image is not None:
        check_same_grid(labels, image, source, "the image")


def _check_labels(mask: sitk.Image, source, allowed: tuple[int, ...], problem: str, hint: str) -> None:
    if mask.GetDimension() != 3 or mask.GetNumberOfComponentsPerPixel() != 1:
        raise InputError(source, "a mask must be a 3D scalar image")
    values = sitk.GetArrayViewFromImage(mask)
    stray = ~np.isin(values, allowed)
    if np.any(stray):
        found = np.unique(values[stray])[:5]
        raise InputError(
            source,
            f"{problem}: {int(np.count_nonzero(stray))} voxels hold values other than "
            f"{', '.join(map(str, allowed))} (e.g. {', '.join(f'{v:g}' for v in found)}); {hint}",
        )
    if not np.any(values > 0):
        raise InputError(source, "empty mask: no voxel is 1")


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
