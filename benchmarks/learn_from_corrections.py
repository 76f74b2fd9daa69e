"""Learning from corrections: a simulated site fine-tunes the cord model on one corrected scan.

Two situations, on labelled scans the shipped cord model never trained on (its validation scans):

* **failing contrast**: axial T1w (ivadomed-unf01, the only T1w scan: Dice 0 with the shipped
  model). It is split into two stacks of slices; the inferior stack is the site's corrected case, the
  superior stack the scan the site model is then judged on.
* **already good**: axial T2*w. gm-challenge sub-9604 (its annotated slab) is the corrected case,
  sub-9669 the scan judged on.

Each runs ``spineai corrections add`` and ``spineai finetune`` (default budget) as fresh processes,
as a user would, with wall time and peak memory of the fine-tune, then segments with and without
``--model``: Dice on the judged scan before and after, and on every shipped validation scan before
and after (forgetting; a scan the site trained on is marked). Writes
``benchmarks/results/learn_from_corrections.json``.

    python benchmarks/learn_from_corrections.py [--minutes 5] [--data ../shared/data]
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
from spineai.orientation import canonical_array, to_canonical  # noqa: E402
from spineai.pipeline import segment  # noqa: E402
from spineai.tasks import TaskInputs  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "learn_from_corrections.json"
VALIDATION = {  # the shipped cord model's validation scans (training/cord_cases.csv, split val)
    "errsm_21 T2w sagittal": (
        "sct-legacy/errsm_21/t2/t2.nii.gz",
        "sct-legacy/errsm_21/t2/t2_manual_segmentation.nii.gz",
    ),
    "gm 9604 T2*w axial": (
        "gm-challenge/sub-9604/anat/sub-9604_run-1_T2starw.nii.gz",
        "gm-challenge/derivatives/labels/sub-9604/anat/sub-9604_run-1_T2starw_seg-manual.nii.gz",
    ),
    "gm 9669 T2*w axial": (
        "gm-challenge/sub-9669/anat/sub-9669_run-1_T2starw.nii.gz",
        "gm-challenge/derivatives/labels/sub-9669/anat/sub-9669_run-1_T2starw_seg-manual.nii.gz",
    ),
    "unf01 T1w axial": ("ivadomed-unf01/sub-unf01_T1w.nii.gz", "ivadomed-unf01/sub-unf01_T1w_seg-manual.nii.gz"),
    "unf01 T2w axial": ("ivadomed-unf01/sub-unf01_T2w.nii.gz", "ivadomed-unf01/sub-unf01_T2w_seg-manual.nii.gz"),
    "unf01 T2*w axial": ("ivadomed-unf01/sub-unf01_T2star.nii.gz", "ivadomed-unf01/sub-unf01_T2star_seg-manual.nii.gz"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("SPINEAI_DATA", ROOT.parent / "shared" / "data"))
    )
    parser.add_argument("--minutes", type=float, default=5.0, help="fine-tune budget (the CLI's default is 5)")
    parser.add_argument("--only", choices=("failing", "good"), help="run one situation")
    args = parser.parse_args()
    load = loader(args.data)
    before = {name: score(load(*paths)) for name, paths in VALIDATION.items()}
    situations = {"failing": failing_contrast, "good": already_good}
    results = {
        "conditions": conditions(),
        "budget_minutes": args.minutes,
        "validation_before": before,
        "situations": {},
    }
    with tempfile.TemporaryDirectory() as work:
        for name, make in situations.items():
            if args.only and name != args.only:
                continue
            corrected, judged, trained_on, contrast = make(load)
            folder = Path(work) / name
            results["situations"][name] = run_site(folder, corrected, judged, trained_on, contrast, args.minutes, load)
    RESULTS.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(results["situations"], indent=2))


def loader(data: Path):
    def load(image: str, mask: str) -> tuple[sitk.Image, sitk.Image]:
        return sitk.ReadImage(str(data / image)), sitk.ReadImage(str(data / mask))

    return load


def failing_contrast(load):
    """unf01 T1w split along S-I: the inferior stack is corrected, the superior one judged."""
    image, mask = load(*VALIDATION["unf01 T1w axial"])
    (image_low, image_high), (mask_low, mask_high) = split_stacks(image), split_stacks(mask)
    return (image_low, mask_low), (image_high, mask_high), ["unf01 T1w axial"], "T1w"


def already_good(load):
    """gm-challenge 9604 (annotated slab) corrected, 9669 judged."""
    image, mask = load(*VALIDATION["gm 9604 T2*w axial"])
    slab = annotated_slab(image, mask)
    return slab, load(*VALIDATION["gm 9669 T2*w axial"]), ["gm 9604 T2*w axial"], "T2starw"


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


def run_site(folder: Path, corrected, judged, trained_on: list[str], contrast: str, minutes: float, load) -> dict:
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
        "finetune", "--task", "cord", "--site", site, "--out", model, "--minutes", minutes, "--device", "cpu"
    )
    record = json.loads((model / "cord.json").read_text())["site"]
    after = {name: score(load(*paths), model) for name, paths in VALIDATION.items()}
    return {
        "judged_before": score(judged),
        "judged_after": score(judged, model),
        "validation_after": after,
        "site_trained_on": trained_on,
        "finetune_wall_seconds": fine_tune["seconds"],
        "finetune_peak_rss_mb": fine_tune["peak_rss_mb"],
        "steps": record["steps"],
        "rehearsal_median_dice": [record["before"]["rehearsal_median_dice"], record["after"]["rehearsal_median_dice"]],
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
