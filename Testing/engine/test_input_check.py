"""The input's plane and contrast are held against the figures the model was measured on."""

import json
from pathlib import Path

import pytest

from spineai.input_check import check_input, contrast_from_name, sliced_plane
from spineai.models.registry import model_for_task


@pytest.mark.parametrize(
    ("name", "contrast"),
    [
        ("sub-unf01_T1w.nii.gz", "T1w"),
        ("sub-unf01_T2star.nii.gz", "T2starw"),
        ("sub-9604_run-1_T2starw.nii.gz", "T2starw"),
        ("sub-unf01_T2w.nii.gz", "T2w"),
        ("/data/sct-testing/t2s/t2s.nii.gz", "T2starw"),
        ("mt1.nii.gz", "MT"),
        ("errsm_18/gre/gre.nii.gz", "T2starw"),
        ("3: T1 TSE AX", "T1w"),  # a Slicer volume named by its DICOM series description
        ("5: T2* MEDIC", "T2starw"),
        ("sub-01_acq-sag_T2w", "T2w"),
        ("scan_0042.nii.gz", None),
        ("mystery", None),
    ],
)
def test_contrast_is_read_from_the_name(name, contrast):
    assert contrast_from_name(name) == contrast


def test_plane_is_the_axis_the_network_slices():
    assert sliced_plane((7.5, 0.5, 0.5), (9, 54, 49)) == "axial"
    assert sliced_plane((1.0, 1.0, 1.0), (216, 384, 52)) == "sagittal"  # isotropic: fewest voxels
    assert sliced_plane((1.0, 3.0, 1.0), (200, 20, 200)) == "coronal"


def test_a_contrast_measured_below_080_is_not_supported():
    spec = model_for_task("cord")
    low = next(row for row in spec.measured if row["median_dice"] < 0.80)
    check = check_input(spec, low["plane"], f"sub-x_{low['contrast']}.nii.gz")
    assert check["supported"] is False and "not supported" in check["note"]
    good = next(row for row in spec.measured if row["median_dice"] >= 0.80)
    assert check_input(spec, good["plane"], f"scan_{good['contrast']}.nii.gz")["supported"] is True
    unknown = check_input(spec, "axial", "scan_0042.nii.gz")
    assert unknown["supported"] is None and "not known from its name" in unknown["note"]
    assert check_input(model_for_task("discs"), "sagittal", "sub-x_T2w") is None  # nothing measured, nothing claimed


def test_a_row_may_name_its_figure_and_the_dice_it_is_held_against():
    from dataclasses import replace

    synthetic = {"figure": "median Dice on synthetic lesions", "supported_from": 0.6}
    rows = ({"plane": "axial", "contrast": "T2w", "median_dice": 0.7, "scans": 3} | synthetic,)
    spec = replace(model_for_task("lesion"), measured=rows)
    check = check_input(spec, "axial", "sub-x_T2w")
    assert check["supported"] is True and "median Dice on synthetic lesions 0.70 on 3 scan(s)" in check["note"]
    spec = replace(spec, measured=(rows[0] | {"median_dice": 0.55},))
    assert "below 0.60" in check_input(spec, "axial", "sub-x_T2w")["note"]


def test_a_site_model_is_held_against_the_contrasts_it_was_fine_tuned_on(capsys):
    """A site model taught on T1w cases: a T1w scan is within what it was taught; a T2*w scan, or
    one whose name states no contrast, is outside it, and the task warns as for an unsupported one."""
    from dataclasses import replace

    from spineai.tasks import get_task

    site = replace(model_for_task("cord"), name="cord-site-2026-12-08", taught=("T1w",))
    inside = check_input(site, "axial", "sub-x_T1w.nii.gz")
    assert inside["taught"] is True and inside["note"] == "cord-site-2026-12-08 was fine-tuned on this site's T1w cases"
    for name, what in (("sub-x_T2star.nii.gz", "on T2starw"), ("scan_0042.nii.gz", "whose name states no contrast")):
        outside = check_input(site, "axial", name)
        assert outside["taught"] is False and outside["supported"] is None
        assert what in outside["note"] and "may have lost some of what its starting model knew" in outside["note"]
        warning = get_task("cord").warning(name, {"input_check": outside})
        assert warning == f"{name}: {outside['note']}"
    assert get_task("cord").warning("sub-x_T1w.nii.gz", {"input_check": inside}) is None
    assert check_input(replace(site, taught=("unknown",)), "axial", "sub-x_T2w") is None  # no case named its contrast


def test_the_shipped_record_carries_its_cross_validated_figures():
    """The record's figures are the cross-validated medians of the recipe the shipped model was trained with."""
    spec = model_for_task("cord")
    results = json.loads((Path(__file__).parents[2] / "benchmarks/results/cord_crossval.json").read_text())
    assert results["shipped"]["model_sha256"] == spec.sha256
    medians = results["recipes"][results["shipped"]["recipe"]]["median_dice_by_plane_and_contrast"]
    recorded = {f"{r['plane']} {r['contrast']}": r["median_dice"] for r in spec.measured}
    assert recorded == medians and sum(r["scans"] for r in spec.measured) == 19


def test_segment_says_when_the_input_contrast_is_not_supported(tmp_path, data_dir, capsys):
    """A real axial T1w scan: the sidecar records the check and the CLI prints one warning line."""
    from spineai.cli import main

    scan = data_dir / "ivadomed-unf01/sub-unf01_T1w.nii.gz"
    assert main(["segment", str(scan), "--out", str(tmp_path), "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    sidecar = json.loads((tmp_path / "sub-unf01_T1w_cord_seg.json").read_text())
    assert sidecar["input_check"]["plane"] == "axial" and sidecar["input_check"]["contrast"] == "T1w"
    assert sidecar["input_check"]["supported"] is False
    assert err.count("\n") == 1 and "axial T1w is not supported" in err and str(scan) in err


@pytest.mark.parametrize(
    ("task", "unsupported", "supported"),
    [
        ("lesion", ("sagittal", "sct-legacy/errsm_21/t2/t2.nii.gz"), ("axial", "sub-unf01_T2w.nii.gz")),
        ("tumor", ("axial", "sub-unf01_T2star.nii.gz"), ("axial", "sub-unf01_T1w.nii.gz")),
    ],
)
def test_the_lesion_and_tumour_records_carry_their_synthetic_figures(task, unsupported, supported):
    """Their figures are medians on synthetic targets (benchmarks/synthetic_accuracy.py --record):
    the lesion model on sagittal T2w (0.18) and the tumour model on axial T2*w (0.53) are called not
    supported in the sidecar; the tumour model on axial T1w, its purpose, is (0.88)."""
    import statistics

    spec = model_for_task(task)
    results = json.loads((Path(__file__).parents[2] / f"benchmarks/results/{task}_accuracy.json").read_text())
    assert results["sha256"] == spec.sha256
    painted: dict[str, list[float]] = {}
    for row in results["cases"]:
        if row["painted"] == "yes":
            _, contrast, plane = row["group"].split("/")
            painted.setdefault(f"{plane} {contrast}", []).append(row["dice"])
    recorded = {f"{r['plane']} {r['contrast']}": r["median_dice"] for r in spec.measured}
    assert recorded == {key: round(statistics.median(dice), 4) for key, dice in painted.items()}
    check = check_input(spec, *unsupported)
    assert check["supported"] is False and "median Dice on synthetic" in check["note"] and "below 0.60" in check["note"]
    assert check_input(spec, *supported)["supported"] is True
