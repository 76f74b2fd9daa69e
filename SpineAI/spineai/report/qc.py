"""The cohort QC report: OUT/qc/index.html, one page to review every case with the keyboard.

Per case it shows the cord mask over the scan (mid-sagittal and three axial slices, drawn on the
canonical orientation so every case looks the same way round: superior up and anterior left on
the sagittal view; anterior up and the patient's right on the left of axial views, as radiologists
read them), the key measurements, and lets the reviewer mark Pass / Fail / Artifact. Marks live
in the browser's localStorage and export to CSV. The page is one file plus PNGs beside it: no
network, no CDN, so it works on an air-gapped workstation and can be zipped and sent.
"""

from __future__ import annotations

import html
import json
import os
from datetime import datetime, timezone
from importlib import resources
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from .. import __version__
from ..cohort.layout import (
    QC_FOLDER,
    case_folder,
    find_finished_sidecar,
    read_failures,
    read_finished_sidecar,
    read_manifest,
)
from ..orientation import canonical_array, spacing_zyx, to_canonical
from ..tasks import get_task
from .png import write_png

SAGITTAL_LONG_SIDE_PX = 360
AXIAL_SIDE_PX = 180
AXIAL_FIELD_MM = 40.0  # wide enough for cord + canal at any level, small enough to see the contour
SAGITTAL_FIELD_MM = 80.0  # front to back: vertebral bodies, canal and posterior elements
MIN_SHORT_SIDE_PX, MAX_LONG_SIDE_PX = 120, 720
WINDOW_PERCENTILES = (0.5, 99.5)
FILL_RGB, FILL_ALPHA = np.array([255, 40, 40], float), 0.3
CONTOUR_RGB = np.array([255, 230, 0], np.uint8)
VIEWS_RECORD = "views.json"


# --- pictures of one case -----------------------------------------------------------------------


def render_case_views(sidecar_path, out_dir, case_id: str, image=None) -> list[dict]:
    """Write the case's overlay PNGs into OUT/qc/<case_id>/ and return their descriptions.

    ``image``: where the scan is when the sidecar's input is not a path (a series pulled from a PACS).
    """
    sidecar = read_finished_sidecar(Path(sidecar_path))
    if sidecar is None:
        raise ValueError(f"{sidecar_path}: not a finished case")
    target = Path(out_dir) / QC_FOLDER / case_id
    target.mkdir(parents=True, exist_ok=True)
    image, mask, spacing = canonical_volumes(sidecar, image)
    window = np.percentile(image, WINDOW_PERCENTILES)
    views = []
    for name, caption, plane, plane_mask, pixel_mm, long_side in case_planes(image, mask, spacing):
        grey = greyscale(plane, window)
        shape = display_shape(plane.shape, pixel_mm, long_side)
        grey, plane_mask = resize_nearest(grey, shape), resize_nearest(plane_mask, shape)
        write_png(target / f"{name}.png", np.repeat(grey[..., None], 3, axis=2))
        write_png(target / f"{name}_seg.png", overlay(grey, plane_mask))
        views.append({"name": name, "caption": caption, "plain": f"{name}.png", "overlay": f"{name}_seg.png"})
    record = {"sidecar_created": sidecar.get("created"), "model_sha256": sidecar.get("model_sha256"), "views": views}
    (target / VIEWS_RECORD).write_text(
        json.dumps(record, indent=1), encoding="utf-8"
    )  # written last: marks the set complete
    return views


def canonical_volumes(sidecar: dict, image=None) -> tuple[np.ndarray, np.ndarray, tuple[float, float, float]]:
    """Scan and mask as canonical arrays a[z, y, x] (I->S, P->A, R->L) and the spacing (z, y, x)."""
    from ..io import read_image

    image = to_canonical(read_image(image or sidecar["input"]))
    mask = to_canonical(sitk.ReadImage(str(Path(sidecar["folder"]) / sidecar["outputs"]["mask"])))
    return canonical_array(image, np.float32), canonical_array(mask) > 0, spacing_zyx(image)


def case_planes(image: np.ndarray, mask: np.ndarray, spacing):
    """(name, caption, plane, plane mask, pixel size in mm (rows, cols), long side px) for each view."""
    pz, py, px = spacing
    centre = np.argwhere(mask).mean(axis=0) if mask.any() else (np.array(image.shape) - 1) / 2
    x_mid = int(round(centre[2]))
    # Sagittal: rows superior -> inferior, columns anterior -> posterior, cropped front to back
    # around the cord (the whole height is kept: the cord's full length is what is checked).
    plane, plane_mask = image[::-1, ::-1, x_mid], mask[::-1, ::-1, x_mid]
    cols = centred_window(plane.shape[1] - 1 - centre[1], plane.shape[1], SAGITTAL_FIELD_MM / py)
    yield ("sagittal", f"sagittal, x = {x_mid}", plane[:, cols], plane_mask[:, cols], (pz, py),
           SAGITTAL_LONG_SIDE_PX)  # fmt: skip
    for index, z in enumerate(axial_slice_indices(mask)):
        # Axial: rows anterior -> posterior, columns patient's right -> left (radiological view).
        plane, plane_mask = image[z, ::-1, :], mask[z, ::-1, :]
        rows, cols = crop_window(plane_mask, centre, plane.shape, (py, px))
        yield (f"axial{index + 1}", f"axial, slice {z} (I->S)", plane[rows, cols], plane_mask[rows, cols], (py, px),
               AXIAL_SIDE_PX)  # fmt: skip


def axial_slice_indices(mask: np.ndarray) -> list[int]:
    """Three slices at 1/4, 1/2 and 3/4 of the cord's extent (of the volume when no cord was found)."""
    slices = np.flatnonzero(mask.any(axis=(1, 2)))
    first, last = (slices[0], slices[-1]) if slices.size else (0, mask.shape[0] - 1)
    return [int(round(first + (last - first) * f)) for f in (0.25, 0.5, 0.75)]


def crop_window(plane_mask: np.ndarray, centre, shape, pixel_mm) -> tuple[slice, slice]:
    """A square of AXIAL_FIELD_MM around the cord in this slice (or its 3D centre), kept inside the image."""
    if plane_mask.any():
        row, col = np.argwhere(plane_mask).mean(axis=0)
    else:
        row, col = shape[0] - 1 - centre[1], centre[2]  # rows of the plane run anterior -> posterior
    return (
        centred_window(row, shape[0], AXIAL_FIELD_MM / pixel_mm[0]),
        centred_window(col, shape[1], AXIAL_FIELD_MM / pixel_mm[1]),
    )


def centred_window(middle: float, size: int, width_px: float) -> slice:
    """``width_px`` pixels centred on ``middle``, shifted (not shrunk) to stay inside 0..size."""
    half = max(1, int(round(width_px / 2)))
    start = int(np.clip(round(middle) - half, 0, max(size - 2 * half, 0)))
    return slice(start, min(start + 2 * half, size))


def greyscale(plane: np.ndarray, window) -> np.ndarray:
    low, high = float(window[0]), float(window[1])
    scaled = (plane.astype(np.float32) - low) / (high - low if high > low else 1.0)
    return (np.clip(scaled, 0, 1) * 255).astype(np.uint8)


def display_shape(shape, pixel_mm, long_side: int) -> tuple[int, int]:
    """Output size with square pixels in mm (true anatomy proportions): longest side ``long_side``,
    unless the short side would then be under MIN_SHORT_SIDE_PX (a 16 mm sagittal strip of an axial
    acquisition): then the short side sets the scale, the long one up to MAX_LONG_SIDE_PX."""
    height_mm, width_mm = shape[0] * pixel_mm[0], shape[1] * pixel_mm[1]
    px_per_mm = max(long_side / max(height_mm, width_mm), MIN_SHORT_SIDE_PX / min(height_mm, width_mm))
    px_per_mm = min(px_per_mm, MAX_LONG_SIDE_PX / max(height_mm, width_mm))
    return max(1, int(round(height_mm * px_per_mm))), max(1, int(round(width_mm * px_per_mm)))


def resize_nearest(array: np.ndarray, shape) -> np.ndarray:
    """Nearest-neighbour resize: every displayed pixel is a real voxel value (no smoothing to hide errors)."""
    rows = np.minimum((np.arange(shape[0]) + 0.5) * array.shape[0] / shape[0], array.shape[0] - 1).astype(int)
    cols = np.minimum((np.arange(shape[1]) + 0.5) * array.shape[1] / shape[1], array.shape[1] - 1).astype(int)
    return array[np.ix_(rows, cols)]


def overlay(grey: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Greyscale -> RGB with the mask filled translucent red and its outline in yellow."""
    rgb = np.repeat(grey[..., None].astype(float), 3, axis=2)
    rgb[mask] = (1 - FILL_ALPHA) * rgb[mask] + FILL_ALPHA * FILL_RGB
    rgb = rgb.round().astype(np.uint8)
    rgb[outline(mask)] = CONTOUR_RGB
    return rgb


def outline(mask: np.ndarray) -> np.ndarray:
    """Mask pixels with a 4-neighbour outside the mask (the image border counts as outside)."""
    padded = np.pad(mask, 1)
    interior = padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    return mask & ~interior


# --- the page -----------------------------------------------------------------------------------


def write_qc_report(out_dir, task: str | None = None) -> Path:
    """Write OUT/qc/index.html for the cases of the latest run (rendering any missing pictures)."""
    out_dir = Path(out_dir).resolve()
    manifest = read_manifest(out_dir)
    task = task or manifest.get("task", "cord")
    failures = {row["case_id"]: row for row in read_failures(out_dir)}
    cases = [case_entry(out_dir, record, task, failures) for record in manifest["cases"]]
    report = {
        "task": task,
        "storage_key": f"spineai-qc:{task}:{out_dir}",  # file:// pages share one localStorage
        "generated": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "engine_version": __version__,
        "cases": cases,
    }
    page = (resources.files(__package__) / "qc_template.html").read_text(encoding="utf-8")
    page = page.replace("__TITLE__", html.escape(f"SpineAI QC: {task}, {len(cases)} cases, {out_dir.name}"))
    page = page.replace("__REPORT_JSON__", json.dumps(report).replace("<", "\\u003c"))
    target = out_dir / QC_FOLDER / "index.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".partial-{os.getpid()}-index.html")
    temporary.write_text(page, encoding="utf-8")
    os.replace(temporary, target)
    return target


def case_entry(out_dir: Path, record: dict, task: str, failures: dict) -> dict:
    """What the page shows for one case: status, error, measurements and picture paths."""
    case_id = record["case_id"]
    entry = {"id": case_id, "input": record.get("image", ""), "status": "not run", "error": "", "views": []}
    sidecar = find_finished_sidecar(case_folder(out_dir, case_id), task)
    if sidecar is None:
        if case_id in failures:
            entry |= {"status": "failed", "error": failures[case_id]["error"]}
        return entry
    info = get_task(task)
    summary = info.case_summary(case_id, sidecar)
    entry |= {"status": info.qc_status(sidecar), "input": sidecar.get("input", "")}
    entry["measurements"] = case_measurements(info, sidecar, summary)
    entry["summary"] = {k: summary.get(k, "") for k in ("mean_csa_mm2", "cord_length_mm", "slices")}
    try:
        views = current_views(out_dir, case_id, sidecar)
        entry["views"] = [
            {**v, "plain": f"{case_id}/{v['plain']}", "overlay": f"{case_id}/{v['overlay']}"} for v in views
        ]
    except Exception as error:  # a case whose scan moved away still gets its row and measurements
        entry["error"] = f"QC pictures unavailable: {type(error).__name__}: {error}"
    return entry


def current_views(out_dir: Path, case_id: str, sidecar: dict) -> list[dict]:
    """The case's pictures, re-rendered when missing or drawn from an older result."""
    target = out_dir / QC_FOLDER / case_id
    try:
        record = json.loads((target / VIEWS_RECORD).read_text(encoding="utf-8"))
        fresh = record["sidecar_created"] == sidecar.get("created") and record["model_sha256"] == sidecar.get(
            "model_sha256"
        )
        if fresh and all((target / v[k]).is_file() for v in record["views"] for k in ("plain", "overlay")):
            return record["views"]
    except (OSError, ValueError, KeyError):
        pass
    return render_case_views(sidecar["sidecar_path"], out_dir, case_id)


def case_measurements(task, sidecar: dict, summary: dict) -> list[list[str]]:
    """[label, value] pairs in reading order: the task's own (``tasks.Task.qc_measurements``), then the run facts."""
    pairs = task.qc_measurements(sidecar, summary)
    pairs += [
        ("Model", sidecar.get("model", "")),
        ("Device", sidecar.get("device", "")),
        ("Seconds", sidecar.get("seconds", "")),
        ("Engine", sidecar.get("engine_version", "")),
    ]
    return [[label, _text(value)] for label, value in pairs]


def _text(value) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return "" if value is None else str(value)
