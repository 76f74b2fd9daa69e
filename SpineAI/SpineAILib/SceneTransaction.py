"""All-or-nothing changes to the scene: a failed or cancelled run leaves no half-made nodes behind."""

from __future__ import annotations

from contextlib import contextmanager


def nodeIDs(scene) -> set[str]:
    return {scene.GetNthNode(index).GetID() for index in range(scene.GetNumberOfNodes())}


@contextmanager
def sceneTransaction(scene):
    """Remove every node added inside the block when the block raises, then re-raise."""
    before = nodeIDs(scene)
    try:
        yield
    except BaseException:
        _removeAddedNodes(scene, before)
        raise


@contextmanager
def temporaryNodes(scene):
    """Remove every node added inside the block, whatever the outcome.

    For slicer.util's segment <-> array helpers: they add a temporary label map volume and remove it,
    but not its display node, which would otherwise pile up in the scene with every call.
    """
    before = nodeIDs(scene)
    try:
        yield
    finally:
        _removeAddedNodes(scene, before)


def _removeAddedNodes(scene, before: set[str]) -> None:
    nodes = [scene.GetNthNode(index) for index in range(scene.GetNumberOfNodes())]
    # Newest first, so display and storage nodes go before the nodes that own them.
    for node in reversed([node for node in nodes if node.GetID() not in before]):
        if scene.IsNodePresent(node):
            scene.RemoveNode(node)
