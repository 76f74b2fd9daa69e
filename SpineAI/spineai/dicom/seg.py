"""A task's label map as a BINARY DICOM Segmentation referencing the source series.

Every segment of the task (``tasks.Task.segments``) becomes one SEG segment, numbered 1..n in the
task's order; segment ``i`` holds the voxels ``task.segment_mask(labels, value)`` of its label value,
so the bit flags of an overlapping task (tumour: a voxel that is cord and tumour; stenosis: sac and
CSF) become overlapping SEG segments. Each segment carries the codes, anatomic region and display
colour of the engine's terminology table (``spineai/terminology.csv``, which the Slicer module reads
too), and the algorithm that made it: type AUTOMATIC, family "Artificial Intelligence", name
"SpineAI", the engine version, and the model's name and sha256 as parameters. Frame ``i`` of a
segment is the mask slice that source image ``i`` holds (``series.SourceSeries``); highdicom leaves
out the frames without any segmented pixel.
"""

from __future__ import annotations

from dataclasses import dataclass

import highdicom as hd
import numpy as np
import SimpleITK as sitk
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import generate_uid

from .. import __version__
from .series import SourceSeries

MANUFACTURER = "SpineAI"
SEG_SERIES_NUMBER = 9001  # high, so results sort after the scanner's series in a viewer


@dataclass(frozen=True)
class SegmentCoding:
    number: int  # the SEG segment number, 1..n in the task's segment order
    value: int  # the label value (a bit flag for an overlapping task)
    label: str
    category: Code
    property_type: Code
    type_modifier: Code | None
    region: Code | None  # AnatomicRegionSequence
    cielab: tuple[float, float, float]  # RecommendedDisplayCIELabValue (L*, a*, b*)


def segment_coding(task: str) -> list[SegmentCoding]:
    """The SEG segments of ``task``: number, label value, codes and colour from the terminology table."""
    from ..errors import SpineAIError
    from ..tasks import get_task
    from ..terminology import codes_for_task

    table = codes_for_task(task)
    codings = []
    for number, (value, name) in enumerate(get_task(task).segments, start=1):
        if name not in table:
            raise SpineAIError(f"segment '{name}' of the {task} task has no codes in the terminology table")
        entry = table[name]
        category, kind, modifier, region = (
            Code(c.value, c.scheme, c.meaning) if c else None
            for c in (entry.category, entry.type, entry.type_modifier, entry.region)
        )
        codings.append(SegmentCoding(number, value, name, category, kind, modifier, region, entry.cielab))
    return codings


def segment_number(task: str, name: str) -> int:
    """The SEG segment number of the segment ``name`` of ``task``."""
    return next(coding.number for coding in segment_coding(task) if coding.label == name)


def build_segmentation(source: SourceSeries, mask: sitk.Image, task: str, sidecar: dict) -> hd.seg.Segmentation:
    """The SEG of the label map ``mask`` (on the grid of the volume read from ``source``); ``sidecar`` from
    ``pipeline.segment``."""
    frames = segment_frames(mask, source, task)
    return hd.seg.Segmentation(
        source_images=source.datasets,
        pixel_array=frames,
        omit_empty_frames=bool(frames.any()),  # an empty result keeps every frame: a SEG needs at least one
        segmentation_type=hd.seg.SegmentationTypeValues.BINARY,
        segment_descriptions=segment_descriptions(task, sidecar),
        series_instance_uid=generate_uid(),
        series_number=SEG_SERIES_NUMBER,
        sop_instance_uid=generate_uid(),
        instance_number=1,
        manufacturer=MANUFACTURER,
        manufacturer_model_name=f"SpineAI {task} ({sidecar['model']})",
        software_versions=__version__,
        device_serial_number=sidecar["model_sha256"][:16],
        content_label=f"SPINEAI_{task.upper()}",
        content_description=f"SpineAI {task} segmentation",
        series_description=f"SpineAI {task} segmentation",
    )


def segment_frames(mask: sitk.Image, source: SourceSeries, task: str) -> np.ndarray:
    """(source images, rows, columns, segments) uint8: segment ``i``'s mask slice of each source image, in
    ``source.datasets`` order; a voxel of an overlapping task may be 1 in several segments."""
    from ..tasks import get_task

    info = get_task(task)
    labels = sitk.GetArrayViewFromImage(mask)[source.slice_indices]  # a[k, row, column], k = the volume's 3rd axis
    segments = [info.segment_mask(labels, coding.value) for coding in segment_coding(task)]
    return np.ascontiguousarray(np.stack(segments, axis=-1), dtype=np.uint8)


def segment_descriptions(task: str, sidecar: dict) -> list[hd.seg.SegmentDescription]:
    algorithm = algorithm_identification(task, sidecar)
    descriptions = []
    for coding in segment_coding(task):
        description = hd.seg.SegmentDescription(
            segment_number=coding.number,
            segment_label=coding.label,
            segmented_property_category=coding.category,
            segmented_property_type=coding.property_type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=generate_uid(),
            tracking_id=coding.label,
            anatomic_regions=[coding.region] if coding.region else None,
            display_color=hd.color.CIELabColor(*coding.cielab),
        )
        if coding.type_modifier:  # highdicom has no argument for it
            modifier = hd.sr.CodedConcept(*coding.type_modifier[:3])
            description.SegmentedPropertyTypeCodeSequence[0].SegmentedPropertyTypeModifierCodeSequence = [modifier]
        descriptions.append(description)
    return descriptions


def algorithm_identification(task: str, sidecar: dict) -> hd.AlgorithmIdentificationSequence:
    return hd.AlgorithmIdentificationSequence(
        name="SpineAI",
        family=codes.cid7162.ArtificialIntelligence,
        version=__version__,
        source=MANUFACTURER,
        parameters={"task": task, "model": sidecar["model"], "model_sha256": sidecar["model_sha256"]},
    )
