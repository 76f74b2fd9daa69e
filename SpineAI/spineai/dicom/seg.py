"""A task's mask as a BINARY DICOM Segmentation referencing the source series.

Each segment carries SNOMED CT codes and a display colour from the engine's terminology table
(``spineai/terminology.csv``, which the Slicer module reads too), and the algorithm that made it:
type AUTOMATIC, family "Artificial Intelligence", name "SpineAI", the engine version, and the
model's name and sha256 as parameters. Frame ``i`` of the pixel array is the mask slice that source
image ``i`` holds (``series.SourceSeries``); highdicom leaves out the frames without any segmented
pixel.
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
    label: str
    category: Code
    property_type: Code
    cielab: tuple[float, float, float]  # RecommendedDisplayCIELabValue (L*, a*, b*)


def segment_coding(task: str) -> dict[int, SegmentCoding]:
    """Segment number (the label value) -> codes and colour, from the engine's terminology table."""
    from ..tasks import get_task
    from ..terminology import codes_for_task

    table = codes_for_task(task)
    codings = {}
    for value, name in get_task(task).segments:
        entry = table[name]
        category, kind = (Code(c.value, c.scheme, c.meaning) for c in (entry.category, entry.type))
        codings[value] = SegmentCoding(name, category, kind, entry.cielab)
    return codings


def build_segmentation(source: SourceSeries, mask: sitk.Image, task: str, sidecar: dict) -> hd.seg.Segmentation:
    """The SEG of ``mask`` (on the grid of the volume read from ``source``); ``sidecar`` from ``pipeline.segment``."""
    frames = mask_frames(mask, source)
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


def mask_frames(mask: sitk.Image, source: SourceSeries) -> np.ndarray:
    """(source images, rows, columns) uint8: the mask slice of each source image, in ``source.datasets`` order."""
    array = sitk.GetArrayViewFromImage(mask)  # a[k, row, column], k along the volume's third axis
    return np.ascontiguousarray(array[source.slice_indices], dtype=np.uint8)


def segment_descriptions(task: str, sidecar: dict) -> list[hd.seg.SegmentDescription]:
    algorithm = algorithm_identification(task, sidecar)
    return [
        hd.seg.SegmentDescription(
            segment_number=number,
            segment_label=coding.label,
            segmented_property_category=coding.category,
            segmented_property_type=coding.property_type,
            algorithm_type=hd.seg.SegmentAlgorithmTypeValues.AUTOMATIC,
            algorithm_identification=algorithm,
            tracking_uid=generate_uid(),
            tracking_id=coding.label,
            display_color=hd.color.CIELabColor(*coding.cielab),
        )
        for number, coding in segment_coding(task).items()
    ]


def algorithm_identification(task: str, sidecar: dict) -> hd.AlgorithmIdentificationSequence:
    return hd.AlgorithmIdentificationSequence(
        name="SpineAI",
        family=codes.cid7162.ArtificialIntelligence,
        version=__version__,
        source=MANUFACTURER,
        parameters={"task": task, "model": sidecar["model"], "model_sha256": sidecar["model_sha256"]},
    )
