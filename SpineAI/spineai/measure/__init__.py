"""Clinical measurements from masks. ``measure_mask_files`` is the file-level entry point (CLI ``spineai measure``).

* ``cord``: cord morphometry per axial slice and per vertebral level (SCT sct_process_segmentation).
* ``centerline``: the cord centreline and its angles.
* ``levels``: vertebral level of each slice from a labelled cord or disc points.
* ``compression``: normalised compression ratio (MSCC-style).
* ``lesion``: spinal cord injury lesion metrics (SCT sct_analyze_lesion).
* ``tumor``: spinal tumour size, extent and compartment.
* ``stenosis``: dural sac area, CSF and root fractions and grades per lumbar disc level.
"""

from __future__ import annotations

from pathlib import Path

import SimpleITK as sitk

from ..io import OutputSet, image_stem, read_image
from .checks import check_label_map, check_mask
from .cord import LEVEL, MORPHOMETRY_COLUMNS, aggregate_per_level, cord_morphometry


def measure_mask_files(mask_path, out_dir, image_path=None, levels_path=None) -> dict:
    """Measure a cord mask file and write ``<stem>_cord_morphometry.csv`` (+ ``_per_level.csv`` with levels).

    All inputs are checked first (``InputError`` naming the file: not binary, empty, not on the
    image's or labels' grid); the CSV files are written all-or-nothing. Returns
    {"per_slice": path, "per_level": path (only with levels)}.
    """
    mask = read_image(mask_path)
    check_mask(mask, mask_path, read_image(image_path) if image_path is not None else None)
    levels = read_image(levels_path) if levels_path is not None else None
    with OutputSet(Path(out_dir)) as out:
        return write_morphometry(out, image_stem(mask_path), mask, levels, levels_path)


def measure_findings_file(task: str, labels_path, out_dir, image_path=None, levels_path=None) -> dict:
    """Measure a lesion or tumour label map (e.g. a corrected ``_<task>_seg``) into ``<stem>_<task>.csv``.

    The image, when given, is checked to share the map's grid and gives the tumour's enhancement
    ratio; levels (tumour) give the vertebral levels spanned. Returns {"table": path, "flags": ...}.
    """
    labels = read_image(labels_path)
    image = read_image(image_path) if image_path is not None else None
    check_label_map(labels, task, labels_path, image)
    if task == "stenosis":
        return _measure_stenosis(labels, labels_path, levels_path, out_dir)
    if task == "lesion":
        from .lesion import LESION_COLUMNS as columns
        from .lesion import lesion_table

        rows, flags = lesion_table(labels)
    else:
        from .tumor import TUMOR_COLUMNS as columns
        from .tumor import tumor_table

        rows, flags = tumor_table(labels, image, read_image(levels_path) if levels_path is not None else None)
    with OutputSet(Path(out_dir)) as out:
        return {"table": out.write_csv(rows, f"{image_stem(labels_path)}_{task}.csv", columns), "flags": flags}


def _measure_stenosis(labels, labels_path, levels_path, out_dir) -> dict:
    """The per-level table of a (corrected) stenosis label map at the levels the segmentation wrote."""
    from ..errors import InputError
    from ..stenosis.levels import read_level_points, with_normals
    from ..stenosis.segment import assessment_problems
    from .stenosis import STENOSIS_COLUMNS, stenosis_flags, stenosis_table

    if levels_path is None:
        raise InputError(
            labels_path, "the stenosis table needs the disc levels: --levels <stem>_stenosis_levels.mrk.json"
        )
    levels = with_normals(read_level_points(levels_path))
    rows = stenosis_table(labels, levels, assessment_problems(labels, levels))
    flags = stenosis_flags(rows)
    stem = image_stem(labels_path).removesuffix("_stenosis_seg")
    with OutputSet(Path(out_dir)) as out:
        return {"table": out.write_csv(rows, f"{stem}_stenosis.csv", STENOSIS_COLUMNS), "flags": flags}


def morphometry_tables(mask, levels=None, levels_source="levels") -> dict[str, list[dict]]:
    """{"per_slice": rows, "per_level": rows (only with levels)}; no rows when the mask is empty (no cord found)."""
    cord_found = bool(sitk.GetArrayViewFromImage(mask).any())
    rows = cord_morphometry(mask, levels, levels_source=levels_source) if cord_found else []
    return {"per_slice": rows} | ({"per_level": aggregate_per_level(rows)} if levels is not None else {})


def write_morphometry(out: OutputSet, stem: str, mask, levels=None, levels_source="levels", tables=None) -> dict:
    """Add ``<stem>_cord_morphometry.csv`` (and ``_per_level.csv`` with levels) to an open ``OutputSet``.

    An empty mask (no cord found) gives a header-only table rather than an error, so a failed
    segmentation is reported, not hidden. ``tables``: ``morphometry_tables`` already computed for
    other outputs of the same mask (the DICOM SR), so the slow part runs once.
    """
    columns = [c for c in MORPHOMETRY_COLUMNS if levels is not None or c != LEVEL]
    tables = tables if tables is not None else morphometry_tables(mask, levels, levels_source)
    written = {"per_slice": out.write_csv(tables["per_slice"], f"{stem}_cord_morphometry.csv", columns)}
    if levels is not None:
        written["per_level"] = out.write_csv(tables["per_level"], f"{stem}_cord_morphometry_per_level.csv", columns)
    return written
