"""``spineai pacs`` against a real Orthanc with its DICOMweb plugin, started by the test on loopback.

The fixture writes a temporary Orthanc configuration (free HTTP port on 127.0.0.1, DICOM server
off, remote access and authentication off, storage in a temporary folder, the DICOMweb plugin
found through dpkg), starts ``Orthanc`` as a subprocess, waits until ``/system`` answers and stops
it at the end; a system-wide Orthanc service, running or not, plays no part. The study holds two
real MR series (sagittal T2, axial T2*), uploaded through Orthanc's own REST API, not through the
code under test.
"""

import json
import shutil
import socket
import subprocess
import time
from dataclasses import dataclass
from io import BytesIO
from pathlib import Path

import pydicom
import pytest
import requests
from dicom_series import MRSeries, write_mr_series

from spineai.cli import EXIT_USER_ERROR, main
from spineai.io import read_image

STARTUP_SECONDS = 30


@dataclass
class Orthanc:
    url: str  # REST root

    @property
    def dicomweb(self) -> str:
        return f"{self.url}/dicom-web"

    def upload(self, series: MRSeries) -> None:
        for path in series.files:
            requests.post(f"{self.url}/instances", data=path.read_bytes(), timeout=10).raise_for_status()

    def instance(self, sop_instance_uid: str) -> pydicom.Dataset:
        """The stored instance with this SOPInstanceUID, as Orthanc serves its file."""
        query = {"Level": "Instance", "Query": {"SOPInstanceUID": sop_instance_uid}}
        (found,) = requests.post(f"{self.url}/tools/find", json=query, timeout=10).json()
        return pydicom.dcmread(BytesIO(requests.get(f"{self.url}/instances/{found}/file", timeout=10).content))


@dataclass
class Study:
    uid: str
    sagittal: MRSeries
    axial: MRSeries


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    binary = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin:/usr/local/sbin")  # Debian: sbin
    plugin = dicomweb_plugin()
    if binary is None or plugin is None:
        pytest.fail("the PACS tests need Orthanc and its DICOMweb plugin: apt-get install orthanc orthanc-dicomweb")
    folder = tmp_path_factory.mktemp("orthanc")
    port = free_port()
    config = folder / "orthanc.json"
    config.write_text(json.dumps(orthanc_config(folder / "storage", port, plugin), indent=2))
    with open(folder / "orthanc.log", "w") as log:
        process = subprocess.Popen([binary, str(config)], stdout=log, stderr=subprocess.STDOUT, cwd=folder)
        try:
            server = Orthanc(f"http://127.0.0.1:{port}")
            wait_until_answering(server, process, folder / "orthanc.log")
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


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


def orthanc_config(storage: Path, port: int, plugin: Path) -> dict:
    return {
        "Name": "spineai-test",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": port,
        "DicomServerEnabled": False,
        "DicomPort": free_port(),  # unused while the DICOM server is off, but never a port in use
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "Plugins": [str(plugin)],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
    }


def dicomweb_plugin() -> Path | None:
    """The plugin library that the Debian package orthanc-dicomweb installed."""
    listing = subprocess.run(["dpkg", "-L", "orthanc-dicomweb"], capture_output=True, text=True)
    for line in listing.stdout.splitlines():
        if "/plugins/" in line and Path(line).name.startswith("libOrthancDicomWeb") and Path(line).is_file():
            return Path(line)
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_answering(server: Orthanc, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"Orthanc exited with status {process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if requests.get(f"{server.url}/system", timeout=1).ok:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    pytest.fail(f"Orthanc did not answer within {STARTUP_SECONDS} s:\n{log.read_text()[-2000:]}")


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
    assert not Path(sidecar["input"]).exists()  # the pulled images are not left behind


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
