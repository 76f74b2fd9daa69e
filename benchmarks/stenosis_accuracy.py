"""Accuracy of the stenosis task: disc levels on real scans, the sac network on phantoms, real healthy sacs.

No dural-sac masks or stenosis grades exist in SpineAI's data. What can be measured honestly:

1. Disc levels on the five real ``lumbar-ivd`` sagittal T2 scans (manual disc labels). The shipped
   network was trained on all five, so its figures there are training figures; with
   ``--leave-one-out STEPS`` five networks are trained, each without one subject, and tested on it
   (the generalisation figure). ``unlabelled/t2_lumbar_sagittal`` (never seen) is checked for
   five discs in order.
2. The sac network on axial canal PHANTOMS (``training/synthetic_canal.py``) drawn under a seed
   training never used, 30 per Schizas grade: Dice of sac and CSF, sac area error, and the grade
   the rules give on the network's masks against the grade the phantom was built to.
3. The whole task on the six real healthy lumbar scans: the dural sac area and grades it reports
   (healthy adults: grade A and a sac well over 100 mm2 expected), with a picture of one level.

Usage: python benchmarks/stenosis_accuracy.py [--data DIR] [--leave-one-out 1500]
Writes benchmarks/results/stenosis_accuracy.json and prints Markdown tables.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from cord_accuracy import print_table  # benchmarks/ is on the path when run as a script

from spineai.models.registry import model_for_task
from spineai.pipeline import segment
from spineai.stenosis.levels import find_discs, level_problems, levels_from_records
from spineai.stenosis.planes import plane_frame, plane_image, reslice
from spineai.training.canal import evaluate_sac
from spineai.training.discs import evaluate_discs, train_discs
from spineai.training.lumbar_ivd import read_lumbar_cases
from spineai.training.weights import load_model

RESULTS = Path(__file__).resolve().parent / "results"
LEAVE_ONE_OUT = RESULTS / "disc_levels_leave_one_out.json"
PICTURE = Path(__file__).resolve().parent.parent / "docs" / "images" / "stenosis_ivd46_levels.png"


def disc_levels(cases, unseen: sitk.Image, leave_one_out_steps: int | None) -> dict:
    model = load_model(model_for_task("discs"))
    result = {"shipped_model_on_training_scans": [evaluate_discs(model, case) for case in cases]}
    levels = find_discs(unseen, "cpu")
    result["unseen_t2_lumbar_sagittal"] = {
        "found": [level.name for level in levels],
        "problems": sorted(set(level_problems(levels).values())),
    }
    if leave_one_out_steps:  # ~25 minutes on 2 CPU cores; the last result is kept in LEAVE_ONE_OUT
        folds = []
        for i, held_out in enumerate(cases):
            fold_model, _ = train_discs([c for c in cases if c is not held_out], leave_one_out_steps, seed=i)
            folds.append(evaluate_discs(fold_model, held_out))
        LEAVE_ONE_OUT.write_text(json.dumps({"steps": leave_one_out_steps, "folds": folds}, indent=2) + "\n")
    if LEAVE_ONE_OUT.exists():
        result["leave_one_out"] = json.loads(LEAVE_ONE_OUT.read_text())
    return result


def real_sacs(scans: dict[str, sitk.Image]) -> list[dict]:
    rows = []
    for name, image in scans.items():
        started = time.perf_counter()
        result = segment(image, "stenosis", device="cpu")
        seconds = time.perf_counter() - started
        from spineai.measure.stenosis import stenosis_table

        levels, problems = levels_from_records(result.sidecar["disc_levels"])
        for row in stenosis_table(result.mask, levels, problems):
            rows.append({
                "scan": name,
                "level": row["level"],
                "assessable": row["assessable"],
                "dsca_mm2": round(row.get("dural_sac_area_mm2", float("nan")), 1),
                "ap_mm": round(row.get("ap_diameter_mm", float("nan")), 1),
                "csf_fraction": round(row.get("csf_fraction", float("nan")), 2),
                "schizas": row.get("schizas_grade", row.get("not_assessable_reason", "")),
                "seconds": round(seconds, 2),
            })  # fmt: skip
        if name == "ivd46":
            save_picture(image, result, levels)
    return rows


def save_picture(image, result, levels) -> None:
    """Each level's plane of ivd46 (never seen by the sac network): sac orange, CSF blue, posterior fat yellow."""
    from PIL import Image

    tiles = []
    for level in levels:
        centre, frame, _ = plane_frame(image, level.point, level.normal)
        plane = plane_image(centre, frame)
        grey = reslice(image, plane)
        grey = np.clip(grey / np.percentile(grey, 99.5), 0, 1)
        bits = reslice(result.mask, plane, sitk.sitkNearestNeighbor, sitk.sitkUInt8)
        rgb = np.repeat(grey[..., None], 3, axis=2)
        overlay = rgb.copy()
        overlay[(bits & 1) > 0] = (1.0, 0.55, 0.1)
        overlay[(bits & 3) == 3] = (0.2, 0.6, 1.0)
        overlay[(bits & 4) > 0] = (1.0, 0.95, 0.3)
        tiles.append(np.concatenate([rgb, 0.5 * rgb + 0.5 * overlay], axis=0))
    picture = (np.concatenate(tiles, axis=1) * 255).astype(np.uint8)
    PICTURE.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(picture).save(PICTURE)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = Path(os.environ.get("SPINEAI_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--data", type=Path, default=default_data)
    parser.add_argument("--leave-one-out", type=int, default=None, metavar="STEPS")
    parser.add_argument("--phantoms-per-grade", type=int, default=30)
    args = parser.parse_args()
    cases = read_lumbar_cases(args.data / "lumbar-ivd")
    unseen = sitk.ReadImage(str(args.data / "unlabelled" / "t2_lumbar_sagittal.nii.gz"))

    levels = disc_levels(cases, unseen, args.leave_one_out)
    print("## Disc levels (real scans)\n")
    for key in ("shipped_model_on_training_scans", *(["leave_one_out"] if "leave_one_out" in levels else [])):
        folds = levels[key] if key != "leave_one_out" else levels[key]["folds"]
        table = [{
            "subject": f["subject"],
            "found": len(f["found"]),
            "missing": ", ".join(f["missing"]) or "-",
            "order problems": len(f["order_problems"]),
            "median error mm": statistics.median(f["centroid_error_mm"].values() or [float("nan")]),
            "max error mm": max(f["centroid_error_mm"].values(), default=float("nan")),
        } for f in folds]  # fmt: skip
        print(f"### {key}\n")
        print_table(list(table[0]), table)
        print()
    print(f"t2_lumbar_sagittal (never seen): {levels['unseen_t2_lumbar_sagittal']}\n")

    sac = evaluate_sac(load_model(model_for_task("stenosis")), per_grade=args.phantoms_per_grade)
    print("## Sac network on held-out phantoms (synthetic)\n")
    print_table(["grade", *sac["A1"]], [{"grade": grade, **row} for grade, row in sac.items()])

    scans = {case.subject: case.image for case in cases} | {"t2_lumbar_sagittal": unseen}
    healthy = real_sacs(scans)
    print("\n## Real healthy lumbar scans (no sac labels: plausibility only)\n")
    print_table(list(healthy[0]), healthy)

    RESULTS.mkdir(exist_ok=True)
    record = {"disc_levels": levels, "sac_phantoms": sac, "real_healthy_scans": healthy}
    (RESULTS / "stenosis_accuracy.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
