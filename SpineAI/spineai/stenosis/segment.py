"""The dural sac, its CSF and the posterior epidural fat in each level plane, written on the scan's grid.

Label map bit flags (the stenosis label map): 1 dural sac, 2 CSF inside the sac, 4 posterior
epidural fat; nerve roots are the sac without CSF. The network (trained on ``synthetic_canal``
phantoms) gives four exclusive classes per plane pixel: background, sac without CSF, CSF, fat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import SimpleITK as sitk
from scipy import ndimage

from .levels import LevelPoint, level_problems
from .planes import PLANE_SPACING_MM, coverage, paint, plane_frame, plane_image, reslice

SAC, CSF, FAT = 1, 2, 4
CLASS_BITS = np.array([0, SAC, SAC | CSF, FAT], np.uint8)  # network class -> label map bits
MIN_COVERAGE = 0.9  # of the canal's part of the plane: a level whose canal is cut by the scan's edge is not assessed
MIN_SAC_MM2 = 15.0  # smaller "sacs" are fragments: even an extreme stenosis leaves more (Schonstrom: < 75 absolute)
FAT_REACH_MM = 4.0  # fat further than this from the sac is not the sac's posterior epidural fat


@dataclass
class LevelSection:
    level: LevelPoint
    plane: sitk.Image
    distance_mm: float  # from the level point to the plane (snapping to a slice of an axial stack)
    problem: str = ""  # why the level cannot be assessed, if it cannot


def level_sections(image: sitk.Image, levels: list[LevelPoint]) -> list[LevelSection]:
    """The plane of each level on ``image``, and a problem where the scan does not show it."""
    sections = []
    max_distance = max(image.GetSpacing())
    for level in levels:
        centre, frame, distance = plane_frame(image, level.point, level.normal)
        plane = plane_image(centre, frame)
        problem = ""
        if distance > max_distance:
            problem = f"no slice at this level (nearest is {distance:.1f} mm away)"
        elif coverage(image, plane) < MIN_COVERAGE:
            problem = "the level lies outside the scan"
        sections.append(LevelSection(level, plane, distance, problem))
    return sections


def assessment_problems(image: sitk.Image, levels: list[LevelPoint], sections=None) -> dict[int, str]:
    """Why each level that cannot be assessed on ``image``'s grid cannot: out of order, not a lumbar
    spacing, no slice there, outside the scan. The segmentation and every re-measurement use this;
    ``sections``: the levels' ``level_sections`` when already made."""
    sections = level_sections(image, levels) if sections is None else sections
    return {**{s.level.code: s.problem for s in sections if s.problem}, **level_problems(levels)}


def segment_sections(
    image: sitk.Image, sections: list[LevelSection], device: str = "auto", model_dir=None
) -> np.ndarray:
    """Label map (z, y, x array on ``image``'s grid) of the sac, CSF and fat at every assessable level
    (``model_dir``: a site model of the sac network)."""
    labels = np.zeros(sitk.GetArrayViewFromImage(image).shape, np.uint8)
    assessable = [section for section in sections if not section.problem]
    if not assessable:
        return labels
    from ..inference import network_for, normalise_intensity  # the runtime: imported only where a network runs

    network = network_for("stenosis", device, model_dir)
    planes = np.stack([normalise_intensity(reslice(image, s.plane), network.spec.percentiles) for s in assessable])
    classes = network.class_probabilities(planes).argmax(1)
    for section, plane_classes in zip(assessable, classes, strict=True):
        plane_labels = clean_plane_labels(CLASS_BITS[plane_classes])
        painted = paint(plane_labels, section.plane, image)
        labels = np.where(painted > 0, painted, labels)
    return labels


def clean_plane_labels(bits: np.ndarray, spacing: float = PLANE_SPACING_MM) -> np.ndarray:
    """One sac (the largest component, holes filled as sac), CSF only inside it, fat only near it."""
    sac = bits & SAC > 0
    components, count = ndimage.label(sac)
    if not count:
        return np.zeros_like(bits)
    sac = ndimage.binary_fill_holes(components == 1 + int(np.argmax(np.bincount(components.ravel())[1:])))
    if sac.sum() * spacing**2 < MIN_SAC_MM2:
        return np.zeros_like(bits)
    csf = sac & (bits & CSF > 0)
    near = ndimage.distance_transform_edt(~sac, sampling=spacing) <= FAT_REACH_MM
    fat = (bits & FAT > 0) & near & ~sac
    return (sac * SAC | csf * CSF | fat * FAT).astype(np.uint8)
