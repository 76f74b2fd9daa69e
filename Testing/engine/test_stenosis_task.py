"""The stenosis task end to end: disc levels on real lumbar scans, the pipeline, the CLI and bad input.

The disc network was trained on the five ``lumbar-ivd`` scans, so on them these tests check that the
shipped model and the level logic work, not how well it generalises (that is the leave-one-out
figure of ``benchmarks/stenosis_accuracy.py``); ``t2_lumbar_sagittal`` is a scan it never saw.
"""

import csv
import json

import numpy as np
import pytest
import SimpleITK as sitk

from spineai.cli import EXIT_USER_ERROR, main
from spineai.stenosis.levels import DISC_NAMES, find_discs, level_problems
from spineai.stenosis.planes import PLANE_PIXELS, PLANE_SPACING_MM, POSTERIOR_SHIFT_MM
from spineai.training.lumbar_ivd import SUBJECTS, read_lumbar_case, with_documented_axes
from spineai.training.synthetic_canal import canal_phantom

LEVEL_NAMES = list(DISC_NAMES.values())


@pytest.fixture(scope="module")
def lumbar_scan(data_dir, tmp_path_factory):
    """ivd46 (a subject the sac network never saw) written with the geometry its README documents
    (the shared copy has an identity header)."""
    path = tmp_path_factory.mktemp("lumbar") / "ivd46_t2.nii.gz"
    image = with_documented_axes(sitk.ReadImage(str(data_dir / "lumbar-ivd" / "ivd46_t2.nii.gz")))
    sitk.WriteImage(image, str(path))
    return path


def read_rows(path):
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.mark.parametrize("subject", SUBJECTS)
def test_every_disc_is_found_in_order_on_the_real_lumbar_scans(data_dir, subject):
    case = read_lumbar_case(data_dir / "lumbar-ivd", subject)
    levels = find_discs(case.image, "cpu")
    assert [level.name for level in levels] == LEVEL_NAMES
    assert level_problems(levels) == {}
    heights = [level.point[2] for level in levels]
    assert heights == sorted(heights, reverse=True)  # L1-L2 on top
    labels = sitk.GetArrayFromImage(case.discs)
    for level in levels:  # each point lies in (or within 3 mm of) its labelled disc
        truth = np.argwhere(labels == level.code)
        centre = case.discs.TransformContinuousIndexToPhysicalPoint(truth.mean(0)[::-1].tolist())
        assert np.linalg.norm(np.subtract(level.point, centre)) < 5.0, level.name


def test_discs_on_a_lumbar_scan_the_network_never_saw(data_dir):
    """Unlabelled: five discs in a lumbar spacing, one above the other; their names (counted up from
    the lowest) cannot be checked, and this scan may not reach the sacrum."""
    levels = find_discs(sitk.ReadImage(str(data_dir / "unlabelled" / "t2_lumbar_sagittal.nii.gz")), "cpu")
    assert len(levels) == 5 and level_problems(levels) == {}


def test_segment_writes_mask_table_levels_and_measure_reproduces_the_table(lumbar_scan, tmp_path):
    out = tmp_path / "out"
    assert main(["segment", str(lumbar_scan), "--task", "stenosis", "--out", str(out), "--device", "cpu"]) == 0
    mask = sitk.ReadImage(str(out / "ivd46_t2_stenosis_seg.nii.gz"))
    image = sitk.ReadImage(str(lumbar_scan))
    assert mask.GetSize() == image.GetSize() and mask.GetDirection() == image.GetDirection()
    rows = read_rows(out / "ivd46_t2_stenosis.csv")
    assert [row["level"] for row in rows] == LEVEL_NAMES
    assessed = [row for row in rows if row["assessable"] == "True"]
    assert len(assessed) >= 4  # a healthy adult: the sac is found at (nearly) every level
    for row in assessed:
        assert 60 < float(row["dural_sac_area_mm2"]) < 400 and row["schizas_grade"] and row["schizas_rule"]
    sidecar = json.loads((out / "ivd46_t2_stenosis_seg.json").read_text())
    assert sidecar["levels_from"] == "disc network on the scan" and len(sidecar["disc_levels"]) == 5
    assert {m["task"] for m in sidecar["models"]} == {"discs", "stenosis"}

    again = tmp_path / "again"
    levels = out / "ivd46_t2_stenosis_levels.mrk.json"
    argv = ["measure", str(out / "ivd46_t2_stenosis_seg.nii.gz"), "--task", "stenosis", "--disc-levels", str(levels)]
    assert main([*argv, "--out", str(again)]) == 0
    for first, second in zip(rows, read_rows(again / "ivd46_t2_stenosis.csv"), strict=True):
        assert first["schizas_grade"] == second["schizas_grade"]
        if first["assessable"] == "True":
            assert float(first["dural_sac_area_mm2"]) == pytest.approx(float(second["dural_sac_area_mm2"]), rel=0.01)


def phantom_stack(grades, rng, slice_mm=4.0, gap_slices=8):
    """An axial stack with one canal phantom per level slice (grey elsewhere) and the level points."""
    planes = [canal_phantom(grade, rng, disc_centre_mm=(48.0 - POSTERIOR_SHIFT_MM, 48.0)) for grade in grades]
    depth = gap_slices * len(grades)
    volume = np.full((depth, PLANE_PIXELS, PLANE_PIXELS), float(np.median(planes[0].image)), np.float32)
    for i, plane in enumerate(planes):
        volume[i * gap_slices + gap_slices // 2] = plane.image / np.percentile(plane.image, 99.5) * 1000
    image = sitk.GetImageFromArray(volume)
    image.SetSpacing((PLANE_SPACING_MM, PLANE_SPACING_MM, slice_mm))  # LPS identity: rows A->P, z up
    codes = list(DISC_NAMES)[::-1][: len(grades)]  # the lowest slice is L5-S1
    points = []
    for i, code in enumerate(codes):
        index = (
            (PLANE_PIXELS - 1) / 2,
            (PLANE_PIXELS - 1) / 2 - POSTERIOR_SHIFT_MM / PLANE_SPACING_MM,
            i * gap_slices + gap_slices // 2,
        )
        points.append(
            {"label": DISC_NAMES[code], "position": list(image.TransformContinuousIndexToPhysicalPoint(index))}
        )
    return image, {"markups": [{"type": "Fiducial", "coordinateSystem": "LPS", "controlPoints": points}]}


def test_an_axial_stack_with_level_points_is_graded_at_those_slices(tmp_path):
    image, markups = phantom_stack(["A1", "A1", "B", "D", "A3"], np.random.default_rng(11))
    sitk.WriteImage(image, str(tmp_path / "axial.nii.gz"))
    (tmp_path / "levels.mrk.json").write_text(json.dumps(markups))
    out = tmp_path / "out"
    argv = ["segment", str(tmp_path / "axial.nii.gz"), "--task", "stenosis", "--out", str(out), "--device", "cpu"]
    assert main([*argv, "--disc-levels", str(tmp_path / "levels.mrk.json")]) == 0
    rows = {row["level"]: row for row in read_rows(out / "axial_stenosis.csv")}
    assert all(row["assessable"] == "True" for row in rows.values())
    assert rows["L1-L2"]["schizas_grade"].startswith("A") and rows["L2-L3"]["schizas_grade"] in ("C", "D")
    sidecar = json.loads((out / "axial_stenosis_seg.json").read_text())
    assert sidecar["levels_from"] == "points given" and {m["task"] for m in sidecar["models"]} == {"stenosis"}


def test_a_cervical_scan_gets_no_lumbar_grade(tmp_path):
    from spineai.sample import T2

    out = tmp_path / "out"
    assert main(["segment", str(T2), "--task", "stenosis", "--out", str(out), "--device", "cpu"]) == 0
    rows = read_rows(out / "t2_stenosis.csv")
    assert [row["level"] for row in rows] == LEVEL_NAMES
    assert all(row["assessable"] == "False" and row["not_assessable_reason"] for row in rows)
    assert all(not row["schizas_grade"] for row in rows)


def test_an_axial_stack_without_levels_is_refused_and_nothing_is_written(tmp_path, capsys):
    image, _ = phantom_stack(["A1"], np.random.default_rng(1))
    sitk.WriteImage(image, str(tmp_path / "axial.nii.gz"))
    out = tmp_path / "out"
    code = main(["segment", str(tmp_path / "axial.nii.gz"), "--task", "stenosis", "--out", str(out)])
    assert code == EXIT_USER_ERROR and not out.exists()
    message = capsys.readouterr().err
    assert "axial.nii.gz" in message and "--disc-levels" in message and len(message.strip().splitlines()) == 1


def test_a_2d_sagittal_image_is_refused(tmp_path, capsys):
    sitk.WriteImage(sitk.Image([64, 64], sitk.sitkFloat32) + 1, str(tmp_path / "sagittal2d.nii.gz"))
    out = tmp_path / "out"
    code = main(["segment", str(tmp_path / "sagittal2d.nii.gz"), "--task", "stenosis", "--out", str(out)])
    assert code == EXIT_USER_ERROR and not out.exists()
    assert "sagittal2d.nii.gz" in capsys.readouterr().err


def test_a_bad_levels_file_is_refused_before_any_work(lumbar_scan, tmp_path, capsys):
    bad = tmp_path / "levels.mrk.json"
    bad.write_text(json.dumps({"markups": [{"controlPoints": [{"label": "T12-L1", "position": [0, 0, 0]}]}]}))
    out = tmp_path / "out"
    argv = ["segment", str(lumbar_scan), "--task", "stenosis", "--out", str(out), "--disc-levels", str(bad)]
    assert main(argv) == EXIT_USER_ERROR and not out.exists()
    assert "levels.mrk.json" in capsys.readouterr().err


def test_a_stenosis_cohort_has_every_level_row_a_summary_and_qc(lumbar_scan, data_dir, tmp_path):
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "ivd46.nii.gz").symlink_to(lumbar_scan)
    (folder / "lumbar.nii.gz").symlink_to(data_dir / "unlabelled" / "t2_lumbar_sagittal.nii.gz")
    out = tmp_path / "out"
    argv = ["batch", str(folder), "--task", "stenosis", "--out", str(out), "--workers", "1", "--device", "cpu"]
    assert main(argv) == 0
    all_rows = read_rows(out / "stenosis_all.csv")
    assert sorted({row["case_id"] for row in all_rows}) == ["ivd46", "lumbar"]
    assert [row["level"] for row in all_rows if row["case_id"] == "ivd46"] == LEVEL_NAMES
    summary = read_rows(out / "stenosis_summary.csv")
    assert len(summary) == 2 and all(row["worst_schizas_grade"] for row in summary)
    assert "dsca_L4-L5_mm2" in summary[0] and "schizas_L5-S1" in summary[0]
    assert "Schizas" in (out / "qc" / "index.html").read_text(encoding="utf-8")


@pytest.mark.torch
@pytest.mark.parametrize("task", ["stenosis", "discs"])
def test_train_commands_of_the_lumbar_networks_write_models_the_engine_loads(task, data_dir, tmp_path):
    from spineai.inference import network_for
    from spineai.models.registry import model_for_task, sha256_of

    out = tmp_path / task
    argv = ["train", "--task", task, "--data", str(data_dir), "--out", str(out), "--iterations", "3"]
    assert main(argv) == 0
    spec = model_for_task(task, out)
    classes = 4 if task == "stenosis" else 2  # background, sac without CSF, CSF, fat / background, disc
    assert spec.sha256 == sha256_of(out / f"{task}.safetensors") and spec.out_channels == classes
    assert spec.onnx.sha256 == sha256_of(out / f"{task}.onnx") and spec.onnx.output_shape[1] == classes
    images = np.zeros((2, 40, 56), np.float32)
    assert network_for(task, "cpu", out).class_probabilities(images).shape == (2, classes, 40, 56)
    metrics = json.loads((out / "metrics.json").read_text())
    assert ("synthetic_test" if task == "stenosis" else "training_scans") in metrics


def test_levels_can_come_from_a_sagittal_scan_of_the_same_session(lumbar_scan, tmp_path):
    out = tmp_path / "out"
    argv = ["segment", str(lumbar_scan), "--task", "stenosis", "--out", str(out), "--device", "cpu"]
    assert main([*argv, "--sagittal", str(lumbar_scan)]) == 0
    sidecar = json.loads((out / "ivd46_t2_stenosis_seg.json").read_text())
    assert sidecar["levels_from"] == "disc network on the sagittal scan"
    assert [record["level"] for record in sidecar["disc_levels"]] == LEVEL_NAMES
