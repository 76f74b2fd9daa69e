"""``spineai batch --pacs URL --studies FILE``: a cohort pulled from a PACS that asks for credentials.

A real Orthanc (DICOMweb plugin, authentication on) runs on loopback for the module and holds three
studies made from real scans: A (the axial T2* of sct-testing), B (the sagittal T2 and the axial
T2* of sct-testing: two MR series) and C (unf01's axial T2w). The study list names A, B without a
series (the case must fail: which series?), C with its series, and a study the PACS does not have.
The batch runs on a local Dask cluster of one worker, with the credentials in the environment,
as users run it; then it runs again (resume) and once more after a receipt was lost.
"""

from __future__ import annotations

import csv
import io
import json
import secrets
from contextlib import redirect_stdout
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from dicom_series import MRSeries, write_mr_series
from orthanc_server import Orthanc, start_orthanc

from spineai.cli import EXIT_USER_ERROR, main
from spineai.report.qc import VIEWS_RECORD

UNKNOWN_STUDY = "1.2.826.0.1.3680043.99.17"


@dataclass
class Cohort:
    orthanc: Orthanc
    password: str
    a: MRSeries
    b: tuple[MRSeries, MRSeries]
    c: MRSeries
    studies: Path
    out: Path
    first: tuple[int, str]

    @property
    def url(self) -> str:
        return self.orthanc.dicomweb

    def case(self, series: MRSeries) -> Path:
        return self.out / series.study_uid


def batch(*argv) -> tuple[int, str]:
    printed = io.StringIO()
    with redirect_stdout(printed):
        code = main(["batch", *[str(a) for a in argv]])
    return code, printed.getvalue()


def read_csv(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def cohort(data_dir, tmp_path_factory) -> Cohort:
    base = tmp_path_factory.mktemp("pacs-cohort")
    password = secrets.token_urlsafe(16)
    with start_orthanc(base, users={"harness": secrets.token_urlsafe(16), "batch": password}) as orthanc:
        t2s, t2 = data_dir / "sct-testing" / "t2s" / "t2s.nii.gz", data_dir / "sct-testing" / "t2" / "t2.nii.gz"
        a = write_mr_series(t2s, base / "a", description="T2star ax")
        b_sag = write_mr_series(t2, base / "b_sag", description="T2 sag")
        b_ax = write_mr_series(t2s, base / "b_ax", study_uid=b_sag.study_uid, series_number=2, description="T2s ax")
        c = write_mr_series(data_dir / "ivadomed-unf01" / "sub-unf01_T2w.nii.gz", base / "c", description="T2w ax")
        for series in (a, b_sag, b_ax, c):
            orthanc.upload(series)
        studies = base / "studies.txt"
        studies.write_text(
            "# study [series]\n"
            f"{a.study_uid}\n"
            f"{b_sag.study_uid}\n"
            f"{c.study_uid}, {c.series_uid}\n"
            f"{UNKNOWN_STUDY}  # not on this PACS\n"
        )
        out = base / "results"
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("SPINEAI_PACS_USER", "batch")
            patch.setenv("SPINEAI_PACS_PASSWORD", password)
            patch.setenv("XDG_CONFIG_HOME", str(base / "config"))
            patch.delenv("SPINEAI_PACS_TOKEN", raising=False)
            first = batch_run(orthanc.dicomweb, studies, out)
            yield Cohort(orthanc, password, a, (b_sag, b_ax), c, studies, out, first)


def batch_run(url: str, studies: Path, out: Path, *options) -> tuple[int, str]:
    return batch("--pacs", url, "--studies", studies, "--task", "cord", "--out", out, "--workers", 1,
                 "--device", "cpu", *options)  # fmt: skip


@pytest.fixture
def credentials(cohort, monkeypatch, tmp_path):
    monkeypatch.setenv("SPINEAI_PACS_USER", "batch")
    monkeypatch.setenv("SPINEAI_PACS_PASSWORD", cohort.password)
    monkeypatch.delenv("SPINEAI_PACS_TOKEN", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def test_each_study_is_pulled_segmented_and_its_seg_and_sr_stored_back(cohort):
    code, printed = cohort.first
    assert code == 1, printed  # two cases failed, the others are done
    assert "4 cases: 2 done, 0 already finished, 2 failed" in printed
    for series in (cohort.a, cohort.c):
        case = cohort.case(series)
        stem = series.series_uid  # the pulled folder, named by its series
        sidecar = json.loads((case / f"{stem}_cord_seg.json").read_text())
        assert sidecar["input"] == f"{cohort.url}/studies/{series.study_uid}/series/{series.series_uid}"
        receipt = json.loads((case / "pacs_stored.json").read_text())
        assert receipt["sidecar_created"] == sidecar["created"] and receipt["series"] == series.series_uid
        for kind, suffix in (("dicom_seg", "_cord_seg.dcm"), ("dicom_sr", "_cord_morphometry_sr.dcm")):
            local = pydicom.dcmread(case / f"{stem}{suffix}")
            stored = cohort.orthanc.instance(receipt["stored"][kind])
            assert stored.SOPInstanceUID == local.SOPInstanceUID and stored.StudyInstanceUID == series.study_uid
        views = json.loads((cohort.out / "qc" / series.study_uid / VIEWS_RECORD).read_text())
        assert views["sidecar_created"] == sidecar["created"]  # QC pictures drawn while the pulled series existed
        assert all((cohort.out / "qc" / series.study_uid / v["overlay"]).is_file() for v in views["views"])


def test_failed_studies_are_listed_with_the_reason(cohort):
    failures = {row["case_id"]: row for row in read_csv(cohort.out / "failures.csv")}
    b = cohort.b[0].study_uid
    assert set(failures) == {b, UNKNOWN_STUDY}
    assert "holds 2 MR series; choose one with --series" in failures[b]["error"]
    assert failures[UNKNOWN_STUDY]["error"] == f"{cohort.url}: study {UNKNOWN_STUDY} not found on the PACS"
    assert failures[UNKNOWN_STUDY]["input"] == f"{cohort.url}/studies/{UNKNOWN_STUDY}"
    assert not (cohort.out / b).exists() or not list((cohort.out / b).glob("*.dcm"))


def test_the_cohort_summary_has_each_finished_study_once(cohort):
    rows = read_csv(cohort.out / "cord_summary.csv")
    assert sorted(row["case_id"] for row in rows) == sorted([cohort.a.study_uid, cohort.c.study_uid])
    assert all(float(row["mean_csa_mm2"]) > 0 for row in rows)
    manifest = (cohort.out / "cohort.json").read_text()
    assert cohort.password not in manifest and "SPINEAI_PACS" not in manifest  # no secret written anywhere


def test_a_second_run_recomputes_and_stores_nothing(cohort, credentials):
    instances = {s.study_uid: cohort.orthanc.study_instances(s.study_uid) for s in (cohort.a, cohort.c)}
    sidecar = next(cohort.case(cohort.a).glob("*_cord_seg.json"))
    created = json.loads(sidecar.read_text())["created"]
    code, printed = batch_run(cohort.url, cohort.studies, cohort.out)
    assert code == 1 and "4 cases: 0 done, 2 already finished, 2 failed" in printed, printed
    assert json.loads(sidecar.read_text())["created"] == created
    assert {s: cohort.orthanc.study_instances(s) for s in instances} == instances


def test_results_not_yet_stored_are_stored_without_recomputing(cohort, credentials):
    """A run that computed a case but could not store it (PACS down, killed): the next run only stores."""
    case = cohort.case(cohort.c)
    (case / "pacs_stored.json").unlink()
    sidecar = next(case.glob("*_cord_seg.json"))
    before = sidecar.read_text()
    seg = next(case.glob("*_cord_seg.dcm")).read_bytes()
    code, printed = batch_run(cohort.url, cohort.studies, cohort.out)
    assert code == 1 and "4 cases: 1 done, 1 already finished, 2 failed" in printed, printed
    assert sidecar.read_text() == before and next(case.glob("*_cord_seg.dcm")).read_bytes() == seg
    receipt = json.loads((case / "pacs_stored.json").read_text())
    assert (
        cohort.orthanc.instance(receipt["stored"]["dicom_seg"]).SOPInstanceUID
        == pydicom.dcmread(next(case.glob("*_cord_seg.dcm"))).SOPInstanceUID
    )


# --- refused before any case runs: one line, exit 2, nothing written or stored -----------------------


def refused(capsys, *argv) -> str:
    code = main(["batch", *[str(a) for a in argv]])
    err = capsys.readouterr().err
    assert code == EXIT_USER_ERROR and err.count("\n") == 1 and err.startswith("spineai: error: ")
    return err


def test_wrong_password_stops_the_batch_before_any_case(cohort, credentials, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SPINEAI_PACS_PASSWORD", "wrong")
    out = tmp_path / "out"
    err = refused(capsys, "--pacs", cohort.url, "--studies", cohort.studies, "--out", out)
    assert "the PACS refused the user name and password from SPINEAI_PACS_USER and SPINEAI_PACS_PASSWORD" in err
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("1.2.3\nnot-a-uid\n", "line 2: 'not-a-uid' is not a DICOM UID (digits and dots, at most 64)"),
        ("1.2.3 1.2.4 1.2.5\n", "line 1: expected a StudyInstanceUID and optionally a SeriesInstanceUID"),
        ("1.2.3\n1.2.3\n", "line 2 repeats line 1"),
        ("# nothing\n\n", "the study list names no study"),
    ],
)
def test_bad_study_list_is_one_line_exit_2(cohort, credentials, tmp_path, capsys, text, problem):
    studies = tmp_path / "studies.txt"
    studies.write_text(text)
    out = tmp_path / "out"
    err = refused(capsys, "--pacs", cohort.url, "--studies", studies, "--out", out)
    assert err == f"spineai: error: {studies}: {problem}\n" and not out.exists()


def test_pacs_options_must_come_together_and_without_input(cohort, credentials, tmp_path, capsys):
    out = tmp_path / "out"
    assert "go together" in refused(capsys, "--pacs", cohort.url, "--out", out)
    assert "go together" in refused(capsys, "--studies", cohort.studies, "--out", out)
    assert "not both" in refused(capsys, tmp_path, "--pacs", cohort.url, "--studies", cohort.studies, "--out", out)
    assert "give INPUT" in refused(capsys, "--out", out)
    assert "study list not found" in refused(
        capsys, "--pacs", cohort.url, "--studies", tmp_path / "no.txt", "--out", out
    )
    assert not out.exists()
