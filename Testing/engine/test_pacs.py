"""``spineai pacs`` against a real Orthanc with its DICOMweb plugin, started by the test on loopback.

The fixture writes a temporary Orthanc configuration (free HTTP port on 127.0.0.1, DICOM server
off, remote access and authentication off, storage in a temporary folder, the DICOMweb plugin
found through dpkg), starts ``Orthanc`` as a subprocess, waits until ``/system`` answers and stops
it at the end; a system-wide Orthanc service, running or not, plays no part. The study holds two
real MR series (sagittal T2, axial T2*), uploaded through Orthanc's own REST API, not through the
code under test.
"""

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest
from dicom_series import MRSeries, write_mr_series
from orthanc_server import free_port, start_orthanc

from spineai.cli import EXIT_USER_ERROR, main
from spineai.io import read_image


@dataclass
class Study:
    uid: str
    sagittal: MRSeries
    axial: MRSeries


@pytest.fixture(autouse=True)
def no_pacs_credentials(monkeypatch, tmp_path):
    """This PACS has no authentication: no credentials from the machine's environment or config file."""
    for name in ("SPINEAI_PACS_USER", "SPINEAI_PACS_PASSWORD", "SPINEAI_PACS_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    with start_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
        yield server


@pytest.fixture(scope="module")
def study(orthanc, data_dir, tmp_path_factory) -> Study:
    base = tmp_path_factory.mktemp("study")
    sagittal = write_mr_series(data_dir / "sct-testing" / "t2" / "t2.nii.gz", base / "sag", description="T2 sag")
    axial = write_mr_series(
        data_dir / "sct-testing" / "t2s" / "t2s.nii.gz",
        base / "ax",
        study_uid=sagittal.study_uid,
        series_number=2,
        description="T2star ax",
    )
    orthanc.upload(sagittal)
    orthanc.upload(axial)
    return Study(sagittal.study_uid, sagittal, axial)


def pacs(capsys, *argv):
    code = main(["pacs", *[str(a) for a in argv]])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_series_is_pulled_segmented_and_its_seg_and_sr_stored_in_the_study(orthanc, study, tmp_path, capsys):
    out = tmp_path / "results"
    series = ["--study", study.uid, "--series", study.axial.series_uid]
    code, stdout, err = pacs(capsys, "--url", orthanc.dicomweb, *series, "--out", out, "--device", "cpu")
    assert code == 0, err
    stored = {line.split()[2]: line.split()[3] for line in stdout.splitlines() if line.startswith("stored ")}
    assert set(stored) == {"SEG", "SR"}

    seg = orthanc.instance(stored["SEG"])
    local_seg = pydicom.dcmread(out / f"{study.axial.series_uid}_cord_seg.dcm")
    assert seg.SOPInstanceUID == local_seg.SOPInstanceUID and seg.StudyInstanceUID == study.uid
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == study.axial.series_uid
    assert seg.SegmentSequence[0].SegmentLabel == "Spinal cord"
    assert seg.PixelData == local_seg.PixelData

    sr = orthanc.instance(stored["SR"])
    assert sr.Modality == "SR" and sr.StudyInstanceUID == study.uid
    evidence = {
        item.ReferencedSOPInstanceUID
        for study_item in sr.CurrentRequestedProcedureEvidenceSequence
        for series_item in study_item.ReferencedSeriesSequence
        for item in series_item.ReferencedSOPSequence
    }
    assert seg.SOPInstanceUID in evidence

    sidecar = json.loads((out / f"{study.axial.series_uid}_cord_seg.json").read_text())
    axial = read_image(study.axial.folder)
    assert sidecar["input_geometry"]["size"] == list(axial.GetSize())  # the series asked for was the one pulled
    # The input is named by its WADO-RS URL: the pulled images are not left behind.
    assert sidecar["input"] == f"{orthanc.dicomweb}/studies/{study.uid}/series/{study.axial.series_uid}"
    assert not list(Path(tempfile.gettempdir()).glob(f"spineai-pacs-*/{study.axial.series_uid}"))


def test_study_with_two_mr_series_asks_for_one(orthanc, study, tmp_path, capsys):
    out = tmp_path / "results"
    code, _, err = pacs(capsys, "--url", orthanc.dicomweb, "--study", study.uid, "--out", out)
    assert code == EXIT_USER_ERROR and err.count("\n") == 1
    assert "holds 2 MR series; choose one with --series" in err
    assert study.sagittal.series_uid in err and study.axial.series_uid in err
    assert not out.exists()


def test_unknown_study_is_one_line_exit_2(orthanc, tmp_path, capsys):
    unknown = "1.2.826.0.1.3680043.99.1"
    code, _, err = pacs(capsys, "--url", orthanc.dicomweb, "--study", unknown, "--out", tmp_path / "r")
    assert code == EXIT_USER_ERROR
    assert err == f"spineai: error: {orthanc.dicomweb}: study {unknown} not found on the PACS\n"


def test_unknown_series_lists_the_study_series(orthanc, study, tmp_path, capsys):
    code, _, err = pacs(
        capsys, "--url", orthanc.dicomweb, "--study", study.uid, "--series", "1.2.3.4", "--out", tmp_path / "r"
    )
    assert code == EXIT_USER_ERROR and err.count("\n") == 1
    assert f"series 1.2.3.4 is not in study {study.uid}" in err and study.axial.series_uid in err


def test_unreachable_pacs_is_one_line_exit_2(tmp_path, capsys):
    url = f"http://127.0.0.1:{free_port()}/dicom-web"  # nothing listens there
    code, stdout, err = pacs(capsys, "--url", url, "--study", "1.2.3", "--out", tmp_path / "r")
    assert code == EXIT_USER_ERROR and stdout == ""
    assert err.count("\n") == 1 and err.startswith(f"spineai: error: {url}: cannot reach the PACS")
    assert not (tmp_path / "r").exists()
