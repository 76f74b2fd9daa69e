"""The tumour task end to end: painted tumours, post-processing, the pipeline on real scans, the CLI."""

import csv
import json
import math

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.cli import EXIT_USER_ERROR, main
from spineai.io import read_image
from spineai.metrics import dice, lesion_detection
from spineai.orientation import canonical_array, spacing_zyx, to_canonical
from spineai.pipeline import segment
from spineai.postprocess import clean_tumor_mask
from spineai.training.synthetic_tumors import TumorShape, synthesise_tumors

# unf01 and gm-challenge 9604 are validation subjects: no network saw them in training.
UNF01 = "ivadomed-unf01/sub-unf01_{}.nii.gz"
UNF01_CORD = "ivadomed-unf01/sub-unf01_{}_seg-manual.nii.gz"
GM_9604 = "gm-challenge/sub-9604/anat/sub-9604_run-1_T2starw.nii.gz"
GM_9604_CORD = "gm-challenge/derivatives/labels/sub-9604/anat/sub-9604_run-1_T2starw_seg-manual.nii.gz"


def shape(inside: bool) -> TumorShape:
    """One tumour of fixed size: 12 mm long, 3 mm semi-axes, regular, no core."""
    return TumorShape(
        length_mm=(12.0, 12.0),
        radius_mm=(3.0, 3.0),
        enhancement=(1.0, 1.0),
        intramedullary_probability=1.0 if inside else 0.0,
        core_probability=0.0,
        irregularity=0.0,
    )


LARGE = TumorShape(
    length_mm=(30.0, 30.0),
    radius_mm=(5.0, 5.0),
    enhancement=(1.5, 1.5),
    intramedullary_probability=1.0,
    core_probability=0.0,
    irregularity=0.0,
)


def painted_scan(data_dir, contrast="T1w", inside=True, seed=3, scan=UNF01, cord_mask=UNF01_CORD, tumor=None):
    image = to_canonical(read_image(data_dir / scan.format(contrast)))
    cord = canonical_array(to_canonical(read_image(data_dir / cord_mask.format(contrast)))) > 0
    array, tumor = synthesise_tumors(
        canonical_array(image, np.float32),
        cord,
        spacing_zyx(image),
        np.random.default_rng(seed),
        1,
        tumor or shape(inside),
    )
    painted = sitk.GetImageFromArray(array)
    painted.CopyInformation(image)
    return painted, tumor.astype(bool), cord


def test_painted_tumors_sit_in_or_beside_the_cord_and_enhance(data_dir):
    image, inside, cord = painted_scan(data_dir, inside=True)
    assert inside.any() and not (inside & ~cord).any()
    _, outside, _ = painted_scan(data_dir, inside=False)
    assert outside.any() and (outside & cord).sum() < 0.1 * outside.sum()
    original = canonical_array(to_canonical(read_image(data_dir / UNF01.format("T1w"))), np.float32)
    assert canonical_array(image)[inside].mean() > 1.5 * np.median(original[cord])


@pytest.mark.torch  # the training package
def test_a_host_in_a_random_tissue_contrast_keeps_its_anatomy_and_a_visible_cord(data_dir):
    """Re-drawn tissue contrast on a real T1w: new intensities, the same edges (a voxel's value is a
    function of its old one), and the cord bright enough for a target painted relative to it."""
    from spineai.inference import normalise_intensity
    from spineai.training.synthetic_data import random_tissue_contrast

    image = to_canonical(read_image(data_dir / UNF01.format("T1w")))
    array = normalise_intensity(canonical_array(image, np.float32), (0.5, 99.5))
    cord = canonical_array(to_canonical(read_image(data_dir / UNF01_CORD.format("T1w")))) > 0
    for seed in range(5):
        redrawn = random_tissue_contrast(array, cord, np.random.default_rng(seed))
        assert redrawn.shape == array.shape and 0.0 <= redrawn.min() and redrawn.max() <= 1.0
        assert np.median(redrawn[cord]) >= 0.2
        order = np.argsort(np.clip(array, 0, 1), axis=None)
        assert np.abs(np.diff(redrawn.ravel()[order])).max() < 0.05  # a curve of the old value, no noise
        assert abs(np.corrcoef(redrawn.ravel(), array.ravel())[0, 1]) < 0.99  # not the scan's own contrast


def test_tumor_clean_up_keeps_every_plausible_mass_near_the_cord_and_drops_specks():
    probability = np.zeros((20, 60, 60), np.float32)
    cord = np.zeros(probability.shape, np.uint8)
    cord[:, 10:14, 10:14] = 1
    probability[2:8, 5:10, 5:10] = 0.9  # a mass by the cord
    probability[12:15, 14:19, 14:19] = 0.8  # a second one: tumours may be several
    probability[18, 1, 1] = 0.9  # a speck
    probability[5:10, 50:55, 50:55] = 0.9  # a bright blob 36 mm from the cord: not a spinal tumour
    mask, dropped = clean_tumor_mask(probability, cord, spacing=(1.0, 1.0, 1.0))
    assert mask.sum() == 6 * 25 + 3 * 25 and dropped == 5 * 25
    assert clean_tumor_mask(probability)[0].sum() == 6 * 25 + 3 * 25 + 5 * 25  # no cord: kept


def test_painted_tumor_in_a_held_out_scan_is_found(data_dir):
    """The pipeline on a tumour the model finds: a large (30 x 10 x 10 mm) intramedullary one in a
    held-out axial T2*w. How often it finds tumours is the benchmark's business: it misses small
    ones, and those on T2w (benchmarks/synthetic_accuracy.py, model card)."""
    image, truth, _ = painted_scan(data_dir, scan=GM_9604, cord_mask=GM_9604_CORD, tumor=LARGE)
    result = segment(image, "tumor", device="cpu")
    labels = canonical_array(result.mask)
    tumor = (labels & 2) > 0
    assert result.mask.GetSize() == image.GetSize()
    assert lesion_detection(tumor, truth)["lesion_recall"] == 1.0
    assert dice(tumor, truth) > 0.5
    assert [m["task"] for m in result.sidecar["models"]] == ["cord", "tumor"]
    assert result.sidecar["expected_contrast"] == "Gd-enhanced T1w"


@pytest.mark.parametrize(("inside", "seed"), [(True, 3), (False, 4)])
def test_a_small_tumour_in_a_held_out_t1w_is_found_in_or_beside_the_cord(data_dir, inside, seed):
    """A 12 mm enhancing mass painted into unf01's axial T1w, a subject and contrast training never
    had (its hosts are T2-like but for one sagittal T1w): found, and what is found elsewhere stays
    under the 100 mm^3 of false tumour the issue allows on a tumour-free T1w (63 mm^3 there)."""
    image, truth, _ = painted_scan(data_dir, contrast="T1w", inside=inside, seed=seed)
    tumor = (canonical_array(segment(image, "tumor", device="cpu").mask) & 2) > 0
    assert lesion_detection(tumor, truth)["lesion_recall"] == 1.0 and dice(tumor, truth) > 0.6
    assert (tumor & ~truth).sum() * math.prod(spacing_zyx(image)) < 100


def test_segment_command_writes_tumor_map_and_table_and_says_what_contrast_it_expects(data_dir, tmp_path):
    """A T2*w given to the Gd-T1 task is run, and the sidecar and table say what the model expects. The
    painted tumour is the large one the model finds (see above), so the volume is always checked."""
    image, truth, _ = painted_scan(data_dir, scan=GM_9604, cord_mask=GM_9604_CORD, tumor=LARGE)
    scan = tmp_path / "t2s_painted.nii.gz"
    sitk.WriteImage(image, str(scan))
    out = tmp_path / "out"
    assert main(["segment", str(scan), "--task", "tumor", "--out", str(out), "--device", "cpu"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == ["t2s_painted_tumor.csv", "t2s_painted_tumor_seg.json", "t2s_painted_tumor_seg.nii.gz"]
    labels = sitk.GetArrayFromImage(read_image(out / "t2s_painted_tumor_seg.nii.gz"))
    assert set(np.unique(labels)) <= {0, 1, 2, 3}
    with open(out / "t2s_painted_tumor.csv", newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert rows[-1]["label"] == "total" and all(r["expected_contrast"] == "Gd-enhanced T1w" for r in rows)
    sidecar = json.loads((out / "t2s_painted_tumor_seg.json").read_text(encoding="utf-8"))
    assert sidecar["tumor"]["expected_contrast"] == "Gd-enhanced T1w"
    assert sidecar["input_appearance"]["appearance"].startswith("T2-like")
    assert sidecar["tumor"]["tumor_found"] is True
    voxel_mm3 = math.prod(spacing_zyx(image))
    # The table measures the written mask exactly; the mask is the painted tumour give or take the
    # model's error (+23 % median volume error on these scans, model card).
    assert float(rows[-1]["volume"]) == pytest.approx(np.count_nonzero(labels & 2) * voxel_mm3)
    assert float(rows[-1]["volume"]) == pytest.approx(truth.sum() * voxel_mm3, rel=0.5)


def test_measure_command_measures_a_tumor_map_and_refuses_other_values(data_dir, tmp_path, capsys):
    image, tumor, cord = painted_scan(data_dir, "T1w")
    labels = sitk.GetImageFromArray(cord.astype(np.uint8) | (tumor.astype(np.uint8) << 1))
    labels.CopyInformation(image)
    path = tmp_path / "case_tumor_seg.nii.gz"
    sitk.WriteImage(labels, str(path))
    assert main(["measure", str(path), "--task", "tumor", "--out", str(tmp_path / "m")]) == 0
    with open(tmp_path / "m" / "case_tumor.csv", newline="", encoding="utf-8") as handle:
        total = list(csv.DictReader(handle))[-1]
    assert float(total["volume"]) == pytest.approx(tumor.sum() * math.prod(spacing_zyx(image)))
    assert total["compartment"] == "intramedullary"
    sitk.WriteImage(labels * 2, str(tmp_path / "bad.nii.gz"))
    assert main(["measure", str(tmp_path / "bad.nii.gz"), "--task", "tumor", "--out", str(tmp_path / "n")]) == (
        EXIT_USER_ERROR
    )
    assert "not a tumor label map" in capsys.readouterr().err and not (tmp_path / "n").exists()


def test_sidecar_says_when_no_cord_was_found_even_if_tumors_were(data_dir, tmp_path, monkeypatch):
    """Tumours without a cord (the cord network found none): the sidecar must say so, and the
    compartment is unknown. The cord is taken out of a real result that holds a tumour for sure."""
    from spineai import pipeline

    real_segment = pipeline.segment

    def finds_no_cord(image, *args, **kwargs):
        result = real_segment(image, *args, **kwargs)
        result.mask = result.mask & 2  # keep the tumour bit, drop the cord bit
        return result

    monkeypatch.setattr(pipeline, "segment", finds_no_cord)
    image, _, _ = painted_scan(data_dir, scan=GM_9604, cord_mask=GM_9604_CORD, tumor=LARGE)
    scan, out = tmp_path / "painted.nii.gz", tmp_path / "o"
    sitk.WriteImage(image, str(scan))
    assert main(["segment", str(scan), "--task", "tumor", "--out", str(out), "--device", "cpu"]) == 0
    sidecar = json.loads((out / "painted_tumor_seg.json").read_text(encoding="utf-8"))
    assert sidecar["tumor"]["tumor_found"] is True
    assert sidecar["cord_found"] is False and sidecar["tumor"]["cord_found"] is False
    with open(out / "painted_tumor.csv", newline="", encoding="utf-8") as handle:
        assert list(csv.DictReader(handle))[-1]["compartment"] == "unknown (no cord)"


def test_tumor_task_finds_the_cord_on_axial_t1w(data_dir):
    """The compartment stands on the cord. unf01 T1w is one of the shipped cord model's training scans
    (a fit check: on a new subject's T1w the cord model is not supported, cord.md)."""
    result = segment(read_image(data_dir / UNF01.format("T1w")), "tumor", device="cpu")
    cord = (canonical_array(to_canonical(result.mask)) & 1) > 0
    manual = canonical_array(to_canonical(read_image(data_dir / UNF01_CORD.format("T1w")))) > 0
    assert dice(cord, manual) > 0.5
