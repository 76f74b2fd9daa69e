"""Standard terminology and colour of every segment SpineAI creates, as Slicer wants them.

The codes and colours are the engine's one table (``spineai/terminology.csv``, read through
``spineai.terminology``), which DICOM SEG/SR use too; why each code was chosen is in
``docs/terminology.md``. This module turns a line of it into a Slicer terminology entry: taken from
Slicer's own terminology where Slicer lists the segment's label, else composed from the codes.
The panel shows one section per task of the table that the engine provides.
"""

from __future__ import annotations

from dataclasses import dataclass

from spineai import terminology

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


def loadSegmentStyles() -> list[SegmentStyle]:
    """All lines of the engine's terminology table, in its order."""
    return [_style(code) for code in terminology.segment_codes()]


def stylesForTask(task: str) -> dict[str, SegmentStyle]:
    """Segment name -> style for the segments ``task`` produces."""
    return {style.name: style for style in loadSegmentStyles() if style.task == task}


def tasksInFile() -> list[str]:
    """Tasks in the order of their first line."""
    return terminology.tasks_in_table()


def _style(code: terminology.SegmentCode) -> SegmentStyle:
    def slicerCode(engineCode: terminology.Code) -> Code:
        return Code(engineCode.scheme, engineCode.value, engineCode.meaning)

    return SegmentStyle(
        code.task,
        code.name,
        code.slicer_label,
        slicerCode(code.category),
        slicerCode(code.type),
        slicerCode(code.type_modifier),
        slicerCode(code.region),
        code.rgb,
        code.slicer_context or GENERAL_ANATOMY,
    )
