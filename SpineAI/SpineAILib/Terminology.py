"""Standard terminology and colour of every segment SpineAI creates.

``Resources/SegmentTerminology.csv`` holds one line per segment: the task that produces it, the
segment name the engine reports, the label under which 3D Slicer's General Anatomy terminology
lists it, its codes (category, type, optional type modifier, optional anatomic region; each as
coding scheme, code value, code meaning: SCT = SNOMED CT) and its display colour. The label is
empty when Slicer's lists lack the type (SNOMED CT 52988006 "Lesion"): the entry is then composed
from the file's codes, anatomic region included. A new task's segments are added by adding lines;
the panel shows one section per task of this file that the engine provides.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

TERMINOLOGY_CSV = Path(__file__).resolve().parent.parent / "Resources" / "SegmentTerminology.csv"
GENERAL_ANATOMY = "Segmentation category and type - 3D Slicer General Anatomy list"
ANATOMIC_REGIONS = "Anatomic codes - DICOM master list"


@dataclass(frozen=True)
class Code:
    scheme: str
    value: str
    meaning: str

    def serialized(self) -> str:
        return f"{self.scheme}^{self.value}^{self.meaning}"


NO_CODE = Code("", "", "")


@dataclass(frozen=True)
class SegmentStyle:
    task: str
    name: str
    slicerLabel: str
    category: Code
    type: Code
    typeModifier: Code
    region: Code
    color: tuple[float, float, float]  # 0..1

    @property
    def segmentId(self) -> str:
        """Stable segment ID ('Spinal cord' -> 'spinal_cord'), so scripts and re-runs find the segment."""
        return self.name.lower().replace(" ", "_")

    def terminologyEntry(self, terminologyLogic=None) -> str:
        """Serialised terminology entry for ``vtkSegment.SetTerminology``.

        Taken from Slicer's own General Anatomy terminology when it is loaded and lists the label
        (so the entry is exactly what Slicer's terminology selector would produce), otherwise
        composed from this file's codes; the tests check that the two agree.
        """
        if terminologyLogic is not None and self.slicerLabel and not self.region.value:
            import slicer

            entry = slicer.vtkSlicerTerminologyEntry()
            if terminologyLogic.FindTypeInTerminologyBy3dSlicerLabel(GENERAL_ANATOMY, self.slicerLabel, entry):
                return terminologyLogic.SerializeTerminologyEntry(entry)
        regionContext = ANATOMIC_REGIONS if self.region.value else ""
        fields = [GENERAL_ANATOMY, self.category, self.type, self.typeModifier, regionContext, self.region, NO_CODE]
        return "~".join(field if isinstance(field, str) else field.serialized() for field in fields)


def loadSegmentStyles(path: Path = TERMINOLOGY_CSV) -> list[SegmentStyle]:
    """All lines of the terminology file, in file order."""
    with open(path, newline="", encoding="utf-8") as handle:
        return [_style(row) for row in csv.DictReader(handle)]


def stylesForTask(task: str, path: Path = TERMINOLOGY_CSV) -> dict[str, SegmentStyle]:
    """Segment name -> style for the segments ``task`` produces."""
    return {style.name: style for style in loadSegmentStyles(path) if style.task == task}


def tasksInFile(path: Path = TERMINOLOGY_CSV) -> list[str]:
    """Tasks in the order of their first line."""
    return list(dict.fromkeys(style.task for style in loadSegmentStyles(path)))


def _style(row: dict) -> SegmentStyle:
    def code(prefix: str) -> Code:
        return Code(row[f"{prefix}Scheme"].strip(), row[f"{prefix}Code"].strip(), row[f"{prefix}Meaning"].strip())

    hexColor = row["Color"].strip().lstrip("#")
    color = tuple(int(hexColor[i : i + 2], 16) / 255.0 for i in (0, 2, 4))
    return SegmentStyle(
        row["Task"].strip(),
        row["Segment"].strip(),
        row["SlicerLabel"].strip(),
        code("Category"),
        code("Type"),
        code("TypeModifier"),
        code("Region"),
        color,
    )
