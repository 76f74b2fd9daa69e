"""Fine-tune the model in use on a site's corrected cases, keeping what it knew (``spineai finetune``).

The site has none of SpineAI's training data, so forgetting is held off with what ships or what the
site has: a quarter of every batch is site patches, the rest patches of the bundled rehearsal set
(real crops of the shipped model's training scans, ``rehearsal``; the lesion and tumour tasks paint
their targets into them as their shipped training did; the dural sac network rehearses on the canal
phantoms it was trained on), an L2 penalty pulls the weights towards the starting ones (L2-SP,
Li et al., ICML 2018), and BatchNorm keeps its running statistics (a few small site batches would
otherwise shift them for every scan). Training runs for a wall-clock budget with a cosine learning
rate over it. Last, the fine-tuned weights are mixed with the starting ones (weight-space
ensembling, WiSE-FT: Wortsman et al., CVPR 2022): the mix closest to the start that keeps most of
what the fine-tune gained on the site's cases, so what was not corrected moves as little as it can.

With three or more cases a fifth of them (at least one) is held back to measure the model before
and after, and to choose the mix. With fewer, the slice networks hold back the top fifth of each
case's slices (inferior-superior) instead: measured on the case's own slices, the mix would reward
copying the site's way of drawing wherever it meets it, and that is what cost unseen scans most
(docs/learning.md). Where a case cannot be split (too few slices, or its target not in both parts)
and for the sac network's level planes, the figures are on what was trained on: a fit check, said
so in the record. The model folder is written beside its final place and renamed into it at the end:
a cancelled or failed fine-tune leaves no folder behind.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import Cancelled, SpineAIError
from .site import Correction, require_cases

DEFAULT_MINUTES = 5.0
PATCH_SIZE = 128
REFRESH_STEPS = 100  # painted rehearsal targets are re-drawn this often
# Mixing: the smallest share of the fine-tuned weights, in steps of MIXING_STEP, that keeps KEPT_GAIN
# of the fine-tune's gain in Dice on the site's cases; below MIN_GAIN nothing was gained and the
# starting weights are kept. KEPT_GAIN was set after seeing a sweep of shares on the benchmark's
# sites (docs/learning.md): the figures measured with it carry that choice.
MIXING_STEP = 0.05
KEPT_GAIN = 0.85
MIN_GAIN = 0.01
HELD_OUT_FRACTION = 0.2  # of a case's slices, from the top, held back when fewer than three cases
MIN_HELD_TARGET = 0.05  # a case is split only when each part holds this share of its target voxels
MIXING_EVALUATIONS = 6  # at most: the full fine-tune, then a bisection over the 19 shares between
WRITING_SECONDS = 3.0  # the ONNX export and the model folder after it, and the CLI process's start


@dataclass(frozen=True)
class Recipe:
    """How a fine-tune trains; the record keeps it."""

    # Chosen among 8 recipes compared on the cord model's validation scans (docs/learning.md,
    # benchmarks/results/finetune_recipes.json): figures reported with it are biased by that choice.
    peak_learning_rate: float = 1e-3  # a third of training's: the start is already good
    warm_up: float = 0.05  # of the budget
    site_share: float = 0.25  # of each batch; the rest is rehearsal (half and half forgot more)
    anchor_weight: float = 0.03  # L2-SP: times the sum of squared distances to the starting weights
    batch_size: int = 12
    trainable: tuple[str, ...] = field(default=())  # parameter name prefixes trained; () = all


RECIPE = Recipe()


@dataclass
class Batches:
    """How one kind of network is fed and scored during a fine-tune."""

    sample: object  # (rng) -> (images, targets) tensors, site and rehearsal patches (``Recipe.site_share``)
    loss: object  # (logits, targets) -> tensor
    site: object  # (torch model) -> [per case dict with "dice"]: the held-back cases, or those trained on
    # (torch model) -> Dice per rehearsal crop or per grade of held-out phantoms (None: no fixed set)
    kept: object
    split: frozenset = frozenset()  # case ids whose top fifth of slices is held back from training

    def score(self, model) -> dict:
        return {"site": self.site(model)} | rehearsal_scores(self.kept(model))


def rehearsal_scores(by_item: dict | None) -> dict:
    """The record's rehearsal figures: the median, and each crop's (or grade's) Dice, since a median
    hides the one contrast a fine-tune may cost (a T1w site moves the T1w crop most)."""
    if by_item is None:
        return {"rehearsal_median_dice": None, "rehearsal_dice": None}
    return {"rehearsal_median_dice": round(float(np.median(list(by_item.values()))), 4), "rehearsal_dice": by_item}


def finetune(
    task: str,
    site: Path,
    out_dir: Path,
    minutes: float = DEFAULT_MINUTES,
    device: str = "auto",
    start: Path | None = None,
    seed: int = 0,
    progress=None,
    should_cancel=None,
    recipe: Recipe = RECIPE,
    max_steps: int | None = None,
) -> Path:
    """Fine-tune ``task``'s model (the shipped one, or the one in the folder ``start``) on the site's
    cases of ``task`` for ``minutes`` (or ``max_steps``, whichever ends first); write the new model
    folder ``out_dir`` and return it."""
    called = time.perf_counter()
    import torch

    from ..models.registry import MODELS_DIR, model_for_task
    from ..tasks import get_task
    from ..training.weights import load_model

    info = get_task(task)
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()):
        raise SpineAIError(f"{out_dir}: already holds files; a fine-tune writes a new model folder")
    if minutes <= 0:
        raise SpineAIError(f"--minutes must be positive, not {minutes}")
    torch_device = device_of(device)  # before the slow part: a wrong device fails at once
    cases = require_cases(site, task)
    parent = model_for_task(task, start or MODELS_DIR)
    train_cases, held_back = split_cases(cases, seed)
    torch.manual_seed(seed)
    model = load_model(parent).train()
    batches = _plane_batches if parent.out_channels > 1 else _slice_batches
    feed = batches(info, parent, site, train_cases, held_back, seed, recipe)
    scored = time.perf_counter()
    before = {"site": feed.site(model)}
    site_seconds = time.perf_counter() - scored
    before |= rehearsal_scores(feed.kept(model))
    # The budget is the whole fine-tune's: what came before, and what comes after training (the
    # mixing's evaluations of the site cases and the scores after, timed on the scores before).
    after_training = (MIXING_EVALUATIONS + 1) * site_seconds + (time.perf_counter() - scored) + WRITING_SECONDS
    budget = Budget(max(minutes * 60 - (time.perf_counter() - called) - after_training, 1.0), max_steps)
    start_weights = {key: value.detach().clone() for key, value in model.state_dict().items()}
    fitted = fit(model, feed, budget, recipe, torch_device, progress, should_cancel, seed)
    fitted["mixing"] = mix_with_start(model.eval(), start_weights, feed.site, before["site"], should_cancel)
    after = feed.score(model.eval())
    record = site_record(parent, cases, held_back, feed.split, fitted, before, after, minutes, recipe)
    return write_model_folder(model, parent, record, out_dir)


def split_cases(cases: list[Correction], seed: int) -> tuple[list[Correction], list[Correction]]:
    """(trained on, held back): a fifth, at least one, held back once there are three cases."""
    if len(cases) < 3:
        return list(cases), []
    order = np.random.default_rng(seed).permutation(len(cases))
    count = max(1, round(len(cases) / 5))
    held = {int(i) for i in order[:count]}
    return [c for i, c in enumerate(cases) if i not in held], [c for i, c in enumerate(cases) if i in held]


def device_of(device: str):
    """The torch device a fine-tune runs on: CUDA when asked for (or 'auto') and present."""
    import torch

    if device not in ("auto", "cpu", "cuda"):
        raise SpineAIError(f"unknown device '{device}' (choose auto, cpu or cuda)")
    if device == "cuda" and not torch.cuda.is_available():
        raise SpineAIError("device 'cuda' requested but no CUDA GPU is available (choose auto or cpu)")
    return torch.device("cuda" if device != "cpu" and torch.cuda.is_available() else "cpu")


# --- the loop ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Budget:
    """Wall-clock seconds, and optionally a number of steps: whichever ends first."""

    seconds: float
    steps: int | None = None

    def fraction(self, elapsed: float, step: int) -> float:
        done = elapsed / self.seconds
        return max(done, step / self.steps) if self.steps else done


def fit(
    model, feed: Batches, budget: Budget, recipe: Recipe, device, progress=None, should_cancel=None, seed=0
) -> dict:
    """Train within ``budget``: cosine learning rate over it, L2-SP anchor, BatchNorm statistics kept."""
    import torch

    model.to(device).train()
    for layer in model.modules():  # BatchNorm keeps the statistics it learnt: a few site batches must not move them
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.eval()
    prefixes = tuple(recipe.trainable)
    trained = [p for name, p in model.named_parameters() if not prefixes or name.startswith(prefixes)]
    for name, parameter in model.named_parameters():
        parameter.requires_grad_(not prefixes or name.startswith(prefixes))
    anchor = [p.detach().clone() for p in trained]
    optimiser = torch.optim.AdamW(trained, lr=recipe.peak_learning_rate, weight_decay=0.0)
    rng = np.random.default_rng(seed)
    started, steps, losses = time.perf_counter(), 0, []
    while (fraction := budget.fraction(time.perf_counter() - started, steps)) < 1.0:
        if should_cancel and should_cancel():
            raise Cancelled()
        for group in optimiser.param_groups:
            group["lr"] = learning_rate(fraction, recipe)
        images, targets = (t.to(device) for t in feed.sample(rng))
        drift = sum(((p - a) ** 2).sum() for p, a in zip(trained, anchor, strict=True))
        loss = feed.loss(model(images), targets) + recipe.anchor_weight * drift
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
        steps += 1
        losses.append(loss.item())
        if progress:
            progress(min(1.0, budget.fraction(time.perf_counter() - started, steps)))
    model.cpu().eval()
    for parameter in model.parameters():
        parameter.requires_grad_(True)
    drift = sum(float(((p.detach().cpu() - a.cpu()) ** 2).sum()) for p, a in zip(trained, anchor, strict=True))
    return {
        "steps": steps,
        "weight_drift": round(drift, 6),  # sum of squared distances to the starting weights (the L2-SP term)
        "seconds": round(time.perf_counter() - started, 1),
        "final_loss": round(float(np.mean(losses[-20:])), 4) if losses else None,
        "device": str(device),
    }


def mix_with_start(model, start_weights: dict, site_scores, before: list[dict], should_cancel=None) -> dict:
    """Set ``model`` to (1 - w) x starting + w x fine-tuned weights, w the smallest share (steps of
    ``MIXING_STEP``) whose site Dice keeps ``KEPT_GAIN`` of the full fine-tune's gain, found by
    bisection (the Dice grows with the share; where it does not, a share that keeps the gain is
    still chosen); w = 0 when the fine-tune gained less than ``MIN_GAIN``. Returns the share and
    the site Dice at each share tried."""
    import torch

    tuned = {key: value.detach().clone() for key, value in model.state_dict().items()}

    def mix(share: float) -> None:
        model.load_state_dict(
            {k: torch.lerp(start_weights[k], v, share) if v.is_floating_point() else v for k, v in tuned.items()}
        )

    def site_dice_at(share: float) -> float:
        if should_cancel and should_cancel():
            raise Cancelled()
        mix(share)
        tried[share] = _mean_dice(site_scores(model))
        return tried[share]

    tried = {0.0: _mean_dice(before)}
    gain = site_dice_at(1.0) - tried[0.0]
    shares = round(1 / MIXING_STEP)
    low, high = (shares, shares) if gain < MIN_GAIN else (0, shares)  # share low misses, share high keeps
    while high - low > 1:
        middle = (low + high) // 2
        if site_dice_at(middle * MIXING_STEP) >= tried[0.0] + KEPT_GAIN * gain:
            high = middle
        else:
            low = middle
    share = 0.0 if gain < MIN_GAIN else round(high * MIXING_STEP, 4)
    mix(share)
    return {
        "share_of_fine_tuned_weights": share,
        "site_dice_by_share": {f"{k:.2f}": round(v, 4) for k, v in sorted(tried.items())},
        "rule": f"smallest share keeping {KEPT_GAIN:.0%} of the site Dice gained; none gained "
        f"(< {MIN_GAIN}): the starting weights",
    }


def _mean_dice(scores: list[dict]) -> float:
    return float(np.mean([s["dice"] for s in scores]))


def learning_rate(fraction: float, recipe: Recipe = RECIPE) -> float:
    """Linear warm-up, then cosine decay to zero at the end of the budget."""
    warm = min(1.0, fraction / recipe.warm_up)
    return recipe.peak_learning_rate * warm * 0.5 * (1 + math.cos(math.pi * min(fraction, 1.0)))


# --- slice networks (cord, lesion, tumour) ----------------------------------------------------


def _slice_batches(info, spec, site: Path, train_cases, held_back, seed: int, recipe: Recipe) -> Batches:
    import torch
    from torch.nn import functional as F

    from ..training.augment import augment
    from ..training.data import PatchSampler, prepare_volume
    from ..training.synthetic_data import SYNTHETIC_TASKS, SyntheticTrainingSet
    from ..training.train import soft_dice_loss
    from .rehearsal import rehearsal_cases

    rng = np.random.default_rng(seed + 1)
    target_of = network_target(info)
    tops = {} if held_back else held_out_tops(site, train_cases, target_of)
    site_volumes = [site_volume(site, c, spec, tops.get(c.case_id)) for c in train_cases]
    site_patches = PatchSampler.of_volumes(site_volumes, PATCH_SIZE, spec, target_of)
    rehearsal = [prepare_volume(case, spec) for case in rehearsal_cases()]
    painted = SyntheticTrainingSet(rehearsal, SYNTHETIC_TASKS[info.name], rng) if info.name in SYNTHETIC_TASKS else None
    state = {"rehearsal": None, "drawn": 0}
    generator = torch.Generator().manual_seed(seed)
    invert = 0.0 if painted else 0.2  # as the shipped training: a lesion or tumour is bright, that is the signal

    def rehearsal_patches():
        if state["rehearsal"] is None or (painted and state["drawn"] >= REFRESH_STEPS):
            state["rehearsal"] = (
                painted.sampler(PATCH_SIZE, spec.context_slices)
                if painted
                else PatchSampler.of_volumes(rehearsal, PATCH_SIZE, spec)
            )
            state["drawn"] = 0
        state["drawn"] += 1
        return state["rehearsal"]

    def sample(batch_rng):
        n_site = int(round(recipe.site_share * recipe.batch_size))
        own = site_patches.sample(n_site, batch_rng)
        kept = rehearsal_patches().sample(recipe.batch_size - n_site, batch_rng)
        images, masks = (torch.cat(pair) for pair in zip(own, kept, strict=True))
        return augment(images, masks, generator, invert_probability=invert)

    def loss(logits, masks):
        return F.binary_cross_entropy_with_logits(logits, masks) + soft_dice_loss(logits, masks)

    clean = info.name == "cord"  # the cord is scored as the task keeps it: largest component, holes filled

    scored = held_back or [c for c in train_cases if c.case_id in tops] or train_cases

    def site_scores(model) -> list[dict]:
        return [_slice_case_score(model, spec, site, c, target_of, clean, tops.get(c.case_id)) for c in scored]

    def kept(model):
        return None if painted else _rehearsal_dice(model, spec, rehearsal_cases())

    return Batches(sample, loss, site_scores, kept, frozenset(tops))


def site_volume(site: Path, correction: Correction, spec, top: float | None):
    """A corrected case on the network grid; given ``top``, only the part below its held-out top."""
    from ..training.data import prepare_volume

    volume = prepare_volume(_as_case(site, correction), spec)
    return volume if top is None else volume.below(top)


def held_out_tops(site: Path, cases: list[Correction], target_of) -> dict[str, float]:
    """Case id -> where its held-out top starts, as a fraction of its inferior-superior extent, for
    each case that can be split."""
    from ..io import read_image
    from ..orientation import canonical_array, to_canonical

    tops = {}
    for case in cases:
        target = target_of(canonical_array(to_canonical(read_image(case.path(site, "labels"))))) > 0
        if (start := held_out_start(target)) is not None:
            tops[case.case_id] = start / target.shape[0]
    return tops


def held_out_start(target: np.ndarray) -> int | None:
    """The canonical z index (inferior -> superior) where a case's top ``HELD_OUT_FRACTION`` of
    slices starts; None when it has too few slices, or either part holds less than
    ``MIN_HELD_TARGET`` of the target (a lesion wholly below the cut measures nothing there)."""
    slices, total = target.shape[0], int(target.sum())
    start = slices - round(slices * HELD_OUT_FRACTION)
    if total == 0 or not 1 <= start < slices:
        return None
    held = int(target[start:].sum()) / total
    return start if MIN_HELD_TARGET <= held <= 1 - MIN_HELD_TARGET else None


def network_target(info):
    """Label map -> what the task's own network outputs (cord: the cord; lesion, tumour: the finding)."""
    value = max(value for value, _ in info.segments) if len(info.segments) > 1 else info.segments[0][0]
    return lambda labels: info.segment_mask(labels, value).astype(np.uint8)


def _as_case(site: Path, correction: Correction):
    from ..training.cases import Case

    return Case(
        correction.path(site, "image"),
        correction.path(site, "labels"),
        correction.case_id,
        "site",
        correction.contrast,
        correction.plane,
        "train",
    )


def _predictor(model, spec):
    from ..inference import SlicePredictor
    from ..training.weights import TorchRunner, inference_copy

    return SlicePredictor(spec, TorchRunner(inference_copy(model, spec)))


def _slice_case_score(
    model, spec, site: Path, correction: Correction, target_of, clean: bool = False, top: float | None = None
) -> dict:
    """Dice of the network's thresholded output (``clean``: as a cord mask is kept) against the
    corrected target, on the whole scan or, given ``top`` (``held_out_tops``), on its held-out top.
    The whole scan is segmented either way, as inference would."""
    from ..io import read_image
    from ..metrics import dice
    from ..orientation import canonical_array, to_canonical
    from ..postprocess import clean_cord_mask

    probability = canonical_array(
        _predictor(model, spec).probability(to_canonical(read_image(correction.path(site, "image"))))
    )
    truth = target_of(canonical_array(to_canonical(read_image(correction.path(site, "labels")))))
    found = clean_cord_mask(probability, spec.threshold) if clean else probability >= spec.threshold
    if top is not None:
        start = round(top * truth.shape[0])
        found, truth = found[start:], truth[start:]
    return {
        "case_id": correction.case_id,
        "contrast": correction.contrast,
        "dice": round(dice(found > 0, truth > 0), 4),
    }


def _rehearsal_dice(model, spec, cases) -> dict[str, float]:
    """Cord Dice on each rehearsal crop: does the model still do what it did?"""
    from ..io import read_image
    from ..metrics import dice
    from ..orientation import canonical_array, to_canonical
    from ..postprocess import clean_cord_mask

    predictor = _predictor(model, spec)
    scores = {}
    for case in cases:
        probability = canonical_array(predictor.probability(to_canonical(read_image(case.image))))
        truth = canonical_array(to_canonical(read_image(case.mask))) > 0
        found = clean_cord_mask(probability, spec.threshold) > 0
        scores[f"{case.subject} {case.contrast} {case.plane}"] = round(dice(found, truth), 4)
    return scores


# --- plane networks (the dural sac) -----------------------------------------------------------


def _plane_batches(info, spec, site: Path, train_cases, held_back, seed: int, recipe: Recipe) -> Batches:
    import torch
    from torch.nn import functional as F

    from ..training.canal import evaluate_sac, phantom_sampler
    from ..training.multiclass import IGNORE, augment_classes, soft_dice_loss

    planes = [plane for c in train_cases for plane in site_planes(site, c, spec)]
    if not planes:
        raise SpineAIError(f"{site}: no assessable level in the corrected {info.name} cases")
    phantoms = phantom_sampler(seed)
    generator = torch.Generator().manual_seed(seed)
    classes = spec.out_channels

    def sample(batch_rng):
        n_site = int(round(recipe.site_share * recipe.batch_size))
        chosen = [planes[i] for i in batch_rng.integers(len(planes), size=n_site)]
        own = (
            torch.from_numpy(np.stack([p for p, _ in chosen])[:, None]),
            torch.from_numpy(np.stack([c for _, c in chosen])),
        )
        kept = phantoms(batch_rng, recipe.batch_size - n_site)
        images, labels = (torch.cat(pair) for pair in zip(own, kept, strict=True))
        return augment_classes(images, labels, classes, generator, flips=True)

    def loss(logits, labels):
        return F.cross_entropy(logits, labels, ignore_index=IGNORE) + soft_dice_loss(logits, labels, classes)

    def site_scores(model) -> list[dict]:
        return [_plane_case_score(model, spec, site, c) for c in held_back or train_cases]

    def kept(model) -> dict[str, float]:
        phantom = evaluate_sac(model.eval(), per_grade=4)  # held-out phantoms: a seed training never uses
        return {f"phantom grade {grade}": round(g["median_sac_dice"], 4) for grade, g in phantom.items()}

    return Batches(sample, loss, site_scores, kept)


def site_planes(site: Path, correction: Correction, spec) -> list[tuple[np.ndarray, np.ndarray]]:
    """(normalised plane image, class map) at every assessable disc level of a corrected case."""
    import SimpleITK as sitk

    from ..inference import normalise_intensity
    from ..io import read_image
    from ..stenosis.levels import read_level_points, with_normals
    from ..stenosis.planes import reslice
    from ..stenosis.segment import level_sections
    from ..training.canal import bits_to_classes

    image, labels = read_image(correction.path(site, "image")), read_image(correction.path(site, "labels"))
    levels = with_normals(read_level_points(correction.path(site, "levels")))
    planes = []
    for section in level_sections(image, levels):
        if section.problem:
            continue
        bits = reslice(labels, section.plane, sitk.sitkNearestNeighbor, sitk.sitkUInt8).astype(np.uint8)
        plane = normalise_intensity(reslice(image, section.plane), spec.percentiles)
        planes.append((plane.astype(np.float32), bits_to_classes(bits)))
    return planes


def _plane_case_score(model, spec, site: Path, correction: Correction) -> dict:
    """Dice of the sac (every class but background and fat) over the case's level planes."""

    from ..inference import class_probabilities
    from ..metrics import dice
    from ..training.weights import TorchRunner, inference_copy

    planes = site_planes(site, correction, spec)
    images = np.stack([p for p, _ in planes])
    predicted = class_probabilities(TorchRunner(inference_copy(model, spec)), images, spec.size_divisor).argmax(1)
    truth = np.stack([c for _, c in planes])
    sac = lambda classes: (classes == 1) | (classes == 2)  # noqa: E731
    return {
        "case_id": correction.case_id,
        "contrast": correction.contrast,
        "dice": round(dice(sac(predicted), sac(truth)), 4),
    }


# --- the model folder -------------------------------------------------------------------------


EVALUATED_ON = {
    "cases": "held-back cases",
    "slices": "the top fifth of each case's slices (inferior-superior), held back from training",
    "none": "the cases trained on (fit check: nothing held back)",
}


def site_record(
    parent, cases, held_back, split, fitted: dict, before: dict, after: dict, minutes: float, recipe: Recipe
) -> dict:
    """What the model record says of the fine-tune (its ``site`` block)."""
    from datetime import datetime, timezone

    held = {c.case_id for c in held_back}
    held_out = "cases" if held else "slices" if split else "none"

    def use(case_id: str) -> str:
        if case_id in held:
            return "held back"
        return "trained on, top fifth of slices held back" if case_id in split else "trained on"

    return {
        "parent": {"name": parent.name, "sha256": parent.sha256, "folder": str(parent.folder)},
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cases": [
            {
                "case_id": c.case_id,
                "contrast": c.contrast,
                "plane": c.plane,
                "edited": c.edited,
                "use": use(c.case_id),
            }
            for c in cases
        ],
        "held_out": held_out,
        "evaluated_on": EVALUATED_ON[held_out],
        "budget_minutes": minutes,
        **fitted,
        "before": before,
        "after": after,
        "recipe": asdict(recipe)
        | {
            "rehearsal": "bundled real crops (spineai/learning/rehearsal)"
            if parent.out_channels == 1
            else "canal phantoms"
        },
    }


def write_model_folder(model, parent, site: dict, out_dir: Path) -> Path:
    """Weights, their ONNX export, the record (the parent's settings, renamed, with the ``site``
    block) and the card, renamed into ``out_dir`` at the end."""
    import json
    from dataclasses import replace

    from ..training.export import write_model
    from .card import model_card

    out_dir = Path(out_dir)
    staged = out_dir.with_name(f".partial-{os.getpid()}-{out_dir.name}")
    shutil.rmtree(staged, ignore_errors=True)
    staged.mkdir(parents=True)
    try:
        renamed = replace(parent.untrained(), name=f"{parent.name}-site-{site['created'][:10]}")
        record = write_model(model, renamed, staged).to_record() | {"site": site}
        (staged / f"{parent.task}.json").write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
        (staged / f"{parent.task}.md").write_text(model_card(record), encoding="utf-8")
        if out_dir.exists():
            out_dir.rmdir()  # empty (checked before training)
        staged.rename(out_dir)
    except BaseException:
        shutil.rmtree(staged, ignore_errors=True)
        raise
    return out_dir
