"""A new task is one module: the toy task in plugins/toy_ring_task.py, installed as a plugin would be
(an entry point in the group ``spineai.tasks``), goes through segment, measure, a Dask cohort with
its summary table, and the QC page, with its own terminology row, and no other file knows it."""

import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from spineai import tasks
from spineai.cli import main
from spineai.orientation import canonical_array, to_canonical
from spineai.sample import T2
from spineai.terminology import codes_for_task, remove_segment_codes

PLUGINS = Path(__file__).resolve().parent / "plugins"


@pytest.fixture(scope="module")
def ring_plugin(tmp_path_factory):
    """The toy task installed as a plugin: its folder and a dist-info with the entry point on the
    path of this process and of the Dask workers it starts."""
    site = tmp_path_factory.mktemp("site")
    info = site / "spineai_toy_ring-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: spineai-toy-ring\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text("[spineai.tasks]\nring = toy_ring_task:RingTask\n")
    paths = [str(site), str(PLUGINS)]
    sys.path[:0] = paths
    previous = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = os.pathsep.join(paths + ([previous] if previous else []))
    tasks.load_task_plugins()
    yield tasks.get_task("ring")
    tasks.TASKS.pop("ring", None)
    remove_segment_codes("ring")
    del sys.path[:2]
    if previous is None:
        os.environ.pop("PYTHONPATH")
    else:
        os.environ["PYTHONPATH"] = previous


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_the_plugin_task_is_registered_with_its_terminology_row(ring_plugin):
    assert "ring" in tasks.TASKS and ring_plugin.segments == ((1, "Perimedullary ring"),)
    assert codes_for_task("ring")["Perimedullary ring"].type.value == "65216001"


def test_segment_and_measure_run_the_new_task_end_to_end(ring_plugin, tmp_path, capsys):
    from toy_ring_task import ring_around

    assert main(["segment", str(T2), "--task", "ring", "--out", str(tmp_path / "s"), "--device", "cpu"]) == 0
    out = tmp_path / "s"
    assert sorted(p.name for p in out.iterdir()) == ["t2_ring.csv", "t2_ring_seg.json", "t2_ring_seg.nii.gz"]
    mask = sitk.ReadImage(str(out / "t2_ring_seg.nii.gz"))
    sidecar = json.loads((out / "t2_ring_seg.json").read_text())
    assert sidecar["task"] == "ring" and sidecar["model"] == "spineai-cord-unet2d"
    # The ring is the shell around the cord the shipped network finds: recomputed from the cord task.
    assert main(["segment", str(T2), "--out", str(tmp_path / "c"), "--device", "cpu"]) == 0
    cord = canonical_array(to_canonical(sitk.ReadImage(str(tmp_path / "c" / "t2_cord_seg.nii.gz"))))
    ring = canonical_array(to_canonical(mask))
    assert np.array_equal(ring, ring_around(cord)) and 200 < ring.sum() == sidecar["ring_voxels"]
    (row,) = read_csv(out / "t2_ring.csv")
    assert int(row["voxels"]) == ring.sum()
    assert float(row["volume_mm3"]) == pytest.approx(ring.sum() * np.prod(mask.GetSpacing()), abs=1e-3)
    # spineai measure on the label map gives the same table (named from its stem less _ring_seg).
    assert main(["measure", str(out / "t2_ring_seg.nii.gz"), "--task", "ring", "--out", str(tmp_path / "m")]) == 0
    assert read_csv(tmp_path / "m" / "t2_ring.csv") == [row]
    # A label map with a value the task has no segment for is refused, naming the file.
    labels = sitk.GetArrayFromImage(mask)
    labels[labels > 0] = 2
    wrong = sitk.GetImageFromArray(labels)
    wrong.CopyInformation(mask)
    sitk.WriteImage(wrong, str(tmp_path / "wrong.nii.gz"))
    capsys.readouterr()
    assert main(["measure", str(tmp_path / "wrong.nii.gz"), "--task", "ring", "--out", str(tmp_path / "w")]) == 2
    assert "wrong.nii.gz" in capsys.readouterr().err and not (tmp_path / "w").exists()


def test_a_cohort_of_the_new_task_gets_its_summary_table_and_qc_page(ring_plugin, data_dir, tmp_path):
    scans = tmp_path / "scans"
    scans.mkdir()
    (scans / "t2.nii.gz").symlink_to(T2)
    (scans / "unf01.nii.gz").symlink_to(data_dir / "ivadomed-unf01" / "sub-unf01_T2w.nii.gz")
    out = tmp_path / "out"
    assert main(["batch", str(scans), "--task", "ring", "--out", str(out), "--workers", "1", "--device", "cpu"]) == 0
    summary = {row["case_id"]: row for row in read_csv(out / "ring_summary.csv")}
    assert sorted(summary) == ["t2", "unf01"]
    for case_id, row in summary.items():
        (case_row,) = read_csv(out / case_id / f"{case_id}_ring.csv")
        assert row["volume_mm3"] == case_row["volume_mm3"] and float(row["volume_mm3"]) > 0
    page = (out / "qc" / "index.html").read_text(encoding="utf-8")
    report = json.loads(page.split('id="report-data" type="application/json">', 1)[1].split("</script>", 1)[0])
    shown = {case["id"]: dict(case["measurements"]) for case in report["cases"]}
    assert {case["status"] for case in report["cases"]} == {"ok"}
    assert shown["t2"]["Ring volume (mm³)"] == summary["t2"]["volume_mm3"]
