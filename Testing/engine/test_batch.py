"""`spineai batch` on a small real cohort: outputs per case, failures listed, tables with each case once,
resume (nothing recomputed; one deleted sidecar reruns one case; a killed run finishes), and input discovery.

Runs on a local Dask cluster of 1-2 worker processes, as users run it.
"""

import csv
import io
import json
import math
import os
import shutil
import signal
import struct
import subprocess
import sys
import time
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from spineai.cli import main
from spineai.cohort.discover import Case, discover_cases
from spineai.cohort.run import stored_bytes
from spineai.errors import SpineAIError

GOOD_SCANS = {
    "t2": "sct-testing/t2/t2.nii.gz",
    "t2s": "sct-testing/t2s/t2s.nii.gz",
    "mt0": "sct-testing/mt/mt0.nii.gz",
    "sub-unf01_T2w": "ivadomed-unf01/sub-unf01_T2w.nii.gz",
}
CASE_FILES = ("{id}_cord_seg.nii.gz", "{id}_cord_morphometry.csv", "{id}_cord_seg.json")


def batch(*argv) -> tuple[int, str]:
    """Run `spineai batch` in this process; return the exit status and what it printed."""
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = main(["batch", *[str(a) for a in argv]])
    return code, printed.getvalue()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def sidecar_state(out_dir: Path) -> dict[str, tuple[int, str]]:
    """Each finished case's sidecar: (modification time in ns, content)."""
    sidecars = sorted(out_dir.glob("*/[!.]*_seg.json"))  # "[!.]": not a temporary .partial-* file
    return {path.parent.name: (path.stat().st_mtime_ns, path.read_text()) for path in sidecars}


def link_good_scans(data_dir: Path, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for case_id, relative in GOOD_SCANS.items():
        (folder / f"{case_id}.nii.gz").symlink_to(data_dir / relative)
    return folder


@pytest.fixture(scope="module")
def cohort(tmp_path_factory, data_dir):
    """Four real scans, a truncated scan and a text file named like an image, run once with 2 workers."""
    folder = link_good_scans(data_dir, tmp_path_factory.mktemp("cohort") / "scans")
    (folder / "corrupt.nii.gz").write_bytes((data_dir / GOOD_SCANS["t2"]).read_bytes()[:3000])
    (folder / "notes.nii").write_text("not an image\n")
    out_dir = folder.parent / "results"
    code, printed = batch(folder, "--out", out_dir, "--workers", 2, "--device", "cpu")
    return {"folder": folder, "out": out_dir, "code": code, "printed": printed}


def test_every_good_case_has_its_outputs_in_its_own_folder(cohort):
    assert cohort["code"] == 1, cohort["printed"]  # some cases failed, the others are done
    assert "4 done, 0 already finished, 2 failed" in cohort["printed"]
    for case_id in GOOD_SCANS:
        case_dir = cohort["out"] / case_id
        assert sorted(p.name for p in case_dir.iterdir()) == sorted(f.format(id=case_id) for f in CASE_FILES)
        sidecar = json.loads((case_dir / f"{case_id}_cord_seg.json").read_text())
        assert sidecar["device"] == "cpu" and sidecar["input"].endswith(GOOD_SCANS[case_id])


def test_bad_cases_are_listed_with_a_clear_message_and_leave_no_folder(cohort):
    failures = {row["case_id"]: row for row in read_csv(cohort["out"] / "failures.csv")}
    assert set(failures) == {"corrupt", "notes"}
    assert failures["corrupt"]["input"].endswith("corrupt.nii.gz")
    assert "truncated or corrupt" in failures["corrupt"]["error"]
    assert "notes.nii" in failures["notes"]["error"] and "cannot read the image" in failures["notes"]["error"]
    assert not (cohort["out"] / "corrupt").exists() and not (cohort["out"] / "notes").exists()


def test_cohort_tables_hold_each_finished_case_exactly_once(cohort):
    out = cohort["out"]
    summary = read_csv(out / "cord_summary.csv")
    assert sorted(row["case_id"] for row in summary) == sorted(GOOD_SCANS)
    all_rows = read_csv(out / "cord_morphometry_all.csv")
    with open(out / "cord_morphometry_all.csv") as handle:
        assert handle.readline().startswith("case_id,Slice (I->S),")
    for row in summary:
        own = read_csv(out / row["case_id"] / f"{row['case_id']}_cord_morphometry.csv")
        copied = [r for r in all_rows if r["case_id"] == row["case_id"]]
        assert [{k: v for k, v in r.items() if k != "case_id"} for r in copied] == own
        areas = [float(r["MEAN(area)"]) for r in own if math.isfinite(float(r["MEAN(area)"] or "nan"))]
        assert int(row["slices"]) == len(areas)
        if areas:
            assert float(row["mean_csa_mm2"]) == pytest.approx(sum(areas) / len(areas), rel=1e-4)
        assert row["device"] == "cpu" and float(row["seconds"]) > 0


def test_rerun_recomputes_nothing(cohort):
    before = sidecar_state(cohort["out"])
    code, printed = batch(cohort["folder"], "--out", cohort["out"], "--workers", 1, "--device", "cpu")
    assert code == 1 and "0 done, 4 already finished, 2 failed" in printed  # the bad inputs are retried
    assert sidecar_state(cohort["out"]) == before
    assert sorted(r["case_id"] for r in read_csv(cohort["out"] / "cord_summary.csv")) == sorted(GOOD_SCANS)


def test_work_is_sized_by_the_bytes_stored_for_a_file_or_a_dicom_folder(tmp_path):
    """Cases are handed out largest first by this size; an unreadable input sorts last, then fails."""
    (tmp_path / "scan.nii.gz").write_bytes(b"x" * 300)
    series = tmp_path / "series"
    series.mkdir()
    for name, size in (("1.dcm", 200), ("2.dcm", 250)):
        (series / name).write_bytes(b"x" * size)
    sizes = {name: stored_bytes(Case(name, tmp_path / name)) for name in ("scan.nii.gz", "series", "gone.nii")}
    assert sizes == {"scan.nii.gz": 300, "series": 450, "gone.nii": 0}


def test_the_driver_never_imports_torch(cohort, tmp_path):
    """The workers segment; the driver only plans, records and reports. Importing torch there would
    add its start-up (about a second) to the wall time of every cohort run, serially."""
    out = tmp_path / "results"
    shutil.copytree(cohort["out"], out)
    argv = ["batch", str(cohort["folder"]), "--out", str(out), "--workers", "1", "--device", "cpu"]
    script = (
        f"import sys; from spineai.cli import main; code = main({argv!r}); "
        "print('exit', code, 'torch imported:', 'torch' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert "0 done, 4 already finished, 2 failed" in done.stdout, done.stdout + done.stderr
    assert "exit 1 torch imported: False" in done.stdout


def test_deleting_one_sidecar_reruns_only_that_case(cohort, tmp_path):
    out = tmp_path / "results"
    shutil.copytree(cohort["out"], out)
    (out / "t2s" / "t2s_cord_seg.json").unlink()
    before = sidecar_state(out)
    code, printed = batch(cohort["folder"], "--out", out, "--workers", 1, "--device", "cpu")
    assert code == 1 and "1 done, 3 already finished, 2 failed" in printed
    after = sidecar_state(out)
    assert set(after) == set(GOOD_SCANS) and {k: after[k] for k in before} == before
    assert sorted(r["case_id"] for r in read_csv(out / "cord_summary.csv")) == sorted(GOOD_SCANS)


def finished_cases(out_dir: Path) -> set[str]:
    return {path.parent.name for path in out_dir.glob("*/[!.]*_cord_seg.json")}  # not .partial-* files


def test_a_killed_run_finishes_on_restart_with_every_case_once(data_dir, tmp_path):
    folder = link_good_scans(data_dir, tmp_path / "scans")
    out = tmp_path / "results"
    command = [sys.executable, "-m", "spineai", "batch", str(folder), "--out", str(out), "--workers", "1"]
    # Its own session, so the kill takes the Dask workers too, as a job scheduler killing the job would.
    process = subprocess.Popen([*command, "--device", "cpu"], start_new_session=True, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 600
    while not finished_cases(out) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    done_before_kill = finished_cases(out)
    assert 1 <= len(done_before_kill) < len(GOOD_SCANS), process.stderr.read().decode()
    state_before = sidecar_state(out)

    code, printed = batch(folder, "--out", out, "--workers", 2, "--device", "cpu")
    assert code == 0, printed
    assert f"{len(GOOD_SCANS) - len(done_before_kill)} done, {len(done_before_kill)} already finished" in printed
    assert {k: v for k, v in sidecar_state(out).items() if k in state_before} == state_before
    summary = read_csv(out / "cord_summary.csv")
    assert sorted(row["case_id"] for row in summary) == sorted(GOOD_SCANS)
    assert not list(out.glob("*/.partial-*"))  # a case cut off mid-write left nothing behind
    assert read_csv(out / "failures.csv") == []


# --- discovery ------------------------------------------------------------------------------------


def test_folder_discovery_is_recursive_with_path_based_ids(tmp_path):
    for relative in ("site-a/t2.nii.gz", "site-b/t2.nii.gz", "site-b/deep/x.mha", "notes.txt", "site-a/.hidden.nii"):
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / relative).write_bytes(b"x")
    dicom = tmp_path / "site-c" / "series1"
    dicom.mkdir(parents=True)
    for index in range(3):  # DICOM Part 10 files: 128-byte preamble, then "DICM"
        (dicom / f"IM{index}").write_bytes(bytes(128) + b"DICM" + bytes(64))
    cases = discover_cases(tmp_path)
    assert [c.case_id for c in cases] == ["site-a_t2", "site-b_t2", "site-b_deep_x", "site-c_series1"]
    assert cases[-1].image == dicom.resolve()


def test_bids_discovery_uses_the_entities_and_skips_derivatives(data_dir):
    cases = discover_cases(data_dir / "gm-challenge")
    ids = [case.case_id for case in cases]
    assert "sub-9604_run-1_T2starw" in ids and "sub-9604_run-2_T2starw" in ids
    assert all(i.startswith("sub-") for i in ids) and len(set(ids)) == len(ids)
    assert not any("derivatives" in str(case.image) for case in cases)


def test_bids_sessions_and_names_without_entities(tmp_path, data_dir):
    scan = data_dir / GOOD_SCANS["t2"]
    for relative in ("sub-01/ses-1/anat/sub-01_ses-1_T2w.nii.gz", "sub-02/anat/T2w.nii.gz"):
        (tmp_path / relative).parent.mkdir(parents=True)
        (tmp_path / relative).symlink_to(scan)
    (tmp_path / "sub-01/ses-1/anat/sub-01_ses-1_T2w.json").write_text("{}")
    (tmp_path / "derivatives/labels/sub-01/ses-1/anat").mkdir(parents=True)
    (tmp_path / "derivatives/labels/sub-01/ses-1/anat/sub-01_ses-1_T2w_seg.nii.gz").symlink_to(scan)
    assert [c.case_id for c in discover_cases(tmp_path)] == ["sub-01_ses-1_T2w", "sub-02_T2w"]


def test_csv_list_with_ids_levels_and_relative_paths(tmp_path, data_dir):
    rows = "image,id,levels\n" + "\n".join(
        [
            f"{data_dir / GOOD_SCANS['t2']},neck 1,{data_dir / 'sct-testing/t2/t2_seg-manual_labeled.nii.gz'}",
            "scans/mt0.nii.gz,,",
        ]
    )
    (tmp_path / "list.csv").write_text(rows + "\n")
    cases = discover_cases(tmp_path / "list.csv")
    assert [c.case_id for c in cases] == ["neck_1", "mt0"]
    assert cases[0].levels.name == "t2_seg-manual_labeled.nii.gz" and cases[1].levels is None
    assert cases[1].image == (tmp_path / "scans/mt0.nii.gz").resolve()


@pytest.mark.parametrize(
    "content, problem",
    [("path,id\nx.nii.gz,a\n", "needs a column 'image'"), ("image,id\na.nii,x\nb.nii,x\n", "repeats x")],
)
def test_csv_list_errors_name_the_file_and_the_problem(tmp_path, content, problem):
    (tmp_path / "list.csv").write_text(content)
    with pytest.raises(SpineAIError, match=problem):
        discover_cases(tmp_path / "list.csv")


def test_batch_from_a_csv_list_measures_per_level_and_reports_a_non_image(tmp_path, data_dir):
    (tmp_path / "notes.txt").write_text("a text file, listed by mistake\n")
    levels = data_dir / "sct-testing/t2/t2_seg-manual_labeled.nii.gz"
    (tmp_path / "list.csv").write_text(f"image,id,levels\n{data_dir / GOOD_SCANS['t2']},neck,{levels}\nnotes.txt,,\n")
    code, _ = batch(tmp_path / "list.csv", "--out", tmp_path / "out", "--workers", 1, "--device", "cpu")
    assert code == 1
    assert (tmp_path / "out/neck/t2_cord_morphometry_per_level.csv").is_file()
    (failure,) = read_csv(tmp_path / "out/failures.csv")
    assert failure["case_id"] == "notes.txt" and "not a supported image format" in failure["error"]
    (summary,) = read_csv(tmp_path / "out/cord_summary.csv")
    per_level = read_csv(tmp_path / "out/neck/t2_cord_morphometry_per_level.csv")
    level_columns = [c for c in summary if c.startswith("csa_C")]
    assert len(level_columns) == len(per_level) >= 1
    for column, row in zip(level_columns, per_level, strict=True):
        assert column == f"csa_C{row['VertLevel']}_mm2"


def test_unusable_input_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["batch", str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no scans found" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_batch_runs_on_an_existing_dask_cluster(tmp_path, data_dir):
    from dask.distributed import LocalCluster

    (tmp_path / "scans").mkdir()
    (tmp_path / "scans" / "mt0.nii.gz").symlink_to(data_dir / GOOD_SCANS["mt0"])
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, dashboard_address=":0") as cluster:
        code, printed = batch(tmp_path / "scans", "--out", tmp_path / "out", "--scheduler", cluster.scheduler_address)
        assert code == 0 and "1 done" in printed
        assert len(cluster.scheduler.workers) == 1  # the cluster is left running for its owner
    (summary,) = read_csv(tmp_path / "out/cord_summary.csv")
    assert summary["case_id"] == "mt0"


def write_huge_sparse_nifti(path: Path, slices: int) -> None:
    """A valid 512 x 512 x ``slices`` int16 NIfTI written in no time: two real slices, the header's
    slice count raised, the file extended with zeros (sparse on disk)."""
    import numpy as np
    import SimpleITK as sitk

    start = np.zeros((2, 512, 512), np.int16)
    start[1, 256, 256] = 1  # not a constant image, so it passes the first checks
    sitk.WriteImage(sitk.GetImageFromArray(start), str(path))
    with open(path, "r+b") as handle:
        header = bytearray(handle.read(352))
        assert struct.unpack("<8h", header[40:56])[:4] == (3, 512, 512, 2)
        header[46:48] = struct.pack("<h", slices)  # dim[3]
        handle.seek(0)
        handle.write(header)
        handle.truncate(352 + 512 * 512 * slices * 2)


def test_a_case_that_kills_its_worker_fails_alone(tmp_path, data_dir):
    """A scan too large for the worker's memory limit: Dask's nanny kills the worker mid-case. That
    case is reported as failed; the other cases run on the restarted worker."""
    import dask
    from dask.distributed import LocalCluster

    (tmp_path / "scans").mkdir()
    for name in ("b_mt0", "c_mt0", "d_mt0"):
        (tmp_path / "scans" / f"{name}.nii.gz").symlink_to(data_dir / GOOD_SCANS["mt0"])
    write_huge_sparse_nifti(tmp_path / "scans" / "a_huge.nii", slices=1000)  # 512 x 512 x 1000 int16: 500 MB
    with (
        # No retry of the killing case (Dask's default retries it 3 times), and, as spineai's own
        # local cluster does, one case per worker at a time, so only the killing case is blamed.
        dask.config.set({"distributed.scheduler.allowed-failures": 0, "distributed.scheduler.worker-saturation": 1.0}),
        LocalCluster(n_workers=1, threads_per_worker=1, memory_limit="1.2GB", dashboard_address=":0") as cluster,
    ):
        code, printed = batch(tmp_path / "scans", "--out", tmp_path / "out", "--scheduler", cluster.scheduler_address)
    assert code == 1 and "3 done" in printed, printed
    (failure,) = read_csv(tmp_path / "out/failures.csv")
    assert failure["case_id"] == "a_huge" and "the worker failed: KilledWorker" in failure["error"]
    assert [row["case_id"] for row in read_csv(tmp_path / "out/cord_summary.csv")] == ["b_mt0", "c_mt0", "d_mt0"]


def test_a_sidecar_left_half_renamed_by_a_kill_is_not_a_finished_case(cohort, tmp_path):
    """Killed between renaming the mask and renaming the sidecar: the sidecar is still a .partial-*
    file. That case is not finished: the tables leave it out (and the next run redoes it)."""
    from spineai.cohort.aggregate import aggregate_cohort

    out = tmp_path / "results"
    shutil.copytree(cohort["out"], out)
    (out / "t2s" / "t2s_cord_seg.json").rename(out / "t2s" / ".partial-99-t2s_cord_seg.json")
    aggregate_cohort(out, "cord")
    assert sorted(r["case_id"] for r in read_csv(out / "cord_summary.csv")) == sorted(set(GOOD_SCANS) - {"t2s"})


def test_lesion_cohort_has_a_lesion_table_a_summary_and_qc_measurements(tmp_path, data_dir):
    folder = tmp_path / "scans"
    folder.mkdir()
    for case_id in ("t2", "sub-unf01_T2w"):
        (folder / f"{case_id}.nii.gz").symlink_to(data_dir / GOOD_SCANS[case_id])
    out = tmp_path / "out"
    code, _ = batch(folder, "--task", "lesion", "--out", out, "--workers", 1, "--device", "cpu")
    assert code == 0
    summary = read_csv(out / "lesion_summary.csv")
    assert sorted(row["case_id"] for row in summary) == ["sub-unf01_T2w", "t2"]
    assert all(row["cord_found"] == "True" and row["volume"] != "" for row in summary)
    lesion_rows = read_csv(out / "lesion_all.csv")
    assert [row["label"] for row in lesion_rows].count("total") == 2  # every case's total row, once
    page = (out / "qc" / "index.html").read_text(encoding="utf-8")
    assert "BASIC grade (proposal)" in page and "Lesion volume" in page
