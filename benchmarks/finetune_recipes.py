"""Compare fine-tune recipes at a fixed number of steps on the failing-contrast site of
``learn_from_corrections.py`` (unf01 T1w, inferior stack corrected, superior stack judged), starting
from the cross-validation fold model that never saw unf01 (``--runs`` folder, fold 1), with the
other scans of that fold: a development tool, so that recipes are compared whatever the machine's
load. Its results chose the default recipe (``spineai.learning.finetune.RECIPE``), so the
benchmark figures of that recipe are optimistically biased by the choice. (The runs in
``finetune_recipes.json`` before 2026-12-07 evening started from the model shipped then.)

    python benchmarks/finetune_recipes.py '[{"site_share": 0.25, "anchor_weight": 0.03}]' 460 runs/cord-cv

Prints one line per recipe; ``benchmarks/results/finetune_recipes.json`` collects the runs made.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learn_from_corrections import ROOT, failing_contrast, fold_scans, loader, score  # noqa: E402

sys.path.insert(0, str(ROOT / "SpineAI"))
from spineai.learning.finetune import Recipe, finetune  # noqa: E402
from spineai.learning.site import add_case  # noqa: E402

FOLD = "1"  # unf01's


def main(recipes: list[dict], steps: int, runs: Path) -> None:
    data = ROOT.parent / "shared" / "data"
    load = loader(data)
    kept = {name: paths for name, paths in fold_scans(data, FOLD).items() if "T1w" not in name}
    (image, mask), judged, _, _ = failing_contrast(load)
    with tempfile.TemporaryDirectory() as work:
        site = Path(work) / "site"
        add_case(site, image, sitk.Cast(mask, sitk.sitkUInt8), "cord", "unf01 T1w inferior stack", contrast="T1w")
        for index, params in enumerate(recipes):
            folder = finetune(
                "cord",
                site,
                Path(work) / f"m{index}",
                60,
                "cpu",
                runs / f"fold-{FOLD}",
                recipe=Recipe(**params),
                max_steps=steps,
            )
            record = json.loads((folder / "cord.json").read_text())["site"]
            result = {"judged": score(judged, folder)["dice"]}
            result |= {name: score(load(*paths), folder)["dice"] for name, paths in kept.items()}
            print(json.dumps({"recipe": params, "steps": record["steps"], "drift": record["weight_drift"], **result}))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main(json.loads(sys.argv[1]), int(sys.argv[2]), Path(sys.argv[3]))
