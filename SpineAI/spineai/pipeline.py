"""One call from a scan to a labelled mask: the engine entry point of every task.

``segment(image, task)`` reorients the scan to the canonical convention (see ``orientation``),
runs the task's networks (``tasks``), and returns the label map on the input's exact grid together
with a sidecar record (engine and model version, checksum, device, timing, input geometry).
``segment_file`` adds reading, the task's measurement tables and writing, all or nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from . import __version__
from .input_check import check_input, sliced_plane
from .io import OutputSet, check_volume, read_image, series_description
from .orientation import from_canonical, orientation_code, spacing_zyx, to_canonical
from .tasks import TaskInputs, get_task, output_names


@dataclass
class SegmentationResult:
    mask: sitk.Image
    task: str
    segments: list[tuple[int, str]]
    sidecar: dict = field(default_factory=dict)


def segment(
    image: sitk.Image,
    task: str = "cord",
    device: str = "auto",
    progress=None,
    should_cancel=None,
    source: str = "input image",
    inputs: TaskInputs | None = None,
) -> SegmentationResult:
    """Segment ``image`` for ``task``; the label map (uint8) has exactly the input's geometry.

    ``inputs``: what the task takes beside the scan (the stenosis task's disc levels or sagittal scan).
    """
    info = get_task(task)
    inputs = inputs or TaskInputs()
    check_inputs(info, inputs)
    check_volume(image, source)
    started = time.perf_counter()
    canonical = to_canonical(image)
    segmented = info.run(canonical, device, progress, should_cancel, inputs, source)
    canonical_labels = sitk.GetImageFromArray(segmented.labels)
    canonical_labels.CopyInformation(canonical)
    main = segmented.networks[-1]  # the task's own network; the cord network comes first where a task needs it
    sidecar = {
        "engine": "spineai",
        "engine_version": __version__,
        "task": task,
        "model": main.spec.name,
        "model_sha256": main.spec.sha256,
        "model_contrasts": list(main.spec.contrasts),
        "expected_contrast": info.expected_contrast or "any common spine MRI contrast",
        "models": [{"task": n.spec.task, "name": n.spec.name, "sha256": n.spec.sha256} for n in segmented.networks],
        "device": str(main.device),
        "model_folder": str(main.spec.folder),  # the shipped models' folder, or a site model's
        "seconds": round(time.perf_counter() - started, 3),
        "labels": {str(value): name for value, name in info.segments},
        "input_geometry": geometry_record(image),
        "voxels_segmented": int(np.count_nonzero(segmented.labels)),
        **segmented.details,
    }
    # The plane and contrast held against the model's measured figures; ``source`` is the file name,
    # DICOM series description or Slicer volume name, where a contrast is usually stated.
    check = check_input(main.spec, sliced_plane(spacing_zyx(canonical), canonical.GetSize()[::-1]), source)
    if check:
        sidecar["input_check"] = check
    return SegmentationResult(from_canonical(canonical_labels, image), task, list(info.segments), sidecar)


def check_inputs(info, inputs: TaskInputs) -> None:
    """Refuse an input the task does not take (e.g. a sagittal scan for the cord task)."""
    from .errors import SpineAIError

    for name in sorted(inputs.given() - info.inputs):
        flag = "--" + name.replace("_", "-")
        raise SpineAIError(f"{flag} is not an input of the {info.name} task (it takes: {_listed(info.inputs)})")


def _listed(names) -> str:
    return ", ".join("--" + name.replace("_", "-") for name in sorted(names)) or "the scan alone"


def geometry_record(image: sitk.Image) -> dict:
    return {
        "size": list(image.GetSize()),
        "spacing_mm": [round(s, 6) for s in image.GetSpacing()],
        "origin_mm": [round(o, 6) for o in image.GetOrigin()],
        "direction": [round(d, 6) for d in image.GetDirection()],
        "orientation": orientation_code(image),
    }


def read_inputs(vertebral_levels_path=None, disc_levels_path=None, sagittal_path=None) -> TaskInputs:
    """The task's extra inputs read from files, checked before the slow part."""
    from .stenosis.levels import read_level_points

    inputs = TaskInputs()
    if vertebral_levels_path is not None:
        inputs.vertebral_levels = read_image(vertebral_levels_path)
        inputs.vertebral_levels_source = str(vertebral_levels_path)
    if disc_levels_path is not None:
        inputs.disc_levels = read_level_points(disc_levels_path)
    if sagittal_path is not None:
        inputs.sagittal = read_image(sagittal_path)
        check_volume(inputs.sagittal, str(sagittal_path))
    return inputs


def segment_file(
    image_path,
    out_dir,
    task: str = "cord",
    device: str = "auto",
    progress=None,
    *,
    vertebral_levels_path=None,
    disc_levels_path=None,
    sagittal_path=None,
    dicom_seg: bool = False,
    model_dir=None,
    input_name: str | None = None,
) -> dict[str, Path]:
    """Read a scan, segment and measure it, and write mask + measurements + sidecar all-or-nothing.

    ``vertebral_levels_path``: vertebral levels on the scan's grid (labelled cord or disc points) for
    per-level tables; ``disc_levels_path``: the stenosis task's disc levels as points (Slicer markups
    JSON or SCT disc labels 21-25 on any grid), ``sagittal_path`` a sagittal T2 to find them on.
    ``dicom_seg``: the input is a DICOM series folder; also write the mask as DICOM SEG and the
    measurements as DICOM SR referencing it (``spineai.dicom``). ``model_dir``: a model folder of
    the task (a site model) instead of the shipped model. ``input_name``: what the sidecar records as
    the input instead of the path (``spineai pacs``: the series' DICOMweb URL, since the pulled copy
    is removed). Returns the written paths by kind.
    """
    from .measure.levels import check_levels

    info = get_task(task)
    if dicom_seg:
        check_dicom_output(task)
    image = read_image(image_path)
    inputs = read_inputs(vertebral_levels_path, disc_levels_path, sagittal_path)
    check_inputs(info, inputs)
    if model_dir is not None:
        check_model_folder(task, model_dir)
        inputs.model_dir = Path(model_dir).resolve()
    if inputs.vertebral_levels is not None:
        check_levels(inputs.vertebral_levels, image, vertebral_levels_path)  # fail before the slow part
    if inputs.disc_levels:
        inputs.sagittal = None  # points given win over a scan to find them on
    source_series = _dicom_source(image_path, image) if dicom_seg else None
    description = series_description(image_path)
    source = f"{image_path} ({description})" if description else str(image_path)
    result = segment(image, task, device, progress, source=source, inputs=inputs)
    tables, flags = info.measure_result(result, image, inputs)
    names = output_names(image_path, task)
    levels_path = vertebral_levels_path or disc_levels_path
    sidecar = {
        **result.sidecar,
        "cord_found": info.cord_found(sitk.GetArrayViewFromImage(result.mask), flags),
        "input": input_name or str(Path(image_path).resolve()),
        "levels": str(Path(levels_path).resolve()) if levels_path else None,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
    if flags:
        sidecar[task] = flags
    with OutputSet(out_dir) as out:
        written = {"mask": out.write_image(result.mask, names["mask"])}
        written |= write_tables(out, names["stem"], tables)
        for kind, (suffix, content) in info.extra_outputs(result).items():
            written[kind] = out.write_json(content, f"{names['stem']}_{suffix}")
        if source_series is not None:
            from .dicom.results import write_dicom_results

            written.update(
                write_dicom_results(out, names["stem"], source_series, result, {t.kind: t.rows for t in tables})
            )
        written["sidecar"] = out.write_json(
            {**sidecar, "outputs": {k: p.name for k, p in written.items()}}, names["sidecar"]
        )
    return written


def check_model_folder(task: str, folder) -> None:
    """Refuse a model folder without a model record of ``task`` (e.g. a site model of another task)."""
    from .errors import InputError

    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(folder, "no such model folder")
    if not (folder / f"{task}.json").is_file():
        from .tasks import TASKS

        others = sorted(p.stem for p in folder.glob("*.json") if p.stem in TASKS)
        held = f"; it holds a model of: {', '.join(others)}" if others else ""
        raise InputError(folder, f"holds no model of the {task} task{held}")


def write_tables(out: OutputSet, stem: str, tables) -> dict[str, Path]:
    """Each table as ``<stem>_<table name>.csv`` in an open ``OutputSet``, by kind."""
    return {table.kind: out.write_csv(table.rows, f"{stem}_{table.name}.csv", table.columns) for table in tables}


def check_dicom_output(task: str) -> None:
    """Before any work: the optional extra is installed and the task has a DICOM SR mapping."""
    from .dicom import require_dicom_extra

    require_dicom_extra()
    from .dicom.report_content import report_content

    report_content(task)


def _dicom_source(image_path, image: sitk.Image):
    """The source series of a DICOM input, checked before the slow part (optional extra, folder input)."""
    from .dicom import require_dicom_extra

    require_dicom_extra()
    from .dicom.series import read_source_series

    return read_source_series(image_path, image)
