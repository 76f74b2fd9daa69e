"""Cross-validated Dice of the cord recipe: every labelled scan scored by a model that never saw its subject.

The manifest's ``fold`` column (SpineAI/spineai/training/cord_cases.csv) puts each subject in one
of four folds, one sagittal T2w subject and the two T1w scans in different folds. For each fold a
network is trained on the other three (``spineai train --fold K``, same recipe and seed as the
shipped model) and its fold's scans are segmented exactly as ``spineai segment`` does, through
that fold's ONNX model. Reports Dice, precision and recall per scan and medians per
dataset/contrast, the mean CSA of each mask against the manual mask's (on the slices both hold),
and the CSA test-retest of gm-challenge sub-10062 (two sessions, held out together).

``--baseline DIR`` scores a previous cord model (e.g. the one shipped before) on the same scans in
the same run; it trained on some of them, so its rows carry ``baseline_saw_subject``.

Usage:
  python benchmarks/cord_crossval.py train --fold 0 --runs runs/cord-cv [--recipe R]  # one fold (or: all)
  python benchmarks/cord_crossval.py evaluate --runs runs/cord-cv [--recipe R] [--baseline runs/cord-old]
  python benchmarks/cord_crossval.py ship --runs runs/cord-cv --recipe R   # fold-all becomes the shipped model
Writes benchmarks/results/cord_crossval.json (one entry per recipe evaluated) and prints a table.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
from dataclasses import replace
from pathlib import Path

from spineai.io import read_image
from spineai.measure.cord import SLICE, cord_morphometry
from spineai.metrics import annotated_range, dice, precision, recall
from spineai.models.registry import model_for_task
from spineai.orientation import canonical_array, to_canonical
from spineai.pipeline import segment
from spineai.tasks.base import TaskInputs
from spineai.training.cases import BUILTIN_MANIFESTS, hold_out_fold, read_manifest

RESULT = Path(__file__).resolve().parent / "results" / "cord_crossval.json"


# The recipes compared: the one the model shipped before (gamma 0.6-1.6, 4000 steps) and the one
# with a wider gamma and slice drift (``augment.CORD_CONTRAST``). Both see slices beyond 7.5 mm
# without neighbours.
RECIPES = {"narrow-gamma": ({}, 4000), "wide-gamma-drift": (None, 3000)}


def train_fold(fold: str, runs: Path, data: Path, iterations: int, recipe: str) -> None:
    import torch

    from spineai.training.train import CORD_SPEC, train

    torch.set_num_threads(int(os.environ.get("SPINEAI_TRAIN_THREADS", "1")))
    cases = hold_out_fold(read_manifest(BUILTIN_MANIFESTS["cord"], data), None if fold == "all" else fold)
    contrast, steps = RECIPES[recipe]
    iterations = iterations or steps
    train(cases, runs / f"fold-{fold}", iterations, spec=CORD_SPEC, validate_every=iterations, contrast=contrast)


def score(case, model_dir: Path) -> dict:
    mask = segment(read_image(case.image), device="cpu", inputs=TaskInputs(model_dir=model_dir)).mask
    prediction = canonical_array(to_canonical(mask)) > 0
    manual = read_image(case.mask)
    truth = canonical_array(to_canonical(manual)) > 0.5
    labelled = annotated_range(truth)
    row = {
        "scan": str(case.image).split("data/")[-1],
        "subject": case.subject,
        "fold": case.fold,
        "dataset": case.dataset,
        "contrast": case.contrast,
        "plane": case.plane,
    }
    for name, metric in (("dice", dice), ("precision", precision), ("recall", recall)):
        row[name] = round(metric(prediction, truth), 4)
    row["dice_annotated_slices"] = round(dice(prediction[labelled], truth[labelled]), 4)
    return row | csa_agreement(mask, manual)


def mean_csa(mask) -> dict[int, float]:
    """CSA (mm2, angle-corrected) per axial slice of a cord mask; {} for an empty one."""
    found = canonical_array(to_canonical(mask)).any()
    return {int(r[SLICE]): float(r["MEAN(area)"]) for r in cord_morphometry(mask > 0)} if found else {}


def csa_agreement(mask, manual) -> dict:
    """Mean CSA of the mask and of the manual mask over the slices both hold, and their relative difference."""
    model, truth = mean_csa(mask), mean_csa(manual > 0)
    common = [z for z in truth if z in model and model[z] == model[z] and truth[z] == truth[z]]
    if not common:
        return {"csa_slices": 0}
    ours, theirs = (statistics.fmean(csa[z] for z in common) for csa in (model, truth))
    return {
        "csa_slices": len(common),
        "csa_mm2": round(ours, 2),
        "csa_manual_mm2": round(theirs, 2),
        "csa_error_percent": round(100 * (ours - theirs) / theirs, 2),
    }


def test_retest(rows: list[dict]) -> dict:
    """Mean CSA of sub-10062's two sessions (the same person), from the model and from the manual masks."""
    sessions = sorted((r for r in rows if r["subject"] == "10062"), key=lambda r: r["scan"])
    model, manual = ([r[key] for r in sessions] for key in ("csa_mm2", "csa_manual_mm2"))
    return {
        "scans": [r["scan"] for r in sessions],
        "model_csa_mm2": model,
        "model_difference_percent": round(100 * abs(model[0] - model[1]) / statistics.fmean(model), 2),
        "manual_csa_mm2": manual,
        "manual_difference_percent": round(100 * abs(manual[0] - manual[1]) / statistics.fmean(manual), 2),
    }


def summary(rows: list[dict]) -> list[dict]:
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((row["dataset"], row["contrast"], row["plane"]), []).append(row)
    return [
        {
            "dataset": key[0],
            "contrast": key[1],
            "plane": key[2],
            "n": len(group),
            **{
                f"median_{name}": round(statistics.median(r[name] for r in group), 4)
                for name in ("dice", "dice_annotated_slices", "precision", "recall")
            },
        }
        for key, group in sorted(groups.items())
    ]


def with_shipped_inference(folder: Path) -> None:
    """Give a fold's record the shipped record's inference settings (locating the cord first, the
    slice spacing beyond which neighbours are not used): settings of the code path, not of the
    weights, so every fold is scored as ``spineai segment`` runs the shipped model today."""
    shipped = model_for_task("cord")
    spec = replace(
        model_for_task("cord", folder),
        locate_every=shipped.locate_every,
        locate_margin_mm=shipped.locate_margin_mm,
        context_max_spacing_mm=shipped.context_max_spacing_mm,
    )
    spec.write(folder)


def evaluate(runs: Path, data: Path, recipe: str, baseline: Path | None) -> dict:
    """Score every scan with its fold's model; the report joins the recipes already in the results."""
    cases = read_manifest(BUILTIN_MANIFESTS["cord"], data)
    for folder in [runs / f"fold-{fold}" for fold in sorted({case.fold for case in cases})] + [baseline]:
        if folder is not None:
            with_shipped_inference(folder)
    rows = [score(case, runs / f"fold-{case.fold}") for case in cases]
    results = json.loads(RESULT.read_text()) if RESULT.exists() else {}
    results["what"] = "4-fold cross-validation by subject over every labelled cord scan in ../shared/data"
    results.setdefault("recipes", {})[recipe] = {
        "training": json.loads((runs / "fold-0" / "metrics.json").read_text())["training"],
        "cases": rows,
        "summary": summary(rows),
        "median_dice_by_plane_and_contrast": by_plane_and_contrast(rows),
        "median_abs_csa_error_percent": median_abs_csa_error(rows),
        "test_retest": test_retest(rows),
    }
    results["recipes_compared"] = len(results["recipes"])
    results["peer"] = propseg(data)
    if baseline is not None:
        trained_on = {c["subject"] for c in json.loads((baseline / "metrics.json").read_text())["train_cases"]}
        old = [score(case, baseline) | {"baseline_saw_subject": case.subject in trained_on} for case in cases]
        results["baseline"] = {
            "what": "the cord model shipped before (one split): a fit check on its training subjects",
            "model_sha256": model_for_task("cord", baseline).sha256,
            "cases": old,
            "median_dice_by_plane_and_contrast": by_plane_and_contrast(old),
            "median_abs_csa_error_percent": median_abs_csa_error(old),
            "test_retest": test_retest(old),
        }
    RESULT.write_text(json.dumps(results, indent=2) + "\n")
    return results["recipes"][recipe]


def propseg(data: Path) -> dict:
    """The Spinal Cord Toolbox's PropSeg on errsm_18's sagittal T2 (its output ships with the data)."""
    folder = data / "sct-legacy/errsm_18/t2"
    found, truth = (
        canonical_array(to_canonical(read_image(folder / name))) > 0.5
        for name in ("t2_segmentation_PropSeg.nii.gz", "t2_manual_segmentation.nii.gz")
    )
    scores = {
        name: round(metric(found, truth), 4)
        for name, metric in (("dice", dice), ("precision", precision), ("recall", recall))
    }
    return {"scan": "sct-legacy/errsm_18/t2/t2.nii.gz", "method": "SCT PropSeg"} | scores


def ship(runs: Path, recipe: str) -> None:
    """Install the recipe's model trained on every scan (``fold-all``) as the shipped cord model, its
    record carrying the recipe's cross-validated medians per plane and contrast (``input_check``)."""
    from spineai.models.registry import MODELS_DIR

    results = json.loads(RESULT.read_text())
    report = results["recipes"][recipe]
    counts: dict[str, int] = {}
    for row in report["cases"]:
        counts[f"{row['plane']} {row['contrast']}"] = counts.get(f"{row['plane']} {row['contrast']}", 0) + 1
    measured = tuple(
        {"plane": key.split()[0], "contrast": key.split()[1], "median_dice": dice, "scans": counts[key]}
        for key, dice in report["median_dice_by_plane_and_contrast"].items()
    )
    shipped = model_for_task("cord")
    trained = model_for_task("cord", runs / "fold-all")
    for path in (trained.weights_path, trained.onnx_path):
        shutil.copyfile(path, MODELS_DIR / path.name)
    record = replace(
        trained,
        locate_every=shipped.locate_every,
        locate_margin_mm=shipped.locate_margin_mm,
        context_max_spacing_mm=shipped.context_max_spacing_mm,
        measured=measured,
        folder=MODELS_DIR,
    )
    record.write(MODELS_DIR)
    model_for_task("cord")  # checks both checksums
    results["shipped"] = {"recipe": recipe, "model_sha256": record.sha256, "trained_on": "every scan (fold-all)"}
    RESULT.write_text(json.dumps(results, indent=2) + "\n")


def by_plane_and_contrast(rows: list[dict]) -> dict:
    groups: dict[str, list[float]] = {}
    for row in rows:
        groups.setdefault(f"{row['plane']} {row['contrast']}", []).append(row["dice"])
    return {key: round(statistics.median(values), 4) for key, values in sorted(groups.items())}


def median_abs_csa_error(rows: list[dict]) -> float:
    return round(statistics.median(abs(r["csa_error_percent"]) for r in rows if r["csa_slices"]), 2)


def print_table(report: dict) -> None:
    print("| scan | fold | contrast, plane | Dice | Dice, annotated slices | precision | recall |")
    print("|---|---|---|---|---|---|---|")
    for r in report["cases"]:
        print(
            f"| {r['scan']} | {r['fold']} | {r['contrast']} {r['plane']} | {r['dice']:.3f} | "
            f"{r['dice_annotated_slices']:.3f} | {r['precision']:.3f} | {r['recall']:.3f} |"
        )
    print(json.dumps(report["median_dice_by_plane_and_contrast"], indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=["train", "evaluate", "ship"])
    parser.add_argument("--runs", type=Path, required=True, help="one folder per fold: fold-0 ... fold-3, fold-all")
    parser.add_argument("--fold", help="train: the fold to hold out, or 'all' for the model that uses every scan")
    parser.add_argument("--recipe", choices=sorted(RECIPES), default="wide-gamma-drift")
    parser.add_argument("--iterations", type=int, help="default: the recipe's")
    parser.add_argument("--baseline", type=Path, help="evaluate: a previous cord model folder to score alongside")
    parser.add_argument("--data", type=Path, default=Path(os.environ.get("SPINEAI_DATA", "../shared/data")))
    args = parser.parse_args()
    if args.action == "train":
        train_fold(args.fold, args.runs, args.data, args.iterations, args.recipe)
    elif args.action == "evaluate":
        print_table(evaluate(args.runs, args.data, args.recipe, args.baseline))
    else:
        ship(args.runs, args.recipe)


if __name__ == "__main__":
    main()
