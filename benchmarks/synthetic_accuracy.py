"""Accuracy of the lesion and tumour tasks on SYNTHETIC targets in held-out real scans.

No real spinal cord injury lesion or spinal tumour labels exist in SpineAI's shared data, so this
is not a clinical accuracy. The test set: every scan of split "val" of the task's manifest
(subjects training never saw) with lesions / tumours painted in by
``spineai.training.synthetic_lesions`` / ``synthetic_tumors`` under seeds training never used
(``TEST_SEED + k``), of a shape family training never draws (lobulated), plus the same scans
without. Each is segmented end to end as users run it
(``spineai.pipeline.segment(image, task)``: cord network, then the task's network) and compared
with the painted truth: voxel Dice, IoU, precision, recall per scan, component-wise detection
(precision, recall, F1), and the volume found against the painted volume.

Lesion task only: the real MS axial T2 (``unlabelled/t2_ms_axial``, lesions visible, no labels) is
segmented and what was found is recorded, with a picture in docs/images/.

Usage: python benchmarks/synthetic_accuracy.py --task lesion|tumor [--data DIR] [--copies 3] [--record]
       (--record: write the medians per plane and contrast into the shipped record, for the input check)
       [--model DIR --results FILE]   (a candidate model folder of the task's network, not the shipped one)
Writes benchmarks/results/<task>_accuracy.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import statistics
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from cord_accuracy import print_table  # benchmarks/ is on the path when run as a script

from spineai.io import read_image
from spineai.measure.lesion import lesion_table
from spineai.metrics import annotated_range, dice, iou, lesion_detection, precision, recall
from spineai.models.registry import model_for_task
from spineai.orientation import canonical_array, spacing_zyx, to_canonical
from spineai.pipeline import segment
from spineai.tasks import TASKS, TaskInputs
from spineai.training.cases import BUILTIN_MANIFESTS, read_manifest
from spineai.training.synthetic_data import SYNTHETIC_TASKS, TEST_SEED, synthetic_test_scans

RESULTS = Path(__file__).resolve().parent / "results"
PICTURE = Path(__file__).resolve().parent.parent / "docs" / "images" / "lesion_ms_axial.png"


def evaluate(scan, copy: int, task: str, model_dir: Path | None = None) -> dict:
    result = segment(scan.image, task, device="cpu", inputs=TaskInputs(model_dir=model_dir))
    labels = canonical_array(to_canonical(result.mask))
    prediction, truth = TASKS[task].segment_mask(labels, 2), scan.target > 0
    cord = labels > 0 if task == "lesion" else TASKS[task].segment_mask(labels, 1)  # a lesion is cord too
    voxel_mm3 = math.prod(spacing_zyx(scan.image))
    labelled = annotated_range(scan.cord)  # some manual cord masks cover a slab only
    row = {
        "scan": scan.case.image.name,
        "copy": copy,
        "group": f"{scan.case.dataset}/{scan.case.contrast}/{scan.case.plane}",
        "painted": "yes" if truth.any() else "no",
        "true_volume_mm3": round(float(truth.sum()) * voxel_mm3, 1),
        "predicted_volume_mm3": round(float(prediction.sum()) * voxel_mm3, 1),
        "cord_dice_annotated_slices": round(dice(cord[labelled], scan.cord[labelled]), 4),
    }
    for name, metric in (("dice", dice), ("iou", iou), ("precision", precision), ("recall", recall)):
        row[name] = round(metric(prediction, truth), 4)
    row.update({k: round(v, 4) for k, v in lesion_detection(prediction, truth).items()})
    return row


# A plane and contrast below this median Dice is called not supported (``spineai.input_check``):
# the target for both tasks, SCIseg's real-data lesion Dice being 0.61.
SUPPORTED_FROM = 0.6
TARGETS = {"lesion": "lesions", "tumor": "tumours"}


def measured_rows(rows: list[dict], task: str) -> list[dict]:
    """The record's ``measured``: median Dice of the painted scans per plane and contrast."""
    groups: dict[tuple[str, str], list[float]] = {}
    for row in rows:
        if row["painted"] == "yes":
            _, contrast, plane = row["group"].split("/")
            groups.setdefault((plane, contrast), []).append(row["dice"])
    figure = f"median Dice on synthetic {TARGETS[task]} in held-out scans"
    return [
        {"plane": plane, "contrast": contrast, "median_dice": round(statistics.median(dice), 4), "scans": len(dice)}
        | {"figure": figure, "supported_from": SUPPORTED_FROM}
        for (plane, contrast), dice in sorted(groups.items())
    ]


def summary(rows: list[dict]) -> list[dict]:
    """Medians per group of painted scans; unpainted scans: how many got a false finding."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["group"], []).append(row)
    table = []
    for group, members in sorted(groups.items()):
        painted = [r for r in members if r["painted"] == "yes"]
        clean = [r for r in members if r["painted"] == "no"]
        true_lesions = sum(r["true_lesions"] for r in painted)
        found = sum(round(r["lesion_recall"] * r["true_lesions"]) for r in painted)
        predicted = sum(r["predicted_lesions"] for r in painted)
        correct = sum(round(r["lesion_precision"] * r["predicted_lesions"]) for r in painted)
        p, r = (correct / predicted if predicted else 0.0), (found / true_lesions if true_lesions else 0.0)
        table.append(
            {
                "group": group,
                "painted_scans": len(painted),
                "median_dice": _median(painted, "dice"),
                "median_precision": _median(painted, "precision"),
                "median_recall": _median(painted, "recall"),
                "painted_targets": true_lesions,
                "detection_f1_pooled": round(2 * p * r / (p + r), 4) if p + r else 0.0,
                "median_volume_error_pct": _median(
                    [
                        {"e": 100 * (x["predicted_volume_mm3"] - x["true_volume_mm3"]) / x["true_volume_mm3"]}
                        for x in painted
                    ],
                    "e",
                ),
                "unpainted_scans": len(clean),
                "unpainted_with_false_finding": sum(r["predicted_lesions"] > 0 for r in clean),
            }
        )
    return table


def _median(rows, key):
    values = [r[key] for r in rows if not (isinstance(r[key], float) and math.isnan(r[key]))]
    return round(statistics.median(values), 4) if values else float("nan")


def real_ms_scan(data: Path, model_dir: Path | None = None, picture: Path = PICTURE) -> dict:
    """Segment the real MS axial T2 and record what the lesion task finds there (no truth exists);
    its picture goes to ``picture`` (the docs' for the shipped model)."""
    path = data / "unlabelled" / "t2_ms_axial.nii.gz"
    image = read_image(path)
    result = segment(image, "lesion", device="cpu", inputs=TaskInputs(model_dir=model_dir))
    rows, flags = lesion_table(result.mask)
    write_picture(image, result.mask, picture)
    return {"scan": "unlabelled/t2_ms_axial.nii.gz", "flags": flags, "rows": rows, "picture": picture.name}


def write_picture(image: sitk.Image, labels: sitk.Image, path: Path) -> None:
    """Axial slices through the found lesions (or the cord's middle), each plain and with the overlay."""
    from spineai.report.png import write_png

    array = canonical_array(to_canonical(image), np.float32)
    label_array = canonical_array(to_canonical(labels))
    slices = np.flatnonzero((label_array == 2).any(axis=(1, 2)))
    if slices.size == 0:
        slices = np.flatnonzero((label_array >= 1).any(axis=(1, 2)))
    chosen = slices[np.linspace(0, len(slices) - 1, min(4, len(slices))).astype(int)] if slices.size else [0]
    centre = np.argwhere(label_array >= 1).mean(axis=0) if (label_array >= 1).any() else np.array(array.shape) / 2
    half = 40  # pixels: a 55 mm field at 0.69 mm
    rows = slice(max(int(centre[1]) - half, 0), int(centre[1]) + half)
    cols = slice(max(int(centre[2]) - half, 0), int(centre[2]) + half)
    low, high = np.percentile(array, [1, 99.5])
    tiles = []
    for z in chosen:
        # Radiological view: rows anterior -> posterior, columns patient's right -> left.
        grey = np.clip((array[z, rows, cols][::-1] - low) / (high - low), 0, 1)
        label = label_array[z, rows, cols][::-1]
        plain = np.stack([grey] * 3, -1)
        overlay = plain.copy()
        overlay[label == 1] = 0.6 * overlay[label == 1] + 0.4 * np.array([0.96, 0.84, 0.19])
        overlay[label == 2] = 0.4 * overlay[label == 2] + 0.6 * np.array([1.0, 0.2, 0.1])
        tiles.append(np.concatenate([plain, overlay], axis=0))
    picture = (np.concatenate(tiles, axis=1) * 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, picture.repeat(3, axis=0).repeat(3, axis=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SPINEAI_DATA", "../shared/data")))
    parser.add_argument("--task", choices=("lesion", "tumor"), required=True)
    parser.add_argument("--copies", type=int, default=3, help="synthetic copies (seeds) of each held-out scan")
    parser.add_argument("--model", type=Path, help="a model folder of the task's network (default: the shipped one)")
    parser.add_argument("--results", type=Path, help="results file (default: results/<task>_accuracy.json)")
    parser.add_argument("--record", action="store_true", help="write the medians into the shipped record")
    args = parser.parse_args()
    val = [c for c in read_manifest(BUILTIN_MANIFESTS[args.task], args.data) if c.split == "val"]
    rows = [
        evaluate(scan, copy, args.task, args.model)
        for copy in range(args.copies)
        for scan in synthetic_test_scans(val, SYNTHETIC_TASKS[args.task], seed=TEST_SEED + copy)
    ]
    spec = model_for_task(args.task, args.model) if args.model else model_for_task(args.task)
    report = {
        "model": spec.name,
        "sha256": spec.sha256,
        "test_set": f"SYNTHETIC {args.task}s in held-out real scans (no real {args.task} labels exist here)",
        "summary": summary(rows),
        "cases": rows,
    }
    results = args.results or RESULTS / f"{args.task}_accuracy.json"
    if args.task == "lesion":  # a candidate model's picture lies beside its results, not in the docs
        picture = PICTURE if args.model is None else results.with_suffix(".png")
        report["real_ms_axial"] = real_ms_scan(args.data, args.model, picture)
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(report, indent=2, default=str) + "\n")
    if args.record:
        write_record(args.task, rows)
    print_table(list(report["summary"][0]), report["summary"])
    print()
    print_table(["scan", "copy", "painted", "dice", "lesion_f1", "true_volume_mm3", "predicted_volume_mm3"], rows)
    if "real_ms_axial" in report:
        print()
        print(json.dumps(report["real_ms_axial"]["flags"]), f"{len(report['real_ms_axial']['rows']) - 1} lesion rows")


def write_record(task: str, rows: list[dict]) -> None:
    """Give the shipped model's record the measured medians (``input_check`` reads them)."""
    from dataclasses import replace

    replace(model_for_task(task), measured=tuple(measured_rows(rows, task))).write()


if __name__ == "__main__":
    main()
