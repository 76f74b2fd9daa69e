"""The Slicer, MRML and VTK API the SpineAI module calls, read from its code and recorded from a Slicer.

``usedApi()`` reads SpineAI.py and SpineAILib/*.py: every call or constant in VTK's CamelCase
(``node.GetNodeReference(...)``, ``vtkMRMLMarkupsNode.PositionDefined``), every ``vtk...`` class
named (``slicer.vtkSegment``, ``AddNewNodeByClass("vtkMRMLTableNode")``, the layout XML's view
classes) and every ``slicer.util`` function. Receivers that are not Slicer objects (SimpleITK
images, the standard library's classes) are left out by name.

``python Testing/module/slicer_api.py`` (run with an interpreter whose ``slicer`` is the
``slicer-core`` wheel of the minimum supported version) writes ``slicer_api_minimum.json``: for each
used name, the classes of that wheel that have it. It refuses to record a name the wheel lacks, so
the record is a proof that each call exists there. test_module_compatibility.py checks that the
code uses nothing outside the record and that the installed (newer) slicer-core has all of it.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import re
import sys
from pathlib import Path

MODULE = Path(__file__).resolve().parents[2] / "SpineAI"
RECORD = Path(__file__).resolve().parent / "slicer_api_minimum.json"
CODE = [MODULE / "SpineAI.py", *sorted((MODULE / "SpineAILib").glob("*.py"))]

# Receivers whose CamelCase calls are not Slicer's: SimpleITK (module and images), the standard library.
NOT_SLICER = {"sitk", "image", "subprocess", "threading", "queue", "csv", "argparse", "enum", "Path", "json", "numbers"}
# importlib.metadata, spineai's modules (errors, levels, terminology), slicer.ScriptedLoadableModule
NOT_SLICER |= {"metadata", "errors", "levels", "slicer", "terminology"}
SLICER_PREFIXES = ("vtkMRML", "vtkSegment", "vtkSlicer")
CALL = re.compile(r"(\w+)\.([A-Z]\w*)\b")
VTK_CLASS = re.compile(r"\b(vtk[A-Z]\w+)")
UTIL = re.compile(r"slicer\.util\.(\w+)")


def usedApi(paths=CODE) -> dict[str, set[str]]:
    methods, classes, util = set(), set(), set()
    for path in paths:
        text = path.read_text(encoding="utf-8")
        for receiver, name in CALL.findall(text):
            if receiver in NOT_SLICER or receiver == "qt" or name.isupper() or _isPythonName(receiver, name):
                continue
            methods.add(f"{receiver}.{name}" if receiver.startswith("vtk") else name)
        classes.update(VTK_CLASS.findall(text))
        util.update(UTIL.findall(text))
    return {"methods": methods, "classes": classes, "util": util}


def _isPythonName(receiver: str, name: str) -> bool:
    """SpineAI's own classes and modules (SegmentationNodes.X, self.X, errors), not Slicer's API."""
    own = {"SegmentationNodes", "LevelPoints", "MeasurementTable", "JobState", "DependencyInstaller", "self", "cls"}
    return receiver in own or receiver[0].isupper() and not receiver.startswith("vtk")


def record(slicer, vtk, util) -> dict:
    """For each used name, the classes of this ``slicer`` that have it; raises if one has none."""
    classes = {name: getattr(slicer, name, None) or getattr(vtk, name, None) for name in dir(slicer) + dir(vtk)}
    classes = {name: cls for name, cls in classes.items() if name.startswith("vtk") and isinstance(cls, type)}
    used = usedApi()
    missing, methods = [], {}
    for name in sorted(used["methods"]):
        if "." in name:  # vtkClass.Member: that class must have it
            owner, member = name.split(".")
            found = [owner] if hasattr(classes.get(owner), member) else []
        else:
            found = [owner for owner, cls in classes.items() if member_of(cls, name)]
            # The classes the code names first, then Slicer's, then VTK's.
            found.sort(key=lambda owner: (owner not in used["classes"], not owner.startswith(SLICER_PREFIXES), owner))
        if not found:
            missing.append(name)
        methods[name] = found[:8]
    for name in sorted(used["classes"]):
        if name not in classes:
            missing.append(name)
    for name in sorted(used["util"]):
        if not hasattr(util, name):
            missing.append(f"slicer.util.{name}")
    if missing:
        raise SystemExit(f"not in this Slicer: {', '.join(missing)}")
    return {"methods": methods, "classes": sorted(used["classes"]), "util": sorted(used["util"])}


def member_of(cls, name: str) -> bool:
    return any(name in base.__dict__ for base in cls.__mro__ if base.__module__ != "builtins")


def main() -> None:
    import slicer
    import slicer.util
    import vtk

    version = importlib.metadata.version("slicer-core")
    wheel = importlib.metadata.distribution("slicer-core")
    content = {
        "source": {
            "package": f"slicer-core {version} (PyPI; the oldest slicer-core wheel, built from Slicer's main "
            "branch after the 5.10 release, whose API it has: vtkSegment.SetTerminology came with 5.10)",
            "vtk": vtk.vtkVersion.GetVTKVersion(),
            "python": ".".join(map(str, sys.version_info[:3])),
            "wheel_RECORD_sha256": hashlib.sha256((wheel.read_text("RECORD") or "").encode()).hexdigest(),
            "generated_by": "python Testing/module/slicer_api.py",
        },
        **record(slicer, vtk, slicer.util),
    }
    RECORD.write_text(json.dumps(content, indent=1) + "\n")
    counts = {key: len(content[key]) for key in ("methods", "classes", "util")}
    print(f"{RECORD}: {counts}")


if __name__ == "__main__":
    main()
