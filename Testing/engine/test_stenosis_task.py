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
from spineai.stenosis.grading import DSCA_RELATIVE_MM2
from spineai.stenosis.levels import DISC_NAMES, find_discs, level_problems
from spineai.stenosis.planes import PLANE_PIXELS, PLANE_SPACING_MM, POSTERIOR_SHIFT_MM
from spineai.training.lumbar_ivd import SUBJECTS, read_lumbar_case, with_documented_axes
from spineai.training.synthetic_canal import canal_phantom

LEVEL_NAMES = list(DISC_NAMES.values())
DISC_POINT_MAX_MM = 3.2  # discs.md: leave-one-out level points lie within 3.2 mm of the manual disc centroid


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
    for level in levels:  # each point lies within the model card's distance of its labelled disc's centroid
        truth = np.argwhere(labels == level.code)
        centre = case.discs.TransformContinuousIndexToPhysicalPoint(truth.mean(0)[::-1].tolist())
        assert np.linalg.norm(np.subtract(level.point, centre)) <= DISC_POINT_MAX_MM, level.name


def test_discs_on_a_lumbar_scan_the_network_never_saw(data_dir):
    """Unlabelled: five discs in a lumbar spacing, one above the other; their names (counted up from
    the lowest) cannot be checked, and this scan may not reach the sacrum."""
    levels = find_discs(sitk.ReadImage(str(data_dir / "unlabelled" / "t2_lumbar_sagittal.nii.gz")), "cpu")
    assert len(levels) == 5 and level_problems(levels) == {}


@pytest.fixture(scope="module")
def ivd46_segmented(lumbar_scan, tmp_path_factory):
    """The stenosis task run once on ivd46 through the CLI: its output folder."""
    out = tmp_path_factory.mktemp("ivd46") / "out"
    assert main(["segment", str(lumbar_scan), "--task", "stenosis", "--out", str(out), "--device", "cpu"]) == 0
    return out


def test_segment_writes_mask_table_levels_and_measure_reproduces_the_table(ivd46_segmented, lumbar_scan, tmp_path):
    out = ivd46_segmented
    mask = sitk.ReadImage(str(out / "ivd46_t2_stenosis_seg.nii.gz"))
    image = sitk.ReadImage(str(lumbar_scan))
    assert mask.GetSize() == image.GetSize() and mask.GetDirection() == image.GetDirection()
    rows = read_rows(out / "ivd46_t2_stenosis.csv")
    assert [row["level"] for row in rows] == LEVEL_NAMES
    for row in rows:  # a healthy adult: the sac is found at every level and graded unstenosed
        assert row["assessable"] == "True" and row["schizas_grade"].startswith("A") and row["schizas_rule"], row
    sidecar = json.loads((out / "ivd46_t2_stenosis_seg.json").read_text())
    assert sidecar["levels_from"] == "disc network on the scan" and len(sidecar["disc_levels"]) == 5
    assert {m["task"] for m in sidecar["models"]} == {"discs", "stenosis"}

    again = tmp_path / "again"
    levels = out / "ivd46_t2_stenosis_levels.mrk.json"
    argv = ["measure", str(out / "ivd46_t2_stenosis_seg.nii.gz"), "--task", "stenosis", "--disc-levels", str(levels)]
    assert main([*argv, "--out", str(again)]) == 0
    for first, second in zip(rows, read_rows(again / "ivd46_t2_stenosis.csv"), strict=True):
        assert first["schizas_grade"] == second["schizas_grade"]
        assert float(first["dural_sac_area_mm2"]) == pytest.approx(float(second["dural_sac_area_mm2"]), rel=0.01)


def test_a_healthy_adult_has_no_level_in_the_stenotic_range(ivd46_segmented):
    """No false narrowing: every level's sac is above the relative-stenosis cut-off. How far above is
    not asserted: the sac takes in epidural fat at L1-L2, L2-L3 and L5-S1 (316, 287, 254 mm2), a known
    overestimate measured in docs/stenosis.md."""
    rows = read_rows(ivd46_segmented / "ivd46_t2_stenosis.csv")
    assert len(rows) == 5 and all(float(row["dural_sac_area_mm2"]) > DSCA_RELATIVE_MM2 for row in rows), rows


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


# The grade each phantom level is built with; phantom_stack takes them from the lowest slice (L5-S1) up.
PHANTOM_GRADES = {"L5-S1": "A1", "L4-L5": "A1", "L3-L4": "B", "L2-L3": "D", "L1-L2": "A3"}
# The sac network grades 77 % of held-out B phantoms B and most of the rest C (docs/stenosis.md):
# at the B level the test asks for what matters clinically, a stenosis found, not the exact grade.
STENOSED = {"B", "C", "D"}


@pytest.fixture(scope="module")
def graded_phantom_stack(tmp_path_factory):
    """An axial phantom stack with its level points, graded once through the CLI: (rows by level, sidecar)."""
    folder = tmp_path_factory.mktemp("axial")
    image, markups = phantom_stack(list(PHANTOM_GRADES.values()), np.random.default_rng(11))
    sitk.WriteImage(image, str(folder / "axial.nii.gz"))
    (folder / "levels.mrk.json").write_text(json.dumps(markups))
    out = folder / "out"
    argv = ["segment", str(folder / "axial.nii.gz"), "--task", "stenosis", "--out", str(out), "--device", "cpu"]
    assert main([*argv, "--disc-levels", str(folder / "levels.mrk.json")]) == 0
    rows = {row["level"]: row for row in read_rows(out / "axial_stenosis.csv")}
    return rows, json.loads((out / "axial_stenosis_seg.json").read_text())


def test_an_axial_stack_with_level_points_is_graded_at_those_slices(graded_phantom_stack):
    rows, sidecar = graded_phantom_stack
    assert sorted(rows) == sorted(LEVEL_NAMES) and all(row["assessable"] == "True" for row in rows.values())
    assert sidecar["levels_from"] == "points given" and {m["task"] for m in sidecar["models"]} == {"stenosis"}


@pytest.mark.parametrize("level", [name for name in LEVEL_NAMES if PHANTOM_GRADES[name] != "B"])
def test_each_phantom_level_gets_the_grade_it_was_built_with(graded_phantom_stack, level):
    rows, _ = graded_phantom_stack
    assert rows[level]["schizas_grade"] == PHANTOM_GRADES[level]


def test_the_moderate_phantom_level_is_graded_stenosed(graded_phantom_stack):
    rows, _ = graded_phantom_stack
    assert rows["L3-L4"]["schizas_grade"] in STENOSED


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
