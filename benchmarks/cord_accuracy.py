"""Fit check of the shipped cord model on every labelled scan it was trained on.

The shipped model trains on every scan of SpineAI/spineai/training/cord_cases.csv, so these figures
say how well it fits its own training data, not how well it does on a new subject: that is
``benchmarks/cord_crossval.py`` (cross-validation by subject). Each scan is segmented with
`spineai.pipeline.segment` exactly as users run it and compared with its manual mask in the input
geometry: Dice, IoU, precision, recall per scan and the median per dataset/contrast.

Usage: python benchmarks/cord_accuracy.py [--data DIR]
Writes benchmarks/results/cord_accuracy.json and prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
from pathlib import Path

from spineai.io import read_image
from spineai.metrics import annotated_range, dice, iou, precision, recall
from spineai.models.registry import model_for_task
from spineai.orientation import canonical_array, to_canonical
from spineai.pipeline import segment
from spineai.training.cases import BUILTIN_MANIFESTS, read_manifest

RESULTS = Path(__file__).resolve().parent / "results"


def evaluate(case) -> dict:
    """Metrics over the whole scan, and over the axial slices the annotator labelled."""
    image = read_image(case.image)
    prediction = canonical_array(to_canonical(segment(image, device="cpu").mask)) > 0
    truth = canonical_array(to_canonical(read_image(case.mask))) > 0.5
    labelled = annotated_range(truth)
    row = {
        "scan": str(case.image).split("data/")[-1],
        "subject": case.subject,
        "split": "fit check",  # the shipped model trained on every scan
        "dataset": case.dataset,
        "contrast": case.contrast,
        "plane": case.plane,
    }
    for name, metric in (("dice", dice), ("iou", iou), ("precision", precision), ("recall", recall)):
        row[name] = round(metric(prediction, truth), 4)
    row["dice_annotated_slices"] = round(dice(prediction[labelled], truth[labelled]), 4)
    return row


def medians(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["split"], row["dataset"], row["contrast"], row["plane"]), []).append(row)
    return [
        {
            "split": k[0],
            "dataset": k[1],
            "contrast": k[2],
            "plane": k[3],
            "n": len(v),
            "median_dice": round(statistics.median(r["dice"] for r in v), 4),
            "median_dice_annotated_slices": round(statistics.median(r["dice_annotated_slices"] for r in v), 4),
        }
        for k, v in sorted(groups.items())
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SPINEAI_DATA", "../shared/data")))
    args = parser.parse_args()
    spec = model_for_task("cord")
    rows = [evaluate(case) for case in read_manifest(BUILTIN_MANIFESTS["cord"], args.data)]
    what = "fit check: the shipped model trained on every one of these scans (accuracy: cord_crossval.json)"
    report = {"what": what, "model": spec.name, "sha256": spec.sha256, "cases": rows, "summary": medians(rows)}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "cord_accuracy.json").write_text(json.dumps(report, indent=2) + "\n")
    print_table(
        ["split", "dataset", "contrast", "plane", "n", "median_dice", "median_dice_annotated_slices"], report["summary"]
    )
    print()
    print_table(["scan", "split", "dice", "dice_annotated_slices", "iou", "precision", "recall"], rows)


def print_table(columns: list[str], rows: list[dict]) -> None:
    """Markdown table; floats with three decimals."""
    print("| " + " | ".join(columns) + " |\n|" + "---|" * len(columns))
    for row in rows:
        cells = [f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
