"""Every segment SpineAI makes carries the standard code and colour that Slicer's terminology lists
(General Anatomy, or the DICOM master list for a type General Anatomy lacks, such as CSF)."""

import dataclasses

import pytest
import slicer
from SpineAILib.Terminology import ANATOMIC_REGIONS, GENERAL_ANATOMY, loadSegmentStyles, tasksInFile

from spineai.tasks import TASKS

STYLES = loadSegmentStyles()
DICOM_MASTER = "Segmentation category and type - DICOM master list"


@pytest.mark.parametrize("style", [style for style in STYLES if style.slicerLabel], ids=lambda style: style.name)
def test_codes_and_colour_match_slicer_general_anatomy(mrml, style):
    terminologies = slicer.modules.terminologies.logic()
    entry = slicer.vtkSlicerTerminologyEntry()
    assert style.context in (GENERAL_ANATOMY, DICOM_MASTER)
    assert terminologies.FindTypeInTerminologyBy3dSlicerLabel(style.context, style.slicerLabel, entry)
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


def code_of(item) -> tuple[str, str, str]:
    return (item.GetCodingSchemeDesignator(), item.GetCodeValue(), item.GetCodeMeaning())


def slicer_codes(count: int, get, factory) -> dict:
    """Items of one of Slicer's terminology lists by (scheme, value, meaning)."""
    items = [factory() for _ in range(count)]
    assert all(get(index, item) for index, item in enumerate(items))
    return {code_of(item): item for item in items}


@pytest.mark.parametrize("style", [style for style in STYLES if not style.slicerLabel], ids=lambda style: style.name)
def test_a_type_slicer_does_not_list_has_slicer_category_and_region(mrml, style):
    """A type absent from Slicer's lists (SNOMED CT 52988006 Lesion) is composed from the file's codes:
    its category and anatomic region must still be Slicer's own, and Slicer must read the entry back."""
    terminologies = slicer.modules.terminologies.logic()
    categories = slicer_codes(
        terminologies.GetNumberOfCategoriesInTerminology(GENERAL_ANATOMY),
        lambda index, item: terminologies.GetNthCategoryInTerminology(GENERAL_ANATOMY, index, item),
        slicer.vtkSlicerTerminologyCategory,
    )
    regions = slicer_codes(
        terminologies.GetNumberOfRegionsInRegionContext(ANATOMIC_REGIONS),
        lambda index, item: terminologies.GetNthRegionInRegionContext(ANATOMIC_REGIONS, index, item),
        slicer.vtkSlicerTerminologyType,
    )
    codes = {
        part: (code.scheme, code.value, code.meaning) for part, code in vars(style).items() if hasattr(code, "value")
    }
    assert categories[codes["category"]].GetShowAnatomy()  # Slicer lets this category carry an anatomic region
    assert codes["region"] in regions
    entry = slicer.vtkSlicerTerminologyEntry()
    assert terminologies.DeserializeTerminologyEntry(style.terminologyEntry(terminologies), entry)
    assert code_of(entry.GetCategoryObject()) == codes["category"]
    assert code_of(entry.GetTypeObject()) == codes["type"]
    assert code_of(entry.GetRegionObject()) == codes["region"]
    assert style.terminologyEntry(None) == style.terminologyEntry(terminologies)


def test_lesion_task_segments():
    lesion = {style.name: style for style in STYLES if style.task == "lesion"}
    cord = next(style for style in STYLES if style.task == "cord" and style.name == "Spinal cord")
    assert dataclasses.replace(lesion["Spinal cord"], task="cord") == cord  # same codes and colour as the cord task
    injury = lesion["Spinal cord injury lesion"]
    assert (injury.category.value, injury.type.value, injury.region.value) == ("49755003", "52988006", "2748008")
    assert injury.segmentId == "spinal_cord_injury_lesion"
    assert injury.color != cord.color


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
    assert tasksInFile()[:2] == ["cord", "lesion"]
    assert len(set(tasksInFile())) == len(tasksInFile())


def test_stenosis_segments_carry_the_verified_codes(mrml):
    """Dural sac = SCT 18545000 Dura mater (no code for the sac itself), CSF = SCT 65216001, posterior
    epidural fat = SCT 248300009 Body fat in the lumbar spine; Slicer reads every entry back."""
    stenosis = {style.name: style for style in STYLES if style.task == "stenosis"}
    assert list(stenosis) == ["Dural sac", "Cerebrospinal fluid", "Posterior epidural fat"]
    codes = {name: (style.category.value, style.type.value, style.region.value) for name, style in stenosis.items()}
    assert codes == {
        "Dural sac": ("123037004", "18545000", ""),
        "Cerebrospinal fluid": ("123037004", "65216001", ""),
        "Posterior epidural fat": ("85756007", "248300009", "122496007"),
    }
    assert stenosis["Cerebrospinal fluid"].context == DICOM_MASTER
    assert len({style.color for style in stenosis.values()}) == 3
    terminologies = slicer.modules.terminologies.logic()
    for style in stenosis.values():
        entry = slicer.vtkSlicerTerminologyEntry()
        assert terminologies.DeserializeTerminologyEntry(style.terminologyEntry(terminologies), entry)
        assert code_of(entry.GetTypeObject()) == (style.type.scheme, style.type.value, style.type.meaning)
        assert (entry.GetRegionObject().GetCodeValue() or "") == style.region.value
