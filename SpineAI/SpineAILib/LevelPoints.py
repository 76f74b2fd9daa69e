"""Disc levels of the stenosis task as a markups point list, shown in the views and movable.

One control point per level, labelled L1-L2, L2-L3, L3-L4, L4-L5 or L5-S1: either a list the user
places (passed to the engine as ``spineai.stenosis.levels.LevelPoint``s) or the list SpineAI makes
from the levels the engine found (``sidecar["disc_levels"]``). The segmentation node refers to its list
(``LEVELS_REFERENCE``), so Update measurements grades at the points as they are now.

MRML keeps control points in RAS, the engine works in LPS: the conversion flips the first two
coordinates, and a point list under another transform than the volume is brought into the volume's
frame first (as the volume's voxels, the engine sees the volume's own frame). A disc-plane normal is
the third column of the control point's orientation, as in the engine's ``.mrk.json``
(``level_markups``); Slicer's default orientation (third column along S-I) means "no normal", and
such a level gets the direction between its neighbours (``with_normals``). A list SpineAI makes
remembers its points as made (``AS_MADE_ATTRIBUTE``): a point still there keeps the engine's
source ("disc network"), a moved one says it was moved, and moving any counts as an edit.
"""

from __future__ import annotations

import json
import re

import numpy as np
import slicer
import vtk

from spineai.errors import InputError

from . import SegmentationNodes
from .VolumeConversion import RAS_TO_LPS

LEVELS_REFERENCE = "SpineAI.DiscLevels"
AS_MADE_ATTRIBUTE = "SpineAI.LevelsAsMade"
MOVED_MM = 0.01  # a point further than this from where SpineAI put it has been moved
LEVEL_NAMES = "L1-L2, L2-L3, L3-L4, L4-L5 or L5-S1"


def levelName(label: str) -> str:
    """'l4/l5', ' L4 - L5 ' -> 'L4-L5' (not checked)."""
    return re.sub(r"\s+", "", str(label)).upper().replace("/", "-")


def levelPointsFromMarkups(markupsNode, volumeNode=None) -> list:
    """The placed points of ``markupsNode`` as LevelPoints (LPS, the volume's frame), with normals.

    Raises InputError naming the list and the point for a label that is not a lumbar level, a level
    placed twice, or a list without placed points.
    """
    from spineai.stenosis.levels import CODES_BY_NAME, LevelPoint, with_normals

    name = markupsNode.GetName()
    toVolume = _transformToVolumeFrame(markupsNode, volumeNode)
    asMade = _asMade(markupsNode)
    levels, placedAt = [], {}
    for index in range(markupsNode.GetNumberOfControlPoints()):
        if markupsNode.GetNthControlPointPositionStatus(index) != slicer.vtkMRMLMarkupsNode.PositionDefined:
            continue  # not placed yet (e.g. a point of a template list)
        label = markupsNode.GetNthControlPointLabel(index)
        level = levelName(label)
        if level not in CODES_BY_NAME:
            raise InputError(
                name, f"point {index + 1} '{label}' is not a lumbar disc level; label each point {LEVEL_NAMES}"
            )
        if level in placedAt:
            raise InputError(
                name, f"level {level} is placed twice (points {placedAt[level] + 1} and {index + 1}); keep one"
            )
        placedAt[level] = index
        local = markupsNode.GetNthControlPointPosition(index)
        point = RAS_TO_LPS @ np.array(toVolume.TransformPoint(local))
        normal = _normal(markupsNode, index, local, toVolume)
        made = asMade.get(level)
        if made is not None and np.linalg.norm(point - np.array(made["point_lps_mm"])) <= MOVED_MM:
            source = made["source"]
        else:
            source = f"points {name}" if not asMade else f"moved by hand in {name}"
        levels.append(LevelPoint(CODES_BY_NAME[level], tuple(float(v) for v in point), normal, source))
    if not levels:
        raise InputError(name, f"holds no placed point; place one point at each disc level, labelled {LEVEL_NAMES}")
    return with_normals(levels)


def levelRecords(levels) -> list[dict]:
    """LevelPoints as the engine's sidecar records (``levels_from_records`` reads them back)."""
    return [
        {
            "level": level.name,
            "point_lps_mm": [float(v) for v in level.point],
            "normal_lps": [float(v) for v in level.normal] if level.normal is not None else None,
            "source": level.source,
            "problem": "",
        }
        for level in levels
    ]


def createLevelsNode(volumeNode, records: list[dict], name: str):
    """A point list of the engine's level records, in the volume's frame and study, one point per level.

    The point's description is where the level came from (and its problem, if the engine found one).
    """
    from spineai.stenosis.levels import level_markups, levels_from_records

    levels, problems = levels_from_records(records)
    markupsNode = slicer.mrmlScene.AddNewNodeByClass("vtkMRMLMarkupsFiducialNode", name)
    markupsNode.CreateDefaultDisplayNodes()
    markupsNode.SetAndObserveTransformNodeID(volumeNode.GetTransformNodeID())
    (markups,) = level_markups(levels)["markups"]  # LPS positions and orientations, sorted by level
    byName = {level.name: level for level in levels}
    for control in markups["controlPoints"]:
        level = byName[control["label"]]
        index = markupsNode.AddControlPoint(vtk.vtkVector3d(*(RAS_TO_LPS @ np.array(control["position"]))))
        markupsNode.SetNthControlPointLabel(index, level.name)
        orientation = RAS_TO_LPS @ np.array(control["orientation"]).reshape(3, 3)
        markupsNode.SetNthControlPointOrientationMatrix(index, [float(v) for v in orientation.ravel()])
        problem = problems.get(level.code, "")
        markupsNode.SetNthControlPointDescription(index, f"{level.source}; {problem}" if problem else level.source)
    asMade = {level.name: {"point_lps_mm": [float(v) for v in level.point], "source": level.source} for level in levels}
    markupsNode.SetAttribute(AS_MADE_ATTRIBUTE, json.dumps(asMade))
    SegmentationNodes.placeBesideVolume(markupsNode, volumeNode)
    return markupsNode


def isMadeBySpineAI(markupsNode) -> bool:
    return markupsNode.GetAttribute(AS_MADE_ATTRIBUTE) is not None


def isEditedSinceCreated(markupsNode, volumeNode) -> bool:
    """Whether a list SpineAI made has lost, gained, renamed or moved a point since (False for a user's list)."""
    asMade = _asMade(markupsNode)
    if not asMade:
        return False
    try:
        levels = levelPointsFromMarkups(markupsNode, volumeNode)
    except InputError:  # a point relabelled into something that is no level: edited
        return True
    return {level.name for level in levels} != set(asMade) or any(
        np.linalg.norm(np.subtract(level.point, asMade[level.name]["point_lps_mm"])) > MOVED_MM for level in levels
    )


def _asMade(markupsNode) -> dict:
    return json.loads(markupsNode.GetAttribute(AS_MADE_ATTRIBUTE) or "{}")


def _transformToVolumeFrame(markupsNode, volumeNode) -> vtk.vtkGeneralTransform:
    """From the point list's own coordinates to the volume's (identity when both share a transform)."""
    transform = vtk.vtkGeneralTransform()
    volumeParent = volumeNode.GetParentTransformNode() if volumeNode is not None else None
    slicer.vtkMRMLTransformNode.GetTransformBetweenNodes(markupsNode.GetParentTransformNode(), volumeParent, transform)
    return transform


def _normal(markupsNode, index: int, local, toVolume) -> tuple[float, float, float] | None:
    """The disc-plane normal (LPS, unit, pointing superior) stored in the point's orientation, or None."""
    orientation = np.array(markupsNode.GetNthControlPointOrientationMatrix(index)).reshape(3, 3)
    normal = RAS_TO_LPS @ np.array(toVolume.TransformVectorAtPoint(local, orientation[:, 2].tolist()))
    length = np.linalg.norm(normal)
    if not np.isfinite(length) or length == 0:
        return None
    normal /= length
    if np.allclose(np.abs(normal), (0.0, 0.0, 1.0), atol=1e-6):
        return None  # Slicer's default orientation: no normal given
    return tuple(float(v) for v in (normal if normal[2] >= 0 else -normal))
