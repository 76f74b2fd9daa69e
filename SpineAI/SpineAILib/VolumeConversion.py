"""MRML volume nodes <-> SimpleITK images, with exact geometry.

MRML stores a volume's geometry in RAS (right, anterior, superior), ITK in LPS (left, posterior,
superior): the two frames differ by the sign of their first two axes, so the conversion flips the
first two rows of the direction matrix and the first two origin coordinates, nothing else. The
voxel array order is the same on both sides: slicer.util.arrayFromVolume gives a[k, j, i] and
SimpleITK's GetImageFromArray takes a[z, y, x] with x = i. A parent transform of the node is not
applied (results go back into the node's own frame, under the same transform).
"""

from __future__ import annotations

import numpy as np
import SimpleITK as sitk
import slicer
import slicer.util

from spineai.errors import InputError
from spineai.io import check_volume

RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def checkInputVolume(volumeNode) -> None:
    """Raise ``InputError`` unless ``volumeNode`` is a scalar volume SpineAI can analyse.

    The messages are the ones the panel shows, so they name the node and say what to do.
    """
    if volumeNode is None:
        raise InputError("input volume", "no volume selected; select the MRI scan to analyse")
    name = volumeNode.GetName()
    if volumeNode.IsA("vtkMRMLSegmentationNode") or volumeNode.IsA("vtkMRMLLabelMapVolumeNode"):
        raise InputError(name, "is a segmentation (label map), not an image; select the MRI scan itself")
    if not volumeNode.IsA("vtkMRMLScalarVolumeNode"):
        raise InputError(name, f"is a {volumeNode.GetClassName()}, not a scalar volume; select the MRI scan")
    imageData = volumeNode.GetImageData()
    if imageData is None:
        raise InputError(name, "holds no image data")
    components = imageData.GetNumberOfScalarComponents()
    if components != 1:
        raise InputError(
            name,
            f"has {components} values per voxel (a 4D, vector or colour volume); SpineAI needs one 3D greyscale volume",
        )
    dimensions = imageData.GetDimensions()
    if min(dimensions) < 2:
        raise InputError(name, f"is a single 2D slice (dimensions {dimensions}); SpineAI needs a 3D volume")


def volumeToImage(volumeNode) -> sitk.Image:
    """The node's voxels as a SimpleITK image in LPS, with the node's exact spacing/origin/direction."""
    checkInputVolume(volumeNode)
    image = imageOnVolumeGrid(slicer.util.arrayFromVolume(volumeNode), volumeNode)
    check_volume(image, volumeNode.GetName())
    return image


def imageOnVolumeGrid(array: np.ndarray, volumeNode) -> sitk.Image:
    """``array`` a[k, j, i] as a SimpleITK image with the node's geometry."""
    image = sitk.GetImageFromArray(array)
    spacing, origin, direction = lpsGeometry(volumeNode)
    image.SetSpacing(spacing)
    image.SetOrigin(origin)
    image.SetDirection(direction)
    return image


def arrayOnVolumeGrid(image: sitk.Image, volumeNode) -> np.ndarray:
    """Voxels a[k, j, i] of ``image``, which must lie on the node's grid (engine results do)."""
    if not sameGeometry(image, volumeNode):
        raise InputError(
            volumeNode.GetName(),
            f"the result lies on another voxel grid (size {image.GetSize()}) than the volume; nothing was added",
        )
    return sitk.GetArrayFromImage(image)


def setVolumeGeometryFromImage(volumeNode, image: sitk.Image) -> None:
    """Give ``volumeNode`` the geometry of ``image`` (LPS -> RAS)."""
    direction = RAS_TO_LPS @ np.array(image.GetDirection()).reshape(3, 3)
    volumeNode.SetIJKToRASDirections(*[float(d) for d in direction.ravel()])
    volumeNode.SetSpacing(image.GetSpacing())
    volumeNode.SetOrigin(tuple(float(o) for o in RAS_TO_LPS @ np.array(image.GetOrigin())))


def addVolumeFromImage(image: sitk.Image, name: str, nodeClassName: str = "vtkMRMLScalarVolumeNode"):
    """A new volume node in the scene holding ``image`` (voxels and geometry)."""
    volumeNode = slicer.mrmlScene.AddNewNodeByClass(nodeClassName, name)
    setVolumeGeometryFromImage(volumeNode, image)
    slicer.util.updateVolumeFromArray(volumeNode, sitk.GetArrayFromImage(image))
    volumeNode.CreateDefaultDisplayNodes()
    return volumeNode


def lpsGeometry(volumeNode) -> tuple[tuple, tuple, tuple]:
    """(spacing, origin, direction) of the node's voxel grid in ITK's LPS convention."""
    directionsRAS = np.zeros((3, 3))
    volumeNode.GetIJKToRASDirections(directionsRAS)
    origin = RAS_TO_LPS @ np.array(volumeNode.GetOrigin())
    direction = RAS_TO_LPS @ directionsRAS
    return tuple(volumeNode.GetSpacing()), tuple(float(o) for o in origin), tuple(float(d) for d in direction.ravel())


def sameGeometry(image: sitk.Image, volumeNode) -> bool:
    """Whether ``image`` lies on the node's voxel grid (size, spacing, origin, direction)."""
    spacing, origin, direction = lpsGeometry(volumeNode)
    return (
        tuple(image.GetSize()) == tuple(volumeNode.GetImageData().GetDimensions())
        and np.allclose(image.GetSpacing(), spacing, rtol=0, atol=1e-6)
        and np.allclose(image.GetOrigin(), origin, rtol=0, atol=1e-4)
        and np.allclose(image.GetDirection(), direction, rtol=0, atol=1e-6)
    )
