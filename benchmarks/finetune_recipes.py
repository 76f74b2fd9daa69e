"""Compare fine-tune recipes at a fixed number of steps on the failing-contrast site of
``learn_from_corrections.py`` (unf01 T1w, inferior stack corrected, superior stack judged), with the
validation scans that moved most: a development tool, so that recipes are compared whatever the
machine's load. Its results chose the default recipe (``spineai.learning.finetune.RECIPE``), so the
benchmark figures of that recipe are optimistically biased by the choice.

    python benchmarks/finetune_recipes.py '[{"site_share": 0.25, "anchor_weight": 0.03}]' 460

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
from learn_from_corrections import ROOT, VALIDATION, failing_contrast, loader, score  # noqa: E402

sys.path.insert(0, str(ROOT / "SpineAI"))
from spineai.learning.finetune import Recipe, finetune  # noqa: E402
from spineai.learning.site import add_case  # noqa: E402

KEPT = ["gm 9669 T2*w axial", "unf01 T2*w axial", "errsm_21 T2w sagittal"]


def main(recipes: list[dict], steps: int) -> None:
    load = loader(ROOT.parent / "shared" / "data")
    (image, mask), judged, _, _ = failing_contrast(load)
    with tempfile.TemporaryDirectory() as work:
        site = Path(work) / "site"
        add_case(site, image, sitk.Cast(mask, sitk.sitkUInt8), "cord", "unf01 T1w inferior stack", contrast="T1w")
        for index, params in enumerate(recipes):
            folder = finetune(
                "cord", site, Path(work) / f"m{index}", 60, "cpu", recipe=Recipe(**params), max_steps=steps
            )
            record = json.loads((folder / "cord.json").read_text())["site"]
            result = {"judged": score(judged, folder)["dice"]}
            result |= {name: score(load(*VALIDATION[name]), folder)["dice"] for name in KEPT}
            print(json.dumps({"recipe": params, "steps": record["steps"], "drift": record["weight_drift"], **result}))


if __name__ == "__main__":
    np.seterr(all="ignore")
    main(json.loads(sys.argv[1]), int(sys.argv[2]))
