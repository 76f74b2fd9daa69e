"""Training runs end to end on real scans and produces a model the engine loads; splits stay subject-wise."""

import csv

import numpy as np
import pytest
import torch

from spineai.cli import main
from spineai.errors import InputError
from spineai.inference import network_for
from spineai.io import read_image
from spineai.models.registry import model_for_task, sha256_of
from spineai.training.augment import augment
from spineai.training.cases import BUILTIN_MANIFESTS, hold_out_fold, read_manifest
from spineai.training.data import PatchSampler, prepare_slices
from spineai.training.train import CORD_SPEC

COLUMNS = ["image", "mask", "subject", "dataset", "contrast", "plane", "split"]


def write_manifest(path, rows):
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(COLUMNS)
        writer.writerows(rows)
    return path


def test_builtin_manifest_is_subject_wise_and_complete(data_dir):
    cases = read_manifest(BUILTIN_MANIFESTS["cord"], data_dir)
    train = {c.subject for c in cases if c.split == "train"}
    val = {c.subject for c in cases if c.split == "val"}
    assert train and val and not train & val
    assert {"T2w", "T2starw"} <= {c.contrast for c in cases if c.split == "val"}


def test_cross_validation_folds_hold_out_whole_subjects(data_dir):
    cases = read_manifest(BUILTIN_MANIFESTS["cord"], data_dir)
    folds = {case.fold for case in cases}
    assert len(folds) == 4
    for fold in folds:
        split = hold_out_fold(cases, fold)
        held_out = {c.subject for c in split if c.split == "val"}
        assert held_out == {c.subject for c in cases if c.fold == fold}
        assert not held_out & {c.subject for c in split if c.split == "train"}
    # Every sagittal T2w subject and both T1w scans sit in different folds: no fold loses a contrast.
    sagittal_t2 = [c.fold for c in cases if (c.plane, c.contrast) == ("sagittal", "T2w") and c.dataset == "sct-legacy"]
    assert len(set(sagittal_t2)) == len(sagittal_t2) == 3
    assert len({c.fold for c in cases if c.contrast == "T1w"}) == 2
    assert {c.split for c in hold_out_fold(cases, None)} == {"train"}
    with pytest.raises(InputError, match="no case is in fold '9'"):
        hold_out_fold(cases, "9")


def test_a_subject_in_two_folds_is_refused(tmp_path, data_dir):
    manifest = tmp_path / "folds.csv"
    manifest.write_text(
        ",".join(COLUMNS) + ",fold\n"
        "sct-testing/t2/t2.nii.gz,sct-testing/t2/t2_seg-manual.nii.gz,s1,d,T2w,sagittal,train,0\n"
        "sct-testing/t1/t1w.nii.gz,sct-testing/t1/t1w_seg-manual.nii.gz,s1,d,T1w,sagittal,train,1\n"
    )
    with pytest.raises(InputError, match="subjects in more than one of folds: s1"):
        read_manifest(manifest, data_dir)


def test_a_subject_in_both_splits_is_refused(tmp_path, data_dir):
    manifest = write_manifest(
        tmp_path / "leak.csv",
        [
            ["sct-testing/t2/t2.nii.gz", "sct-testing/t2/t2_seg-manual.nii.gz", "s1", "d", "T2w", "sagittal", "train"],
            ["sct-testing/t1/t1w.nii.gz", "sct-testing/t1/t1w_seg-manual.nii.gz", "s1", "d", "T1w", "sagittal", "val"],
        ],
    )
    with pytest.raises(InputError, match="subjects in more than one of train and val: s1"):
        read_manifest(manifest, data_dir)


def test_slices_are_prepared_as_inference_sees_them(data_dir):
    cases = read_manifest(BUILTIN_MANIFESTS["cord"], data_dir)
    errsm = next(c for c in cases if c.subject == "errsm_11")
    images, masks = prepare_slices(errsm, CORD_SPEC)
    assert images.shape == (52, 216, 384)  # 52 sagittal slices of the 1 mm PSR scan: 216 I->S by 384 P->A
    assert masks.dtype == np.uint8 and set(np.unique(masks)) == {0, 1}
    # normalise_intensity maps the spec's percentiles of the network-grid volume to 0 and 1, clipping at -0.5 and 2
    low, high = np.percentile(images, CORD_SPEC.percentiles)
    assert images.dtype == np.float32 and (low, high) == pytest.approx((0.0, 1.0), abs=1e-4)
    assert images.min() >= -0.5 and images.max() <= 2.0


def test_augmentation_keeps_masks_binary_and_is_reproducible(data_dir):
    cases = read_manifest(BUILTIN_MANIFESTS["cord"], data_dir)
    sampler = PatchSampler([prepare_slices(cases[0], CORD_SPEC)], patch_size=96)
    images, masks = sampler.sample(6, np.random.default_rng(1))
    assert masks.sum() > 0  # most patches hold cord
    first = augment(images, masks, torch.Generator().manual_seed(3))
    second = augment(images, masks, torch.Generator().manual_seed(3))
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert set(torch.unique(first[1]).tolist()) <= {0.0, 1.0}
    assert not torch.equal(first[0], images)


def test_slice_drift_makes_a_slice_and_its_neighbours_differ_in_gain():
    from spineai.training.augment import random_contrast

    flat = torch.full((64, 3, 8, 8), 0.5)  # three identical context slices
    steady = random_contrast(flat, torch.Generator().manual_seed(0), invert_probability=0.0)
    drifting = random_contrast(flat, torch.Generator().manual_seed(0), invert_probability=0.0, slice_drift=0.08)
    assert torch.allclose(steady[:, 0], steady[:, 1])
    gains = drifting[:, 0].mean((1, 2)) / drifting[:, 1].mean((1, 2))
    assert 0.03 < float(gains.log().std()) < 0.3


def test_train_command_writes_a_model_the_engine_loads(tmp_path, data_dir, capsys, monkeypatch):
    manifest = write_manifest(
        tmp_path / "tiny.csv",
        [
            [
                "sct-testing/t2/t2.nii.gz",
                "sct-testing/t2/t2_seg-manual.nii.gz",
                "a",
                "sct-testing",
                "T2w",
                "sagittal",
                "train",
            ],
            [
                "sct-testing/t2s/t2s.nii.gz",
                "sct-testing/t2s/t2s_seg.nii.gz",
                "b",
                "sct-testing",
                "T2starw",
                "axial",
                "val",
            ],
        ],
    )
    out = tmp_path / "model"
    code = main(
        [
            "train",
            "--data",
            str(data_dir),
            "--manifest",
            str(manifest),
            "--out",
            str(out),
            "--iterations",
            "3",
            "--batch-size",
            "2",
        ]
    )
    assert code == 0
    assert "sct-testing/T2starw" in capsys.readouterr().out  # per-dataset validation Dice is reported
    spec = model_for_task("cord", out)
    assert spec.sha256 == sha256_of(out / "cord.safetensors")
    assert spec.onnx.sha256 == sha256_of(out / "cord.onnx") and spec.onnx.input_shape == ("batch", 3, "height", "width")
    # Everything but the files is the shipped record's: the same settings, written by the same code.
    # New weights carry no measured figures until a benchmark measures them (``input_check``).
    shipped = model_for_task("cord").to_record()
    assert {k: v for k, v in spec.to_record().items() if k not in ("sha256", "onnx")} == {
        k: v for k, v in shipped.items() if k not in ("sha256", "onnx", "measured")
    }
    predictor = network_for("cord", "cpu", out)
    from spineai.orientation import to_canonical

    probability = predictor.probability(to_canonical(read_image(data_dir / "sct-testing/t2s/t2s.nii.gz")))
    assert probability.GetSize() == read_image(data_dir / "sct-testing/t2s/t2s.nii.gz").GetSize()


def test_context_slices_are_neighbours_with_repeated_edges():
    from spineai.inference import with_context

    slices = np.arange(4)[:, None, None] * np.ones((4, 2, 3))
    stacked = with_context(slices, np.array([0, 3]), context=1)
    assert stacked.shape == (2, 3, 2, 3)
    assert stacked[0, :, 0, 0].tolist() == [0, 0, 1]  # first slice: its missing lower neighbour repeats it
    assert stacked[1, :, 0, 0].tolist() == [2, 3, 3]
