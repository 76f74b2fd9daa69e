"""Clinical measurements from masks. ``measure_file`` is the file-level entry point (CLI ``spineai measure``);
each task (``spineai.tasks``) says which of these modules measure its label map.

* ``cord``: cord morphometry per axial slice and per vertebral level (SCT sct_process_segmentation).
* ``centerline``: the cord centreline and its angles.
* ``levels``: vertebral level of each slice from a labelled cord or disc points.
* ``compression``: normalised compression ratio (MSCC-style).
* ``lesion``: spinal cord injury lesion metrics (SCT sct_analyze_lesion).
* ``tumor``: spinal tumour size, extent and compartment.
* ``stenosis``: dural sac area, CSF and root fractions and grades per lumbar disc level.

Definitions, formulas and their sources: ``docs/measurements.md``.
"""

from __future__ import annotations

from pathlib import Path

from ..io import OutputSet, image_stem, read_image


def measure_file(
    labels_path, out_dir, task: str = "cord", image_path=None, vertebral_levels_path=None, disc_levels_path=None
) -> tuple[dict, dict]:
    """Measure a label map file of ``task`` (e.g. a corrected ``<stem>_<task>_seg``) into its tables.

    All inputs are checked first (``InputError`` naming the file: values the task's label maps do
    not hold, empty, not on the image's or levels' grid); the tables are written all-or-nothing as
    ``<stem>_<table>.csv``, ``<stem>`` being the file's stem less ``_<task>_seg``. The image, where
    given, gives the tumour's enhancement ratio. Returns ({table kind: path}, the measurement's flags).
    """
    from ..pipeline import read_inputs, write_tables
    from ..tasks import get_task
    from .checks import check_label_map

    info = get_task(task)
    labels = read_image(labels_path)
    image = read_image(image_path) if image_path is not None else None
    check_label_map(labels, info, labels_path, image)
    inputs = read_inputs(vertebral_levels_path, disc_levels_path)
    missing = sorted(info.measure_needs - inputs.given())
    if missing:
        from ..errors import InputError

        flag = "--" + missing[0].replace("_", "-")
        raise InputError(labels_path, f"the {task} tables need {flag} ({info.measure_needs_hint})")
    tables, flags = info.measure(labels, image, inputs)
    stem = image_stem(labels_path).removesuffix(f"_{info.output_suffix}")
    with OutputSet(Path(out_dir)) as out:
        return write_tables(out, stem, tables), flags
