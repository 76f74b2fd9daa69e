"""Training and evaluation of the dural sac network on axial canal phantoms (``synthetic_canal``).

The network sees level planes (``stenosis.planes``) normalised as inference normalises them and
gives four classes: background, sac without CSF (nerve roots, or a grey sac), CSF, posterior
epidural fat. A pool of phantoms of every Schizas grade is drawn and re-drawn in parts while
training; the test phantoms come from a seed training never uses.
"""

from __future__ import annotations

import numpy as np
import torch

from ..inference import class_probabilities, normalise_intensity
from ..measure.stenosis import section_measurements
from ..metrics import dice
from ..models.registry import model_for_task
from ..stenosis.grading import schizas_grade
from ..stenosis.planes import PLANE_SPACING_MM
from ..stenosis.segment import CLASS_BITS, SAC, clean_plane_labels
from .multiclass import fit_classes
from .synthetic_canal import GRADES, canal_phantom
from .weights import TorchRunner, inference_copy

SAC_SPEC = model_for_task("stenosis").untrained()  # the settings of the shipped record
TEST_SEED = 2024  # test phantoms; training seeds are small integers
POOL, REFRESH = 512, 64  # phantoms kept, and re-drawn after each batch


def bits_to_classes(bits: np.ndarray) -> np.ndarray:
    classes = np.zeros(bits.shape, np.int64)
    classes[(bits & SAC) > 0] = 1
    classes[(bits & 3) == 3] = 2
    classes[(bits & 4) > 0] = 3
    return classes


REAL_FRACTION = 0.35  # of each batch: real planes with rough sac labels (``real_sacs``), when given
HELD_OUT_SUBJECTS = ("ivd46",)  # lumbar-ivd subjects the sac network never sees (checks on real scans)


def real_training_planes(folder, subjects) -> list[tuple[np.ndarray, np.ndarray]]:
    """Planes of the healthy lumbar-ivd scans at and between their labelled discs, rough sac labels."""
    from ..orientation import canonical_array, to_canonical
    from ..stenosis.levels import disc_points, with_normals
    from .lumbar_ivd import read_lumbar_case
    from .real_sacs import real_sac_planes

    planes = []
    for subject in subjects:
        case = read_lumbar_case(folder, subject)
        codes = to_canonical(case.discs)
        classes = canonical_array(codes).astype(np.int64)
        levels = with_normals(disc_points(np.where(classes > 0, classes - 20, 0), codes, "labels"))
        planes += real_sac_planes(case.image, levels, SAC_SPEC.percentiles, steps=(-0.4, -0.2, 0.0, 0.2, 0.4))
    return planes


def phantom_sampler(seed: int, real_planes=()):
    """Batches from a pool of phantoms of all grades, part of it re-drawn at every call, and a share
    of real planes."""
    rng = np.random.default_rng(seed)
    pool = [_drawn(rng) for _ in range(POOL)]
    real = list(real_planes)

    def sample(batch_rng: np.random.Generator, batch_size: int):
        for index in batch_rng.choice(POOL, REFRESH // 8, replace=False):
            pool[index] = _drawn(rng)
        n_real = int(round(REAL_FRACTION * batch_size)) if real else 0
        chosen = [pool[i] for i in batch_rng.choice(POOL, batch_size - n_real, replace=False)]
        chosen += [real[i] for i in batch_rng.integers(len(real), size=n_real)]
        images = torch.from_numpy(np.stack([image for image, _ in chosen])[:, None])
        return images, torch.from_numpy(np.stack([classes for _, classes in chosen]))

    return sample


def _drawn(rng: np.random.Generator):
    phantom = canal_phantom(GRADES[rng.integers(len(GRADES))], rng)
    return normalise_intensity(phantom.image, SAC_SPEC.percentiles), bits_to_classes(phantom.labels)


def train_sac(iterations: int, seed: int = 0, progress=None, real_planes=(), initial=None, learning_rate=3e-3):
    sampler = phantom_sampler(seed, real_planes)
    return fit_classes(sampler, SAC_SPEC, iterations, 8, learning_rate, seed, progress=progress, initial=initial)


def evaluate_sac(model, per_grade: int = 20, seed: int = TEST_SEED) -> dict:
    """On phantoms training never saw: Dice of sac and CSF, DSCA error, and grade agreement per grade."""
    rng = np.random.default_rng(seed)
    runner = TorchRunner(inference_copy(model, SAC_SPEC))
    rows = []
    for grade in GRADES:
        phantoms = [canal_phantom(grade, rng) for _ in range(per_grade)]
        images = np.stack([normalise_intensity(p.image, SAC_SPEC.percentiles) for p in phantoms])
        classes = class_probabilities(runner, images, SAC_SPEC.size_divisor).argmax(1)
        for phantom, predicted in zip(phantoms, classes, strict=True):
            rows.append(_score(phantom, clean_plane_labels(CLASS_BITS[predicted])))
    return summarise_sac(rows)


def _score(phantom, predicted: np.ndarray) -> dict:
    truth_m = section_measurements(phantom.labels, PLANE_SPACING_MM)
    found = bool((predicted & SAC).any())
    predicted_m = section_measurements(predicted, PLANE_SPACING_MM) if found else None
    return {
        "grade": phantom.grade,
        "truth_rule_grade": schizas_grade(truth_m).value,
        "predicted_grade": schizas_grade(predicted_m).value if found else "none",
        "sac_dice": dice(predicted & SAC > 0, phantom.labels & SAC > 0),
        "csf_dice": dice((predicted & 3) == 3, (phantom.labels & 3) == 3),
        "area_error_pct": 100 * (predicted_m["dural_sac_area_mm2"] / truth_m["dural_sac_area_mm2"] - 1)
        if found
        else -100.0,
    }


def summarise_sac(rows: list[dict]) -> dict:
    summary = {}
    for grade in GRADES:
        mine = [row for row in rows if row["grade"] == grade]
        family = grade[0]
        summary[grade] = {
            "n": len(mine),
            "median_sac_dice": round(float(np.median([r["sac_dice"] for r in mine])), 3),
            "median_csf_dice": round(float(np.median([r["csf_dice"] for r in mine])), 3),
            "median_abs_area_error_pct": round(float(np.median([abs(r["area_error_pct"]) for r in mine])), 2),
            "rule_on_truth_agrees": round(float(np.mean([_same(r["truth_rule_grade"], grade) for r in mine])), 3),
            "grade_agrees": round(float(np.mean([_same(r["predicted_grade"], grade) for r in mine])), 3),
            "family_agrees": round(float(np.mean([r["predicted_grade"][:1] == family for r in mine])), 3),
        }
    return summary


def _same(graded: str, built: str) -> bool:
    """A2 phantoms count as agreeing when graded A1: the rules do not tell the horseshoe apart."""
    return graded == built or (built == "A2" and graded == "A1")
