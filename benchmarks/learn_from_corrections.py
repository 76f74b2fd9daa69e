"""Learning from corrections: a simulated site fine-tunes the cord model on one corrected scan.

The site starts from a cross-validation fold model (``benchmarks/cord_crossval.py``: the shipped
recipe, trained without one fold's subjects), so the corrected and the judged scans are of subjects
the starting model never saw; the shipped model trained on every labelled scan. Two situations:

* **failing contrast**: axial T1w (ivadomed-unf01; fold 1's model, Dice 0.07 there). The scan is
  split into two stacks of slices; the inferior stack is the site's corrected case, the superior
  stack the scan the site model is then judged on.
* **already good**: axial T2*w (fold 3's model). gm-challenge sub-9584 (its annotated slab) is the
  corrected case, sub-9669 the scan judged on.
* **another label style**: sagittal T2w (fold 3's model, Dice 0.83 on errsm_21: its masks are drawn
  tighter than the model's). errsm_21 split in two stacks along S-I like the T1w. Added after the
  mixing rule of ``spineai.learning.finetune`` was set on the first two: its check out of sample.

Each runs ``spineai corrections add`` and ``spineai finetune --start <fold model>`` (default budget)
as fresh processes, as a user would, with wall time and peak memory of the fine-tune, then segments
with and without ``--model``: Dice on the judged scan before and after, and on every scan of the
fold before and after (forgetting; the scan the site trained on is marked). Writes
``benchmarks/results/learn_from_corrections.json``.

    python benchmarks/learn_from_corrections.py --runs runs/cord-cv [--minutes 5] [--data ../shared/data]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import SimpleITK as sitk

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "SpineAI"))

from spineai.metrics import annotated_range, dice  # noqa: E402
from spineai.models.registry import model_for_task  # noqa: E402
from spineai.orientation import canonical_array, to_canonical  # noqa: E402
from spineai.pipeline import segment  # noqa: E402
from spineai.tasks import TaskInputs  # noqa: E402
from spineai.training.cases import BUILTIN_MANIFESTS, read_manifest  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "learn_from_corrections.json"
UNF01_T1W = ("ivadomed-unf01/sub-unf01_T1w.nii.gz", "ivadomed-unf01/sub-unf01_T1w_seg-manual.nii.gz")
REHEARSAL_SUBJECTS = {"errsm_11", "errsm_18", "9418", "sct-testing"}  # spineai/learning/rehearsal
ERRSM_21_T2 = ("sct-legacy/errsm_21/t2/t2.nii.gz", "sct-legacy/errsm_21/t2/t2_manual_segmentation.nii.gz")
GM = "gm-challenge/sub-{0}/anat/sub-{0}_run-1_T2starw.nii.gz"
GM_MASK = "gm-challenge/derivatives/labels/sub-{0}/anat/sub-{0}_run-1_T2starw_seg-manual.nii.gz"


def fold_scans(data: Path, fold: str) -> dict[str, tuple[str, str]]:
    """The scans of one cross-validation fold (manifest paths): what its model never saw."""
    return {
        f"{case.subject} {case.contrast} {case.plane}": tuple(
            str(path.relative_to(data)) for path in (case.image, case.mask)
        )
        for case in read_manifest(BUILTIN_MANIFESTS["cord"], data)
        if case.fold == fold
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("SPINEAI_DATA", ROOT.parent / "shared" / "data"))
    )
    parser.add_argument("--runs", type=Path, required=True, help="the cross-validation fold models (fold-0 ...)")
    parser.add_argument("--minutes", type=float, default=5.0, help="fine-tune budget (the CLI's default is 5)")
    parser.add_argument("--only", choices=("failing", "good", "label style"), help="run one situation")
    args = parser.parse_args()
    load = loader(args.data)
    situations = {"failing": ("1", failing_contrast), "good": ("3", already_good), "label style": ("3", label_style)}
    results = {"conditions": conditions(), "budget_minutes": args.minutes, "situations": {}}
    if args.only and RESULTS.exists():  # one situation re-run: the others stay, each with its own conditions
        kept = json.loads(RESULTS.read_text(encoding="utf-8"))
        results["situations"] = {
            name: {"conditions": kept["conditions"]} | situation for name, situation in kept["situations"].items()
        }
    with tempfile.TemporaryDirectory() as work:
        for name, (fold, make) in situations.items():
            if args.only and name != args.only:
                continue
            start = args.runs / f"fold-{fold}"
            corrected, judged, trained_on, contrast = make(load)
            held_out = fold_scans(args.data, fold)
            results["situations"][name] = {
                "conditions": results["conditions"],
                "start": f"fold-{fold} model ({model_for_task('cord', start).sha256[:12]})",
            }
            results["situations"][name] |= run_site(
                Path(work) / name, start, corrected, judged, trained_on, contrast, args.minutes, load, held_out
            )
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results["situations"], indent=2))


def loader(data: Path):
    def load(image: str, mask: str) -> tuple[sitk.Image, sitk.Image]:
        return sitk.ReadImage(str(data / image)), sitk.ReadImage(str(data / mask))

    return load


def failing_contrast(load):
    """unf01 T1w split along S-I: the inferior stack is corrected, the superior one judged."""
    image, mask = load(*UNF01_T1W)
    (image_low, image_high), (mask_low, mask_high) = split_stacks(image), split_stacks(mask)
    return (image_low, mask_low), (image_high, mask_high), ["unf01 T1w axial"], "T1w"


def already_good(load):
    """gm-challenge 9584 (annotated slab) corrected, 9669 judged."""
    slab = annotated_slab(*load(GM.format(9584), GM_MASK.format(9584)))
    return slab, load(GM.format(9669), GM_MASK.format(9669)), ["9584 T2starw axial"], "T2starw"


def label_style(load):
    """errsm_21 sagittal T2w split along S-I: the inferior half corrected, the superior half judged."""
    image, mask = load(*ERRSM_21_T2)
    (image_low, image_high), (mask_low, mask_high) = split_stacks(image), split_stacks(mask)
    return (image_low, mask_low), (image_high, mask_high), ["errsm_21 T2w sagittal"], "T2w"


def split_stacks(image: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    """(inferior half, superior half) of the canonical slices along S-I."""
    canonical = to_canonical(image)
    half = canonical.GetSize()[2] // 2
    return canonical[:, :, :half], canonical[:, :, half:]


def annotated_slab(image: sitk.Image, mask: sitk.Image) -> tuple[sitk.Image, sitk.Image]:
    """Image and mask cut to the slices the rater labelled (an unlabelled slice is not a correction)."""
    image, mask = to_canonical(image), to_canonical(mask)
    rows = annotated_range(canonical_array(mask) > 0)
    return image[:, :, rows.start : rows.stop], mask[:, :, rows.start : rows.stop]


def score(pair, model_dir: Path | None = None) -> dict:
    """Dice of ``spineai segment`` against the manual mask: whole scan and annotated slices."""
    image, mask = pair
    result = segment(image, "cord", "cpu", inputs=TaskInputs(model_dir=model_dir))
    prediction = canonical_array(to_canonical(result.mask)) > 0
    truth = canonical_array(to_canonical(mask)) > 0
    rows = annotated_range(truth)
    return {"dice": round(dice(prediction, truth), 4), "dice_annotated": round(dice(prediction[rows], truth[rows]), 4)}


def run_site(folder: Path, start: Path, corrected, judged, trained_on, contrast, minutes, load, held_out) -> dict:
    folder.mkdir(parents=True)
    paths = {}
    for name, image in (("image", corrected[0]), ("mask", corrected[1])):
        paths[name] = folder / f"corrected_{name}.nii.gz"
        sitk.WriteImage(sitk.Cast(image, sitk.sitkUInt8) if name == "mask" else image, str(paths[name]))
    site, model = folder / "site", folder / "model"
    spineai(
        "corrections", "add", paths["image"], paths["mask"], "--task", "cord", "--site", site, "--contrast", contrast
    )
    fine_tune = spineai(
        "finetune", "--task", "cord", "--site", site, "--out", model, "--minutes", minutes, "--device", "cpu",
        "--start", start,
    )  # fmt: skip
    record = json.loads((model / "cord.json").read_text())["site"]
    return {
        "judged_before": score(judged, start),
        "judged_after": score(judged, model),
        "fold_before": {name: score(load(*paths), start) for name, paths in held_out.items()},
        "fold_after": {name: score(load(*paths), model) for name, paths in held_out.items()},
        "site_trained_on": trained_on,
        # Fold scans of the subjects in the bundled rehearsal set: the fine-tune trained on those.
        "rehearsal_subjects_in_fold": sorted(name for name in held_out if name.split()[0] in REHEARSAL_SUBJECTS),
        "finetune_wall_seconds": fine_tune["seconds"],
        "finetune_peak_rss_mb": fine_tune["peak_rss_mb"],
        "steps": record["steps"],
        "mixing": record["mixing"],
        "rehearsal_median_dice": [record["before"]["rehearsal_median_dice"], record["after"]["rehearsal_median_dice"]],
        "rehearsal_dice": [record["before"].get("rehearsal_dice"), record["after"].get("rehearsal_dice")],
    }


def spineai(*argv) -> dict:
    """Run the CLI as a fresh process; its wall time and peak resident memory."""
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "spineai.cli", *map(str, argv)], env={**os.environ, "PYTHONPATH": str(ROOT / "SpineAI")}
    )
    _, status, usage = os.wait4(process.pid, 0)
    if status:
        raise SystemExit(f"spineai {' '.join(map(str, argv))} failed ({status})")
    return {"seconds": round(time.perf_counter() - started, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024)}


def conditions() -> dict:
    load = os.getloadavg()
    return {
        "cpus": os.cpu_count(),
        "load_average_at_start": [round(v, 2) for v in load],
        "machine": os.uname().nodename,
    }


if __name__ == "__main__":
    main()
