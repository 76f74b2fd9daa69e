"""The lesion task end to end: synthetic lesions, post-processing, the pipeline on a real scan, the CLI, training."""

import csv
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk
from scipy import ndimage

from spineai.cli import EXIT_USER_ERROR, main
from spineai.io import read_image
from spineai.metrics import dice, lesion_detection
from spineai.models.registry import MODELS_DIR, model_for_task, sha256_of
from spineai.orientation import canonical_array, spacing_zyx, to_canonical
from spineai.pipeline import segment
from spineai.postprocess import lesion_label_map
from spineai.sample import T2, T2_CORD_MANUAL
from spineai.training.synthetic_lesions import LesionShape, synthesise_lesions

# unf01 and gm-challenge 9604 are validation subjects: no network saw them in training.
UNF01_T2 = "ivadomed-unf01/sub-unf01_T2w.nii.gz"
UNF01_CORD = "ivadomed-unf01/sub-unf01_T2w_seg-manual.nii.gz"
GM_9604 = "gm-challenge/sub-9604/anat/sub-9604_run-1_T2starw.nii.gz"
GM_9604_CORD = "gm-challenge/derivatives/labels/sub-9604/anat/sub-9604_run-1_T2starw_seg-manual.nii.gz"
# One lesion of fixed geometry: 10 mm long, 2 x 2 mm semi-axes, regular outline, no haemorrhage.
# (unf01 T2w is 1 mm isotropic with 16 axial slices.)
KNOWN_LESION = LesionShape(
    length_mm=(10.0, 10.0), radius_mm=(2.0, 2.0), contrast=(0.8, 0.8), haemorrhage_probability=0.0, irregularity=0.0
)
# A clear lesion for the end-to-end tests: 20 mm long, 2.5 mm semi-axes, as bright as CSF.
CLEAR_LESION = LesionShape(
    length_mm=(20.0, 20.0), radius_mm=(2.5, 2.5), contrast=(1.0, 1.0), haemorrhage_probability=0.0, irregularity=0.0
)


def canonical(path):
    return to_canonical(read_image(path))


def painted_scan(data_dir, seed=1, scan=UNF01_T2, cord_mask=UNF01_CORD, shape=KNOWN_LESION):
    """A held-out scan with one lesion of known geometry painted into its manual cord (canonical image, truth)."""
    image = canonical(data_dir / scan)
    cord = canonical_array(canonical(data_dir / cord_mask)) > 0
    array, lesion = synthesise_lesions(
        canonical_array(image, np.float32), cord, spacing_zyx(image), np.random.default_rng(seed), 1, shape
    )
    painted = sitk.GetImageFromArray(array)
    painted.CopyInformation(image)
    return painted, lesion.astype(bool), cord


# --- synthetic lesions ----------------------------------------------------------------------------


def test_synthetic_lesion_is_inside_the_cord_bright_and_of_the_drawn_size(data_dir):
    image, lesion, cord = painted_scan(data_dir)
    original = canonical_array(canonical(data_dir / UNF01_T2), np.float32)
    painted = canonical_array(image)
    assert lesion.any() and not (lesion & ~cord).any()
    assert np.array_equal(painted[~cord], original[~cord])  # nothing changes outside the cord
    assert painted[lesion].mean() > 1.3 * np.median(original[cord])  # T2-hyperintense
    # An ellipsoid of 10 x 4 x 4 mm, cut by the cord's edge at most a little.
    volume = lesion.sum() * math.prod(spacing_zyx(image))
    ellipsoid = 4 / 3 * math.pi * 5 * 2 * 2
    assert 0.6 * ellipsoid < volume < 1.4 * ellipsoid


def test_synthetic_lesions_are_reproducible_and_leave_the_input_untouched(data_dir):
    image = canonical_array(canonical(data_dir / UNF01_T2), np.float32)
    cord = canonical_array(canonical(data_dir / UNF01_CORD)) > 0
    before = image.copy()
    first = synthesise_lesions(image, cord, (1.0, 1.0, 1.0), np.random.default_rng(7), 3)
    second = synthesise_lesions(image, cord, (1.0, 1.0, 1.0), np.random.default_rng(7), 3)
    assert np.array_equal(image, before)
    assert np.array_equal(first[0], second[0]) and np.array_equal(first[1], second[1])


def test_a_swollen_cord_pushes_into_the_csf_only_beside_the_lesion(data_dir):
    swelling = LesionShape(**{**KNOWN_LESION.__dict__, "swelling_probability": 1.0, "swelling_mm": (1.5, 1.5)})
    image, lesion, cord = painted_scan(data_dir, shape=swelling)
    original = canonical_array(canonical(data_dir / UNF01_T2), np.float32)
    changed = canonical_array(image) != original
    lesion_slices = np.flatnonzero(lesion.any(axis=(1, 2)))
    outside = changed & ~cord  # the CSF the swollen cord took: cord-grey, within 1.5 mm of the cord
    assert outside.any() and set(np.flatnonzero(outside.any(axis=(1, 2)))) <= set(
        range(lesion_slices.min() - 1, lesion_slices.max() + 2)
    )
    assert (ndimage.distance_transform_edt(~cord, sampling=spacing_zyx(image))[outside] <= 1.5 + 1e-6).all()
    took = canonical_array(image)[outside & ~lesion]  # swollen tissue (and the lesion's faint edge)
    assert np.median(took) == pytest.approx(np.median(original[cord]), rel=0.05)
    assert np.median(took) < np.median(original[outside])  # it was CSF, brighter than cord on T2


def test_a_lobulated_lesion_stays_in_the_cord_and_within_its_drawn_length(data_dir):
    lobulated = LesionShape(**{**KNOWN_LESION.__dict__, "family": "lobulated", "length_mm": (14.0, 14.0)})
    for seed in range(4):
        _, lesion, cord = painted_scan(data_dir, shape=lobulated, seed=seed)
        slices = np.flatnonzero(lesion.any(axis=(1, 2)))  # unf01 T2w: 1 mm slices
        assert lesion.any() and not (lesion & ~cord).any()
        assert slices.max() - slices.min() + 1 <= 14 + 2 and ndimage.label(lesion)[1] <= 3  # 2-3 lobes


# --- post-processing ------------------------------------------------------------------------------


def test_lesion_candidates_mostly_outside_the_cord_are_dropped_and_counted():
    cord = np.zeros((10, 20, 20), np.uint8)
    cord[:, 8:12, 8:12] = 1
    probability = np.zeros(cord.shape, np.float32)
    probability[3:6, 9:11, 9:13] = 0.9  # inside, and reaching one voxel beyond the cord: kept whole
    probability[3:5, 1:3, 1:3] = 0.9  # far from the cord: dropped
    probability[7:9, 12:14, 9:11] = 0.9  # touching the cord from outside (CSF at its edge): dropped
    labels, dropped = lesion_label_map(cord, probability)
    assert dropped == 8 + 8
    assert np.count_nonzero(labels == 2) == 3 * 2 * 4
    assert labels[4, 10, 12] == 2  # the cord grows to hold the lesion
    assert np.count_nonzero(labels == 1) == cord.sum() - 3 * 2 * 3


# --- the pipeline ---------------------------------------------------------------------------------


def clear_lesion_scan(data_dir):
    """gm-challenge 9604 (axial T2*w, held out) with a clear lesion. The pipeline is checked on a
    lesion the model finds; how often it finds lesions is the benchmark's business
    (benchmarks/synthetic_accuracy.py: it misses most on 1 mm axial and sagittal scans)."""
    return painted_scan(data_dir, 1, GM_9604, GM_9604_CORD, CLEAR_LESION)


def test_painted_lesion_in_a_held_out_scan_is_found_and_measured(data_dir, tmp_path):
    image, truth, _ = clear_lesion_scan(data_dir)
    result = segment(image, "lesion", device="cpu")
    labels = canonical_array(result.mask)
    assert result.mask.GetSize() == image.GetSize() and result.mask.GetSpacing() == image.GetSpacing()
    assert set(np.unique(labels)) == {0, 1, 2}
    assert lesion_detection(labels == 2, truth)["lesion_recall"] == 1.0
    assert dice(labels == 2, truth) > 0.6  # (the model also calls a few grey-matter specks lesions here)
    assert [m["task"] for m in result.sidecar["models"]] == ["cord", "lesion"]
    assert result.sidecar["labels"] == {"1": "Spinal cord", "2": "Spinal cord injury lesion"}


def test_segment_command_writes_label_map_lesion_table_and_sidecar(data_dir, tmp_path, capsys):
    image, truth, _ = clear_lesion_scan(data_dir)
    scan = tmp_path / "painted.nii.gz"
    sitk.WriteImage(image, str(scan))
    out = tmp_path / "out"
    assert main(["segment", str(scan), "--task", "lesion", "--out", str(out), "--device", "cpu"]) == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "painted_lesion.csv",
        "painted_lesion_seg.json",
        "painted_lesion_seg.nii.gz",
    ]
    with open(out / "painted_lesion.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[0]["label"] == "1" and rows[-1]["label"] == "total"
    true_volume = truth.sum() * math.prod(spacing_zyx(image))
    assert float(rows[0]["volume"]) == pytest.approx(true_volume, rel=0.3)  # the largest lesion is the painted one
    sidecar = json.loads((out / "painted_lesion_seg.json").read_text(encoding="utf-8"))
    assert sidecar["lesion"]["lesion_found"] is True
    assert sidecar["model_sha256"] == sha256_of(model_for_task("lesion").weights_path)
    assert sidecar["model_contrasts"] == ["T2w", "T2starw"]


def test_healthy_scan_gives_a_row_of_zeros_and_a_flag(tmp_path, capsys):
    """The bundled sample is a healthy cord: no lesion is reported, and that is a result, not an error."""
    assert main(["segment", str(T2), "--task", "lesion", "--out", str(tmp_path), "--device", "cpu"]) == 0
    with open(tmp_path / "t2_lesion.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 1 and rows[0]["label"] == "total"
    assert float(rows[0]["volume"]) == 0 and rows[0]["n_lesions"] == "0"
    sidecar = json.loads((tmp_path / "t2_lesion_seg.json").read_text(encoding="utf-8"))
    assert sidecar["lesion"]["lesion_found"] is False and sidecar["cord_found"] is True
    labels = sitk.GetArrayFromImage(read_image(tmp_path / "t2_lesion_seg.nii.gz"))
    cord = sitk.GetArrayFromImage(read_image(T2_CORD_MANUAL)) > 0
    assert dice(labels >= 1, cord) > 0.85


# --- training on a site's own labels --------------------------------------------------------------


@pytest.mark.torch
def test_train_lesion_on_own_labelled_data(tmp_path, data_dir, capsys):
    """A site with real lesion labels (label maps 0/1/2, the layout the task writes) trains its own model."""
    rows = []
    for subject, seed in (("a", 1), ("b", 2)):
        image, lesion, cord = painted_scan(data_dir, seed)
        labels = sitk.GetImageFromArray(np.where(lesion, 2, cord.astype(np.uint8)).astype(np.uint8))
        labels.CopyInformation(image)
        sitk.WriteImage(image, str(tmp_path / f"{subject}.nii.gz"))
        sitk.WriteImage(labels, str(tmp_path / f"{subject}_labels.nii.gz"))
        split = "train" if subject == "a" else "val"
        rows.append([f"{subject}.nii.gz", f"{subject}_labels.nii.gz", subject, "site", "T2w", "axial", split])
    manifest = tmp_path / "site.csv"
    with open(manifest, "w", newline="") as handle:
        csv.writer(handle).writerows([["image", "mask", "subject", "dataset", "contrast", "plane", "split"], *rows])
    out = tmp_path / "model"
    argv = ["train", "--task", "lesion", "--data", str(tmp_path), "--manifest", str(manifest), "--out", str(out)]
    # Fine-tuned from SpineAI's shipped lesion model, as a site with a few real labels would do.
    assert main([*argv, "--iterations", "3", "--batch-size", "2", "--init", str(MODELS_DIR)]) == 0
    assert "site/T2w" in capsys.readouterr().out  # validated on the site's own labels
    spec = model_for_task("lesion", out)
    assert spec.task == "lesion" and spec.sha256 == sha256_of(out / "lesion.safetensors")
    assert spec.onnx.sha256 == sha256_of(out / "lesion.onnx")  # fine-tuned models get their graph too
    metrics = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["validation_cases"][0]["true_lesions"] == 1  # the real label, not a synthetic one


# --- measuring a corrected label map --------------------------------------------------------------


def test_measure_command_measures_a_corrected_label_map(tmp_path, capsys):
    cord = read_image(T2_CORD_MANUAL)
    labels = canonical_array(to_canonical(cord)).astype(np.uint8)
    z = np.flatnonzero(labels.any(axis=(1, 2)))[len(labels) // 3]
    ys, xs = np.nonzero(labels[z])
    box = (slice(z, z + 5), slice(ys.min() + 1, ys.min() + 3), slice(xs.min() + 1, xs.max()))
    labels[box] = np.where(labels[box] > 0, 2, 0)  # a 5-slice lesion inside the cord, as a user would paint it
    painted = sitk.GetImageFromArray(labels)
    painted.CopyInformation(to_canonical(cord))
    path = tmp_path / "edited_lesion_seg.nii.gz"
    sitk.WriteImage(painted, str(path))
    assert (
        main(["measure", str(path), "--task", "lesion", "--image", str(T2), "--out", str(tmp_path / "m")])
        == EXIT_USER_ERROR
    )
    # The canonical copy is not on the scan's grid (PSR): refused, naming the file; on its own it is measured.
    assert "does not match the geometry" in capsys.readouterr().err
    assert main(["measure", str(path), "--task", "lesion", "--out", str(tmp_path / "m")]) == 0
    with open(tmp_path / "m" / "edited_lesion.csv", newline="", encoding="utf-8") as handle:
        total = list(csv.DictReader(handle))[-1]
    voxel = math.prod(cord.GetSpacing())
    assert float(total["volume"]) == pytest.approx(np.count_nonzero(labels == 2) * voxel)


def test_measure_command_refuses_a_map_with_other_labels(tmp_path, capsys):
    labels = sitk.Cast(read_image(T2_CORD_MANUAL), sitk.sitkUInt8) * 3
    path = tmp_path / "wrong.nii.gz"
    sitk.WriteImage(labels, str(path))
    assert main(["measure", str(path), "--task", "lesion", "--out", str(tmp_path / "m")]) == EXIT_USER_ERROR
    err = capsys.readouterr().err
    assert "wrong.nii.gz" in err and "not a lesion label map" in err
    assert not (tmp_path / "m").exists()
