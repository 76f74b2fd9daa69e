"""Two experiments on how a one-case site's weight mix is chosen (``learning.finetune.mix_with_start``);
the second became the product's rule for a site of one or two cases. The figures are in
docs/learning.md.

* ``crops``: after a full fine-tune (no mixing), Dice at several shares of fine-tuned weights on the
  judged scan, on every scan of the start model's fold and on each bundled rehearsal crop: can the
  crops, which ship with SpineAI, see what an unseen scan loses?
* ``held-out``: the top fifth of the corrected case along S-I is held back from training and the
  share is chosen on it by the product's rule (``KEPT_GAIN``, ``MIN_GAIN``), instead of on the
  slices trained on; then the judged scan and the fold's scans at that share.

Situations as in ``learn_from_corrections.py``: ``failing`` (unf01 T1w halves, fold 1) and
``style`` (errsm_21 halves, fold 3). Fixed steps, so the machine's load does not change the figures.

    python benchmarks/mixing_experiments.py crops|held-out failing|style --runs runs/cord-cv [--steps 1450]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path
from unittest import mock

import SimpleITK as sitk

sys.path.insert(0, str(Path(__file__).resolve().parent))
from learn_from_corrections import ROOT, failing_contrast, fold_scans, label_style, loader, score  # noqa: E402

sys.path.insert(0, str(ROOT / "SpineAI"))
import spineai.learning.finetune as ft  # noqa: E402
from spineai.learning.rehearsal import rehearsal_cases  # noqa: E402
from spineai.learning.site import add_case  # noqa: E402
from spineai.metrics import dice  # noqa: E402
from spineai.models.registry import model_for_task  # noqa: E402
from spineai.orientation import canonical_array, to_canonical  # noqa: E402
from spineai.postprocess import clean_cord_mask  # noqa: E402
from spineai.training.export import write_model  # noqa: E402
from spineai.training.weights import load_model  # noqa: E402

SITUATIONS = {"failing": ("1", failing_contrast), "style": ("3", label_style)}
SHARES = (0.0, 0.5, 0.7, 0.85, 1.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("experiment", choices=("crops", "held-out"))
    parser.add_argument("situation", choices=tuple(SITUATIONS))
    parser.add_argument("--runs", type=Path, required=True, help="the cross-validation fold models (fold-0 ...)")
    parser.add_argument("--steps", type=int, default=1450, help="about the default budget's on 2 cores")
    parser.add_argument(
        "--data", type=Path, default=Path(os.environ.get("SPINEAI_DATA", ROOT.parent / "shared" / "data"))
    )
    args = parser.parse_args()
    fold, make = SITUATIONS[args.situation]
    start = args.runs / f"fold-{fold}"
    load = loader(args.data)
    (image, mask), judged, _, contrast = make(load)
    image, mask = to_canonical(image), to_canonical(mask)
    with tempfile.TemporaryDirectory() as work:
        work = Path(work)
        held = None
        if args.experiment == "held-out":
            cut = image.GetSize()[2] - max(1, round(image.GetSize()[2] / 5))
            held = (image[:, :, cut:], mask[:, :, cut:])
            image, mask = image[:, :, :cut], mask[:, :, :cut]
        tuned = fine_tune_unmixed(work, image, mask, contrast, start, args.steps)
        mixes = Mixes(model_for_task("cord", start), tuned, work)
        if held is None:
            shares = SHARES
        else:
            shares = (chosen_share(mixes, held),)
            print(json.dumps({"held_out_dice_by_share": mixes.held_dice}), flush=True)
        for share in shares:
            folder = mixes.folder(share)
            row = {"share": share, "judged": score(judged, folder)["dice"]}
            row |= {name: score(load(*paths), folder)["dice"] for name, paths in fold_scans(args.data, fold).items()}
            if held is None:
                row["rehearsal_crops"] = crop_dice(mixes.model(share), mixes.parent)
            print(json.dumps(row), flush=True)


def fine_tune_unmixed(work: Path, image, mask, contrast: str, start: Path, steps: int):
    """The site's fine-tune as the product runs it, but without the mixing step: its folder's spec."""
    site = work / "site"
    add_case(site, image, sitk.Cast(mask > 0, sitk.sitkUInt8), "cord", "mixing experiment", contrast=contrast)
    unmixed = {"share_of_fine_tuned_weights": 1.0, "site_dice_by_share": {}, "rule": "none (experiment)"}
    # As run before the product held back slices itself: the experiment does its own holding back.
    with (
        mock.patch.object(ft, "mix_with_start", lambda *args, **kwargs: unmixed),
        mock.patch.object(ft, "held_out_tops", lambda *args: {}),
    ):
        ft.finetune("cord", site, work / "tuned", minutes=60, device="cpu", start=start, max_steps=steps)
    return model_for_task("cord", work / "tuned")


class Mixes:
    """(1 - w) x start + w x fine-tuned weights, as networks and as model folders to segment with."""

    def __init__(self, parent, tuned, work: Path):
        self.parent, self.work, self.held_dice = parent, work, {}
        self.start, self.tuned = load_model(parent).state_dict(), load_model(tuned).state_dict()

    def model(self, share: float):
        import torch

        network = load_model(self.parent)
        network.load_state_dict(
            {
                k: torch.lerp(v, self.tuned[k], share) if v.is_floating_point() else self.tuned[k]
                for k, v in self.start.items()
            }
        )
        return network.eval()

    def folder(self, share: float) -> Path:
        folder = self.work / f"share-{share}"
        if not folder.exists():
            folder.mkdir()
            write_model(self.model(share), self.parent.untrained(), folder)
        return folder


def chosen_share(mixes: Mixes, held) -> float:
    """The product's rule (bisection over steps of ``MIXING_STEP``) on the held-out slices."""

    def held_dice(share: float) -> float:
        probability = canonical_array(ft._predictor(mixes.model(share), mixes.parent).probability(held[0]))
        found = clean_cord_mask(probability, mixes.parent.threshold) > 0
        mixes.held_dice[share] = round(dice(found, canonical_array(held[1]) > 0), 4)
        return mixes.held_dice[share]

    before = held_dice(0.0)
    gain = held_dice(1.0) - before
    if gain < ft.MIN_GAIN:
        return 0.0
    low, high = 0, round(1 / ft.MIXING_STEP)
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (
            (low, middle) if held_dice(middle * ft.MIXING_STEP) >= before + ft.KEPT_GAIN * gain else (middle, high)
        )
    return round(high * ft.MIXING_STEP, 4)


def crop_dice(network, parent) -> dict[str, float]:
    """Dice on each bundled rehearsal crop, as the fine-tune's record scores them."""
    return ft._rehearsal_dice(network, parent, rehearsal_cases())


if __name__ == "__main__":
    main()
