"""Every segment SpineAI makes carries the standard code and colour that Slicer's terminology lists."""

import pytest
import slicer
from SpineAILib.Terminology import GENERAL_ANATOMY, loadSegmentStyles, tasksInFile

from spineai.pipeline import TASKS

STYLES = loadSegmentStyles()


@pytest.mark.parametrize("style", [style for style in STYLES if style.slicerLabel], ids=lambda style: style.name)
def test_codes_and_colour_match_slicer_general_anatomy(mrml, style):
    terminologies = slicer.modules.terminologies.logic()
    entry = slicer.vtkSlicerTerminologyEntry()
    assert terminologies.FindTypeInTerminologyBy3dSlicerLabel(GENERAL_ANATOMY, style.slicerLabel, entry)
    found = entry.GetTypeObject()
    assert (found.GetCodingSchemeDesignator(), found.GetCodeValue(), found.GetCodeMeaning()) == (
        style.type.scheme,
        style.type.value,
        style.type.meaning,
    )
    assert entry.GetCategoryObject().GetCodeValue() == style.category.value
    assert tuple(round(c * 255) for c in style.color) == tuple(found.GetRecommendedDisplayRGBValue())
    # The entry composed from the file (used when Slicer's terminology is not loaded) is the same.
    assert style.terminologyEntry(None) == style.terminologyEntry(terminologies)


def test_spinal_cord_is_snomed_2748008():
    cord = next(style for style in STYLES if style.name == "Spinal cord")
    assert (cord.type.scheme, cord.type.value) == ("SCT", "2748008")
    assert cord.segmentId == "spinal_cord"


def test_every_engine_segment_has_a_terminology_line():
    named = {(style.task, style.name) for style in STYLES}
    for task, info in TASKS.items():
        for _, segment in info.segments:
            assert (task, segment) in named, f"add a SegmentTerminology.csv line for {task}/{segment}"


def test_tasks_come_from_the_file_in_order():
    assert tasksInFile()[0] == "cord"
    assert len(set(tasksInFile())) == len(tasksInFile())
