"""One call from a scan to a labelled mask: the engine entry point of every task.

``segment(image, task)`` reorients the scan to the canonical convention (see ``orientation``),
runs the task's network, cleans the result and returns it on the input's exact grid together
with a sidecar record (engine and model version, checksum, device, timing, input geometry).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import lru_cache
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import __version__
from .errors import SpineAIError
from .inference import Progress, ShouldCancel, SlicePredictor
from .io import OutputSet, check_volume, read_image
from .models.registry import load_model, model_for_task
from .orientation import canonical_array, from_canonical, orientation_code, to_canonical
from .postprocess import clean_cord_mask
from .tasks import TASKS, TaskInfo, output_names  # noqa: F401 (TaskInfo re-exported for callers)


@dataclass
class SegmentationResult:
    mask: sitk.Image
    task: str
    segments: list[tuple[int, str]]
    sidecar: dict = field(default_factory=dict)


@lru_cache(maxsize=4)
def predictor_for(task: str, device: str) -> SlicePredictor:
    """The task's network, loaded once per process and device."""
    spec = model_for_task(task)
    return SlicePredictor(load_model(spec), spec, device)


def segment(
    image: sitk.Image,
    task: str = "cord",
    device: str = "auto",
    progress: Progress | None = None,
    should_cancel: ShouldCancel | None = None,
    source: str = "input image",
) -> SegmentationResult:
    """Segment ``image`` for ``task``; the mask (uint8) has exactly the input's geometry."""
    if task not in TASKS:
        raise SpineAIError(f"unknown task '{task}' (available: {', '.join(TASKS)})")
    check_volume(image, source)
    started = time.perf_counter()
    predictor = predictor_for(task, device)
    canonical = to_canonical(image)
    probability = predictor.probability(canonical, progress, should_cancel)
    mask = clean_cord_mask(canonical_array(probability), predictor.spec.threshold)
    canonical_mask = sitk.GetImageFromArray(mask)
    canonical_mask.CopyInformation(canonical)
    result_mask = from_canonical(canonical_mask, image)
    sidecar = {
        "engine": "spineai",
        "engine_version": __version__,
        "task": task,
        "model": predictor.spec.name,
        "model_sha256": predictor.spec.sha256,
        "device": str(predictor.device),
        "seconds": round(time.perf_counter() - started, 3),
        "labels": {str(value): name for value, name in TASKS[task].segments},
        "input_geometry": geometry_record(image),
        "voxels_segmented": int(np.count_nonzero(mask)),
    }
    return SegmentationResult(result_mask, task, TASKS[task].segments, sidecar)


def geometry_record(image: sitk.Image) -> dict:
    return {
        "size": list(image.GetSize()),
        "spacing_mm": [round(s, 6) for s in image.GetSpacing()],
        "origin_mm": [round(o, 6) for o in image.GetOrigin()],
        "direction": [round(d, 6) for d in image.GetDirection()],
        "orientation": orientation_code(image),
    }


def segment_file(
    image_path,
    out_dir,
    task: str = "cord",
    device: str = "auto",
    progress: Progress | None = None,
    levels_path=None,
    dicom_seg: bool = False,
) -> dict[str, Path]:
    """Read a scan, segment and measure it, and write mask + measurements + sidecar all-or-nothing.

    ``levels_path``: vertebral levels on the scan's grid (labelled cord or disc points) for the
    per-level table. ``dicom_seg``: the input is a DICOM series folder; also write the mask as DICOM
    SEG and the measurements as DICOM SR referencing it (``spineai.dicom``). Returns the written
    paths by kind.
    """
    from .measure import morphometry_tables, write_morphometry
    from .measure.levels import check_levels

    image = read_image(image_path)
    levels = read_image(levels_path) if levels_path is not None else None
    if levels is not None:
        check_levels(levels, image, levels_path)  # fail before the slow part
    source_series = _dicom_source(image_path, image) if dicom_seg else None
    result = segment(image, task, device, progress, source=str(image_path))
    names = output_names(image_path, task)
    cord_found = result.sidecar["voxels_segmented"] > 0
    sidecar = {
        **result.sidecar,
        "cord_found": cord_found,
        "input": str(Path(image_path).resolve()),
        "levels": str(Path(levels_path).resolve()) if levels_path else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with OutputSet(out_dir) as out:
        written = {"mask": out.write_image(result.mask, names["mask"])}
        tables = morphometry_tables(result.mask, levels, levels_path)
        written.update(write_morphometry(out, names["stem"], result.mask, levels, levels_path, tables))
        if source_series is not None:
            from .dicom.results import write_dicom_results

            written.update(write_dicom_results(out, names["stem"], source_series, result, tables))
        written["sidecar"] = out.write_json(
            {**sidecar, "outputs": {k: p.name for k, p in written.items()}}, names["sidecar"]
        )
    return written


def _dicom_source(image_path, image: sitk.Image):
    """The source series of a DICOM input, checked before the slow part (optional extra, folder input)."""
    from .dicom import require_dicom_extra

    require_dicom_extra()
    from .dicom.series import read_source_series

    return read_source_series(image_path, image)
