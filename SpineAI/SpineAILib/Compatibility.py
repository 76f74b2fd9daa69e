"""Which 3D Slicer versions SpineAI runs in, and the one line an older one shows instead of the panel.

The minimum is Slicer 5.10 (released November 2025), for two reasons read in Slicer's sources and
release notes: ``vtkSegment.SetTerminology`` / ``GetTerminology``, which every result segment is
coded with, were added in 5.10 (Slicer pull request 8296), and 5.10 moved Slicer's Python from 3.9
to 3.12 (pull request 8466), which the engine needs (it is written for Python >= 3.10). The
supported range is that release and every later one, preview included.

This file is imported by ``SpineAI.py`` before anything else of SpineAI, so it must run on the
Python of the oldest Slicer that could load it (3.9 in Slicer 5.6 and 5.8): standard library only,
no syntax newer than 3.9 (Testing/module/test_module_compatibility.py compiles it with Python 3.9).
"""

from __future__ import annotations

import sys

MINIMUM_SLICER = (5, 10)
# What the engine needs (pyproject requires-python); Slicer 5.10 ships 3.12. Only a custom build of
# Slicer could pair a supported version with an older Python.
MINIMUM_PYTHON = (3, 10)


def versionText(version) -> str:
    return ".".join(str(part) for part in version)


def slicerVersionProblem(slicerVersion, pythonVersion=None) -> str | None:
    """One line saying what is needed when ``slicerVersion`` (major, minor) is too old, else None.

    ``pythonVersion`` (default: this interpreter's): a custom Slicer build with an older Python than
    the engine needs cannot run it either.
    """
    slicerVersion = tuple(int(part) for part in tuple(slicerVersion)[:2])
    pythonVersion = tuple(pythonVersion or sys.version_info[:2])[:2]
    if slicerVersion < MINIMUM_SLICER:
        return (
            f"SpineAI needs 3D Slicer {versionText(MINIMUM_SLICER)} or later; this is Slicer "
            f"{versionText(slicerVersion)}. Install the current Slicer from download.slicer.org."
        )
    if pythonVersion < MINIMUM_PYTHON:
        return (
            f"SpineAI needs a 3D Slicer with Python {versionText(MINIMUM_PYTHON)} or later; this Slicer "
            f"runs Python {versionText(pythonVersion)}. Install the current Slicer from download.slicer.org."
        )
    return None


def runningSlicerVersion(app) -> tuple:
    """(major, minor) of the running Slicer application (``slicer.app``)."""
    return (int(app.majorVersion), int(app.minorVersion))
