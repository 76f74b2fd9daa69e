"""Standard terminology and colour of every segment SpineAI creates.

``Resources/SegmentTerminology.csv`` holds one line per segment: the task that produces it, the
segment name the engine reports, the label under which 3D Slicer's terminology lists it, its codes
(category, type, optional type modifier, optional anatomic region; each as coding scheme, code
value, code meaning: SCT = SNOMED CT), its display colour (Slicer's recommended one where Slicer
lists the type) and the terminology context (empty: Slicer's General Anatomy list). The label is
empty when Slicer's lists lack the type (SNOMED CT 52988006 "Lesion"): the entry is then composed
from the file's codes, anatomic region included. A new task's segments are added by adding lines;
the panel shows one section per task of this file that the engine provides.

Stenosis codes, as DICOM PS3.16 and Slicer's lists give them (checked against Slicer's terminology
files in Testing/module/test_module_terminology.py):

* Dural sac: SCT 18545000 "Dura mater" (CID 7153 CNS Segmentation Type; General Anatomy "dura
  mater"). No SNOMED CT or DICOM code for the dural (thecal) sac itself could be confirmed; the sac
  is the spinal dura's tube, so its membrane's code is the nearest confirmed one. Slicer's
  "Anatomical Structure" category takes no anatomic region, so none is given.
* Cerebrospinal fluid: SCT 65216001 "Cerebrospinal Fluid" (CID 7153), which Slicer lists in its
  DICOM master list (label "cerebro-spinal fluid"), not in General Anatomy.
* Posterior epidural fat: SCT 248300009 "Body fat" (CID 7166 Common Tissue Segmentation Types;
  General Anatomy "fat"), anatomic region SCT 122496007 "Lumbar spine". SCT 55603005 "Adipose
  tissue" exists too but is in none of Slicer's segmentation lists; no code for the epidural space
  is in Slicer's anatomic region list.
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
    context: str = GENERAL_ANATOMY  # the Slicer terminology that lists slicerLabel

    @property
    def segmentId(self) -> str:
        """Stable segment ID ('Spinal cord' -> 'spinal_cord'), so scripts and re-runs find the segment."""
        return self.name.lower().replace(" ", "_")

    def terminologyEntry(self, terminologyLogic=None) -> str:
        """Serialised terminology entry for ``vtkSegment.SetTerminology``.

        Taken from Slicer's own terminology (``context``) when it is loaded and lists the label
        (so the entry is exactly what Slicer's terminology selector would produce), otherwise
        composed from this file's codes; the tests check that the two agree.
        """
        if terminologyLogic is not None and self.slicerLabel and not self.region.value:
            import slicer

            entry = slicer.vtkSlicerTerminologyEntry()
            if terminologyLogic.FindTypeInTerminologyBy3dSlicerLabel(self.context, self.slicerLabel, entry):
                return terminologyLogic.SerializeTerminologyEntry(entry)
        regionContext = ANATOMIC_REGIONS if self.region.value else ""
        fields = [self.context, self.category, self.type, self.typeModifier, regionContext, self.region, NO_CODE]
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
        (row.get("TerminologyContext") or "").strip() or GENERAL_ANATOMY,
    )
