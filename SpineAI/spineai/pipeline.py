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
from scipy import ndimage

from . import __version__
from .errors import SpineAIError
from .inference import Progress, ShouldCancel, SlicePredictor
from .io import OutputSet, check_volume, read_image
from .models.registry import load_model, model_for_task
from .orientation import canonical_array, from_canonical, orientation_code, spacing_zyx, to_canonical
from .postprocess import clean_cord_mask, clean_tumour_mask, lesion_label_map
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
    level_points=None,
    sagittal: sitk.Image | None = None,
) -> SegmentationResult:
    """Segment ``image`` for ``task``; the label map (uint8) has exactly the input's geometry.

    Stenosis only: ``level_points`` (``stenosis.levels.LevelPoint``) or a ``sagittal`` scan of the
    same session say where the disc levels are; without either the scan itself must show them.
    """
    if task not in TASKS:
        raise SpineAIError(f"unknown task '{task}' (available: {', '.join(TASKS)})")
    check_volume(image, source)
    started = time.perf_counter()
    canonical = to_canonical(image)
    options = {"points": level_points, "sagittal": sagittal, "source": source} if task == "stenosis" else {}
    labels, predictors, details = SEGMENTERS[task](canonical, device, progress, should_cancel, **options)
    canonical_labels = sitk.GetImageFromArray(labels)
    canonical_labels.CopyInformation(canonical)
    main = predictors[-1]  # the task's own network; the cord network comes first where a task needs it
    sidecar = {
        "engine": "spineai",
        "engine_version": __version__,
        "task": task,
        "model": main.spec.name,
        "model_sha256": main.spec.sha256,
        "model_contrasts": list(main.spec.contrasts),
        "expected_contrast": TASKS[task].expected_contrast or "any common spine MRI contrast",
        "models": [{"task": p.spec.task, "name": p.spec.name, "sha256": p.spec.sha256} for p in predictors],
        "device": str(main.device),
        "seconds": round(time.perf_counter() - started, 3),
        "labels": {str(value): name for value, name in TASKS[task].segments},
        "input_geometry": geometry_record(image),
        "voxels_segmented": int(np.count_nonzero(labels)),
        **details,
    }
    return SegmentationResult(from_canonical(canonical_labels, image), task, TASKS[task].segments, sidecar)


def segment_cord(canonical: sitk.Image, device, progress=None, should_cancel=None):
    """Cord mask (0/1, canonical array), the predictors used, and no extra sidecar details."""
    predictor = predictor_for("cord", device)
    probability = canonical_array(predictor.probability(canonical, progress, should_cancel))
    return clean_cord_mask(probability, predictor.spec.threshold), [predictor], {}


def segment_lesion(canonical: sitk.Image, device, progress=None, should_cancel=None):
    """Label map 0/1/2 (cord, lesion): the cord network, then the lesion network inside that cord."""
    cord, predictors, _ = segment_cord(canonical, device, _stage(progress, 0.0, 0.5), should_cancel)
    predictor = predictor_for("lesion", device)
    probability = canonical_array(predictor.probability(canonical, _stage(progress, 0.5, 1.0), should_cancel))
    labels, dropped = lesion_label_map(cord, probability, predictor.spec.threshold)
    return labels, predictors + [predictor], {"lesion_voxels_dropped_outside_cord": dropped}


def segment_tumour(canonical: sitk.Image, device, progress=None, should_cancel=None):
    """Label map of bit flags: 1 cord, 2 tumour outside the cord, 3 tumour inside the cord."""
    cord, predictors, _ = segment_cord(canonical, device, _stage(progress, 0.0, 0.3), should_cancel)
    predictor = predictor_for("tumor", device)
    probability = canonical_array(predictor.probability(canonical, _stage(progress, 0.3, 1.0), should_cancel))
    tumour, dropped = clean_tumour_mask(probability, cord, spacing_zyx(canonical), predictor.spec.threshold)
    details = {
        "input_appearance": input_appearance(canonical_array(canonical), cord),
        "tumour_voxels_dropped_far_from_cord": dropped,
    }
    return (cord | (tumour << 1)).astype(np.uint8), predictors + [predictor], details


def input_appearance(image: np.ndarray, cord: np.ndarray) -> dict:
    """T1- or T2-like, from the ring just around the cord (CSF): a hint where a contrast was expected, not a check."""
    if not cord.any():
        return {"appearance": "unknown (no cord found)"}
    ring = ndimage.binary_dilation(cord > 0, iterations=2) & ~(cord > 0)
    ratio = float(np.median(image[ring]) / max(float(np.median(image[cord > 0])), 1e-6))
    appearance = "T2-like: CSF brighter than cord" if ratio > 1.1 else "T1-like: CSF not brighter than cord"
    return {"appearance": appearance, "csf_to_cord_ratio": round(ratio, 2)}


def segment_stenosis(canonical: sitk.Image, device, progress=None, should_cancel=None, **options):
    """Label map of bit flags (1 dural sac, 2 CSF, 4 posterior epidural fat) at each disc level: ``stenosis.run``."""
    from .stenosis.run import segment_stenosis as run

    return run(canonical, device, progress, should_cancel, **options)


SEGMENTERS = {"cord": segment_cord, "lesion": segment_lesion, "tumor": segment_tumour, "stenosis": segment_stenosis}


def _stage(progress: Progress | None, start: float, end: float) -> Progress | None:
    """Progress of one stage of a task mapped onto its share [start, end] of the whole."""
    return None if progress is None else (lambda fraction: progress(start + (end - start) * fraction))


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
    sagittal_path=None,
) -> dict[str, Path]:
    """Read a scan, segment and measure it, and write mask + measurements + sidecar all-or-nothing.

    ``levels_path``: vertebral levels on the scan's grid (labelled cord or disc points) for the
    per-level table; for the stenosis task, the disc levels as points (Slicer markups JSON or SCT
    disc labels 21-25 on any grid), and ``sagittal_path`` a sagittal T2 to find them on.
    ``dicom_seg``: the input is a DICOM series folder; also write the mask as DICOM
    SEG and the measurements as DICOM SR referencing it (``spineai.dicom``). Returns the written
    paths by kind.
    """
    from .measure.levels import check_levels

    if dicom_seg and task != "cord":
        raise SpineAIError(f"DICOM SEG/SR output exists for the cord task only, not '{task}'")
    image = read_image(image_path)
    options, levels = {}, None
    if task == "stenosis":
        options = _stenosis_inputs(levels_path, sagittal_path)
    elif sagittal_path is not None:
        raise SpineAIError("--sagittal is for the stenosis task (disc levels)")
    elif levels_path is not None:
        levels = read_image(levels_path)
        check_levels(levels, image, levels_path)  # fail before the slow part
    source_series = _dicom_source(image_path, image) if dicom_seg else None
    result = segment(image, task, device, progress, source=str(image_path), **options)
    names = output_names(image_path, task)
    sidecar = {
        **result.sidecar,
        "cord_found": result.sidecar["voxels_segmented"] > 0,
        "input": str(Path(image_path).resolve()),
        "levels": str(Path(levels_path).resolve()) if levels_path else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    with OutputSet(out_dir) as out:
        written = {"mask": out.write_image(result.mask, names["mask"])}
        if task == "stenosis":
            stenosis_written, stenosis_summary = _write_stenosis_tables(out, names, result)
            written.update(stenosis_written)
            sidecar["cord_found"] = None  # not looked for: the lumbar canal holds the cauda equina
            sidecar["stenosis"] = stenosis_summary
        elif task in ("lesion", "tumor"):
            write_table = _write_lesion_table if task == "lesion" else _write_tumour_table
            written["table"], sidecar[task] = write_table(out, result, image, levels, names["table"])
            # A tumour can be found where no cord is: the cord's own flag says whether there is one.
            sidecar["cord_found"] = sidecar[task]["cord_found"]
        else:
            written.update(_write_cord_tables(out, names["stem"], result, levels, levels_path, source_series))
        written["sidecar"] = out.write_json(
            {**sidecar, "outputs": {k: p.name for k, p in written.items()}}, names["sidecar"]
        )
    return written


def _write_cord_tables(out, stem, result, levels, levels_path, source_series) -> dict[str, Path]:
    """Cord morphometry CSV files, and the DICOM SEG + SR when the input was a DICOM series."""
    from .measure import morphometry_tables, write_morphometry

    tables = morphometry_tables(result.mask, levels, levels_path)
    written = write_morphometry(out, stem, result.mask, levels, levels_path, tables)
    if source_series is not None:
        from .dicom.results import write_dicom_results

        written.update(write_dicom_results(out, stem, source_series, result, tables))
    return written


def _write_lesion_table(out, result: SegmentationResult, image, levels, name: str) -> tuple[Path, dict]:
    """``<stem>_lesion.csv`` (one row per lesion and a total row) and the flags for the sidecar."""
    from .measure.lesion import LESION_COLUMNS, lesion_table

    rows, flags = lesion_table(result.mask)
    return out.write_csv(rows, name, LESION_COLUMNS), flags


def _write_tumour_table(out, result: SegmentationResult, image, levels, name: str) -> tuple[Path, dict]:
    """``<stem>_tumor.csv``: one row per tumour and a total row, each saying what contrast the model expects."""
    from .measure.tumor import TUMOR_COLUMNS, tumor_table

    rows, flags = tumor_table(result.mask, image, levels)
    expected = TASKS["tumor"].expected_contrast
    rows = [{**row, "expected_contrast": expected} for row in rows]
    flags = {**flags, "expected_contrast": expected, "input_appearance": result.sidecar.get("input_appearance")}
    return out.write_csv(rows, name, [*TUMOR_COLUMNS, "expected_contrast"]), flags


def _stenosis_inputs(levels_path, sagittal_path) -> dict:
    """Level points or the sagittal scan of the stenosis task, read (and checked) before the slow part."""
    from .stenosis.levels import read_level_points

    points = read_level_points(levels_path) if levels_path is not None else None
    sagittal = read_image(sagittal_path) if sagittal_path is not None and points is None else None
    if sagittal is not None:
        check_volume(sagittal, str(sagittal_path))
    return {"level_points": points, "sagittal": sagittal}


def _write_stenosis_tables(out, names: dict, result: SegmentationResult) -> tuple[dict[str, Path], dict]:
    """``<stem>_stenosis.csv`` (one row per level L1-L2 ... L5-S1) and the levels as Slicer markups,
    from which ``spineai measure`` and the Slicer module re-measure a corrected label map."""
    from .measure.stenosis import STENOSIS_COLUMNS, stenosis_flags, stenosis_table
    from .stenosis.levels import level_markups, levels_from_records

    levels, problems = levels_from_records(result.sidecar["disc_levels"])
    rows = stenosis_table(result.mask, levels, problems)
    written = {
        "table": out.write_csv(rows, names["table"], STENOSIS_COLUMNS),
        "levels": out.write_json(level_markups(levels), f"{names['stem']}_stenosis_levels.mrk.json"),
    }
    return written, stenosis_flags(rows)


def _dicom_source(image_path, image: sitk.Image):
    """The source series of a DICOM input, checked before the slow part (optional extra, folder input)."""
    from .dicom import require_dicom_extra

    require_dicom_extra()
    from .dicom.series import read_source_series

    return read_source_series(image_path, image)
